"""activity(): who did what across every audited table, filtered by setting and time."""

import datetime
import os
import uuid

import sqlalchemy as sa
from expect import raises

import sqlalchemy_postgresql_audit as audit

audit.enable()

# --8<-- [start:models]
metadata = sa.MetaData()
SETTINGS = [sa.Column("username", sa.String), sa.Column("request_id", sa.UUID)]
customer = sa.Table(
    "customer",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String),
    info={"audit.options": {"enabled": True, "session_settings": SETTINGS}},
)
order_line = sa.Table(
    "order_line",
    metadata,
    sa.Column("order_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("line", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("quantity", sa.Integer),
    info={
        "audit.options": {
            "enabled": True,
            "session_settings": SETTINGS,
            "capture": ["changed_columns"],
        }
    },
)
tag = sa.Table(  # audited, but records no setting
    "tag",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    info={"audit.options": {"enabled": True}},
)
# --8<-- [end:models]

# --8<-- [start:index]
# Indexes for the filters you use, declared on the audit tables like any index:
# create_all creates them, Alembic autogenerate migrates them.
for table in (customer, order_line):
    audit_table = table.info["audit.table"]
    sa.Index(
        f"{audit_table.name}_by_username",
        audit_table.c.audit_username,
        audit_table.c.audit_operation_timestamp,
    )
    sa.Index(f"{audit_table.name}_by_request", audit_table.c.audit_request_id)
# --8<-- [end:index]

engine = sa.create_engine(os.environ["DATABASE_URL"])
metadata.create_all(engine)
assert {"customer_audit_by_username", "customer_audit_by_request"} <= {
    index["name"] for index in sa.inspect(engine).get_indexes("customer_audit")
}

request = uuid.uuid4()
with audit.audit_context(username="alice", request_id=request), engine.begin() as connection:
    connection.execute(customer.insert().values(id=1, name="Ada"))
    connection.execute(order_line.insert().values(order_id=7, line=1, quantity=2))
    connection.execute(tag.insert().values(id=1))
with engine.connect() as connection:
    between = connection.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
with audit.audit_context(username="bob", request_id=uuid.uuid4()), engine.begin() as connection:
    connection.execute(order_line.update().values(quantity=3))
    connection.execute(customer.delete())

# --8<-- [start:alice]
with engine.connect() as connection:
    for change in connection.execute(audit.activity(metadata, username="alice")):
        print(change.audit_table, change.audit_key, change.audit_operation, change.username)
# public.customer {'id': 1} I alice
# public.order_line {'line': 1, 'order_id': 7} I alice
# --8<-- [end:alice]
with engine.connect() as connection:
    alice = connection.execute(audit.activity(metadata, username="alice")).all()
assert sorted((c.audit_table, c.audit_key, c.audit_operation, c.username) for c in alice) == [
    ("public.customer", {"id": 1}, "I", "alice"),
    ("public.order_line", {"order_id": 7, "line": 1}, "I", "alice"),
]

# --8<-- [start:request]
with engine.connect() as connection:
    changed = connection.execute(audit.activity(metadata, request_id=request)).all()
print(sorted(change.audit_table for change in changed))
# ['public.customer', 'public.order_line']
# --8<-- [end:request]
assert sorted(change.audit_table for change in changed) == ["public.customer", "public.order_line"]

# --8<-- [start:window]
with engine.connect() as connection:
    later = connection.execute(audit.activity(metadata, since=between)).all()
shown = [(c.audit_table, c.audit_operation, c.username, c.audit_changed_columns) for c in later]
print(sorted(shown))
# [('public.customer', 'D', 'bob', None), ('public.order_line', 'U', 'bob', ['quantity'])]
# --8<-- [end:window]
assert sorted(shown) == [
    ("public.customer", "D", "bob", None),
    ("public.order_line", "U", "bob", ["quantity"]),
]

# --8<-- [start:compose]
query = audit.activity([customer, order_line, tag], until=between)
recent_inserts = (
    query.where(query.selected_columns.audit_operation == "I")
    .order_by(None)
    .order_by(query.selected_columns.audit_operation_timestamp.desc())
    .limit(10)
)
with engine.connect() as connection:
    inserted = connection.execute(recent_inserts).all()
print(sorted((c.audit_table, c.username) for c in inserted))
# [('public.customer', 'alice'), ('public.order_line', 'alice'), ('public.tag', None)]
# --8<-- [end:compose]
assert sorted((c.audit_table, c.username) for c in inserted) == [
    ("public.customer", "alice"),
    ("public.order_line", "alice"),
    ("public.tag", None),
]

# --8<-- [start:refused]
unknown = raises(audit.AuditSettingError, lambda: audit.activity(metadata, usernme="alice"))
print(unknown)  # activity: unknown session setting(s) ['usernme']: ... ['request_id', 'username']
naive = datetime.datetime(2026, 1, 1)
refused = raises(audit.AuditError, lambda: audit.activity(metadata, since=naive))
print(refused)  # activity: 'since' is a naive datetime (2026-01-01T00:00:00); give it a time zone
# --8<-- [end:refused]
assert "['usernme']" in str(unknown) and "['request_id', 'username']" in str(unknown)
assert "'since' is a naive datetime" in str(refused)
