"""Change-data-capture into the source's own database: the decoder writes the audit trail from
the WAL, off the writer's transaction, with request context."""

import os
import uuid

import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit
from sqlalchemy_postgresql_audit.cdc import Consumer

audit.enable()
engine = sa.create_engine(os.environ["DATABASE_URL"])  # wal_level = logical

# --8<-- [start:declare]
metadata = sa.MetaData(naming_convention={"audit.slot": f"ledger_{uuid.uuid4().hex[:8]}"})
account = sa.Table(
    "account",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.String, nullable=False),
    info={
        "audit.options": {
            "enabled": True,
            "mode": "cdc",
            "session_settings": [sa.Column("username", sa.String)],
            "capture": ["transaction_id"],
        }
    },
)
metadata.create_all(engine)  # tables, audit tables, publications, slot, context table
# --8<-- [end:declare]

# --8<-- [start:write]
with audit.audit_context(username="alice"), engine.begin() as connection:
    connection.execute(account.insert().values(id=1, owner="alice"))
    connection.execute(account.update().values(owner="alice b."))
with engine.begin() as connection:
    connection.execute(account.delete())
# --8<-- [end:write]

# --8<-- [start:decode]
consumer = Consumer(engine, metadata=metadata)  # no target: the trail goes into this database
assert consumer.run_once() == 3  # every change committed before the call
assert consumer.run_once() == 0  # nothing is written twice
# In a worker: consumer.run() until consumer.stop().
# --8<-- [end:decode]

# --8<-- [start:history]
with engine.connect() as connection:
    versions = connection.execute(audit.history(account, 1)).all()
print([(v.audit_operation, v.owner, v.audit_username) for v in versions])
# [('I', 'alice', 'alice'), ('U', 'alice b.', 'alice'), ('D', 'alice b.', None)]
assert [(v.audit_operation, v.owner, v.audit_username) for v in versions] == [
    ("I", "alice", "alice"),
    ("U", "alice b.", "alice"),
    ("D", "alice b.", None),
]
# One commit, one time: the commit timestamp from the WAL.
assert versions[0].audit_operation_timestamp == versions[1].audit_operation_timestamp
assert versions[0].audit_transaction_id == versions[1].audit_transaction_id
# --8<-- [end:history]

# A database holding a slot cannot be dropped.
with engine.begin() as connection:
    connection.exec_driver_sql(
        "SELECT pg_drop_replication_slot(%s)", (metadata.naming_convention["audit.slot"],)
    )
