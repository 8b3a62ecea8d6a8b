"""Change-data-capture mode: writers pay no trigger; a subscription on another database writes
the same typed trail, with request context, and the history API reads it there."""

import os
import uuid

import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit
from sqlalchemy_postgresql_audit.cdc import Consumer

audit.enable()

# --8<-- [start:declare]
# Slot names belong to the server, not the database: name one per source database.
metadata = sa.MetaData(naming_convention={"audit.slot": f"shop_{uuid.uuid4().hex[:8]}"})
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("status", sa.String, nullable=False),
    info={
        "audit.options": {
            "enabled": True,
            "mode": "cdc",  # no trigger: a publication and a logical slot instead
            "session_settings": [sa.Column("username", sa.String)],
        }
    },
)

source = sa.create_engine(os.environ["DATABASE_URL"])  # wal_level = logical
metadata.create_all(source)  # tables, publication audit_cdc, slot, context table
# --8<-- [end:declare]

# The trail lives in another database; here a second database of the same server, which
# works the same way as another server does.
trail_name = f"{source.url.database}_trail"
admin = source.execution_options(isolation_level="AUTOCOMMIT")
with admin.connect() as connection:
    connection.exec_driver_sql(f'CREATE DATABASE "{trail_name}"')  # a constant of this example
trail_url = source.url.set(database=trail_name)

# --8<-- [start:consume]
consumer = Consumer(source, trail_url, metadata=metadata)
consumer.run_once()  # creates the replica, audit tables, triggers and subscription there

with audit.audit_context(username="alice"), source.begin() as connection:
    connection.execute(orders.insert().values(id=1, status="new"))
with audit.audit_context(username="bob"), source.begin() as connection:
    connection.execute(orders.update().where(orders.c.id == 1).values(status="paid"))

written = consumer.run_once()  # returns once everything committed before it is in the trail
trail = sa.create_engine(trail_url)
with trail.connect() as connection:
    versions = connection.execute(audit.history(orders, 1)).all()
print(written, [(v.audit_operation, v.audit_username, v.status) for v in versions])
# 2 [('I', 'alice', 'new'), ('U', 'bob', 'paid')]
# --8<-- [end:consume]

assert written == 2
assert [(v.audit_operation, v.audit_username, v.status) for v in versions] == [
    ("I", "alice", "new"),
    ("U", "bob", "paid"),
]

consumer.drop()  # the subscription; the source's slot stays until dropped there
consumer.close()  # the engine it made for trail_url
trail.dispose()
with admin.connect() as connection:
    connection.exec_driver_sql(f'DROP DATABASE "{trail_name}" WITH (FORCE)')
    connection.exec_driver_sql(
        "SELECT pg_drop_replication_slot(%s)", (metadata.naming_convention["audit.slot"],)
    )
