"""A partition loaded on its own and attached to a CDC table: ``record_attached`` in the
ATTACH's transaction, so changes of its rows made before the consumer's next run are recorded."""

import os
import uuid

import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit
from sqlalchemy_postgresql_audit.cdc import Consumer, record_attached

audit.enable()

metadata = sa.MetaData(naming_convention={"audit.slot": f"readings_{uuid.uuid4().hex[:8]}"})
reading = sa.Table(
    "reading",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("value", sa.Integer, nullable=False),
    postgresql_partition_by="RANGE (id)",
    info={"audit.options": {"enabled": True, "mode": "cdc"}},
)
source = sa.create_engine(os.environ["DATABASE_URL"])  # wal_level = logical
metadata.create_all(source)

trail_name = f"{source.url.database}_trail"
admin = source.execution_options(isolation_level="AUTOCOMMIT")
with admin.connect() as connection:
    connection.exec_driver_sql(f'CREATE DATABASE "{trail_name}"')  # a constant of this example
trail_url = source.url.set(database=trail_name)
consumer = Consumer(source, trail_url, metadata=metadata)
consumer.run_once()

# --8<-- [start:attach]
with source.begin() as connection:
    connection.exec_driver_sql("CREATE TABLE reading_2026 (LIKE reading INCLUDING ALL)")
    connection.exec_driver_sql("INSERT INTO reading_2026 VALUES (150, 1), (151, 1)")
    connection.exec_driver_sql(
        "ALTER TABLE reading ATTACH PARTITION reading_2026 FOR VALUES FROM (100) TO (200)"
    )
    # Right after the ATTACH, in its transaction: a B version of each row it brought.
    recorded = record_attached(connection, reading, "reading_2026")

# Changed before the consumer runs again: nothing is lost.
with source.begin() as connection:
    connection.execute(reading.update().where(reading.c.id == 150).values(value=2))
    connection.execute(reading.delete().where(reading.c.id == 151))
consumer.run_once()
# --8<-- [end:attach]

trail = sa.create_engine(trail_url)
with trail.connect() as connection:
    rows = [
        tuple(row)
        for row in connection.exec_driver_sql(
            "SELECT audit_operation, id, value FROM reading_audit ORDER BY audit_id"
        )
    ]
print(recorded, rows)
assert recorded == 2
assert rows == [("B", 150, 1), ("B", 151, 1), ("U", 150, 2), ("D", 151, 1)]

consumer.drop()
consumer.close()
trail.dispose()
with admin.connect() as connection:
    connection.exec_driver_sql(f'DROP DATABASE "{trail_name}" WITH (FORCE)')
    connection.exec_driver_sql(
        "SELECT pg_drop_replication_slot(%s)", (metadata.naming_convention["audit.slot"],)
    )
