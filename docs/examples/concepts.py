"""What is recorded: one audit row per changed row, ordered by audit_id; TRUNCATE; partitions."""

import os

import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit

audit.enable()
engine = sa.create_engine(os.environ["DATABASE_URL"])

# --8<-- [start:trail]
metadata = sa.MetaData()
item = sa.Table(
    "item", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("price", sa.Integer, nullable=False),
    info={"audit.options": {"enabled": True}},
)
metadata.create_all(engine)
item_audit = item.info["audit.table"]

with engine.begin() as connection:
    connection.execute(item.insert(), [{"id": n, "price": 10} for n in range(3)])
    connection.execute(item.update().values(price=item.c.price * 2))  # one statement, 3 rows
    connection.execute(item.delete().where(item.c.id == 0))
with engine.begin() as connection:
    connection.execute(sa.text("TRUNCATE item"))

with engine.connect() as connection:
    trail = connection.execute(
        sa.select(item_audit.c.audit_operation, item_audit.c.id, item_audit.c.price)
        .order_by(item_audit.c.audit_id)  # the total order of changes
    ).all()
print(trail)
# [('I', 0, 10), ('I', 1, 10), ('I', 2, 10), ('U', 0, 20), ('U', 1, 20), ('U', 2, 20),
#  ('D', 0, 20), ('T', None, None)]
# --8<-- [end:trail]
assert [tuple(row) for row in trail] == [
    ("I", 0, 10), ("I", 1, 10), ("I", 2, 10),
    ("U", 0, 20), ("U", 1, 20), ("U", 2, 20),
    ("D", 0, 20), ("T", None, None),
]
assert item.info["audit.spec"].mode == "statement"
assert {index.name for index in item_audit.indexes} == {"item_audit_history"}

# --8<-- [start:partitioned]
events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    postgresql_partition_by="RANGE (id)",
    info={"audit.options": {"enabled": True}},
)
assert events.info["audit.spec"].mode == "row"  # the default on a partitioned table
metadata.create_all(engine)
with engine.begin() as connection:
    connection.execute(sa.text(
        "CREATE TABLE events_low PARTITION OF events FOR VALUES FROM (0) TO (100)"))
    connection.execute(sa.text("INSERT INTO events_low VALUES (1)"))  # addressed to the partition
    recorded = connection.scalar(sa.select(sa.func.count()).select_from(events.info["audit.table"]))
assert recorded == 1  # row triggers are cloned onto every partition
# --8<-- [end:partitioned]

# --8<-- [start:columns]
print([(column.name, str(column.type), column.nullable) for column in item_audit.columns][:4])
# [('audit_id', 'BIGINT', False), ('audit_operation', 'VARCHAR(1)', False),
#  ('audit_operation_timestamp', 'DATETIME', False), ('audit_current_user', 'VARCHAR(64)', True)]
# --8<-- [end:columns]
assert [(c.name, c.nullable) for c in item_audit.columns] == [
    ("audit_id", False), ("audit_operation", False), ("audit_operation_timestamp", False),
    ("audit_current_user", True), ("id", True), ("price", True),
]
assert item_audit.c.audit_operation_timestamp.type.timezone is True
