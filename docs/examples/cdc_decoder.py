"""The change-data-capture decoder: the audit trail written from the WAL, off the writer's
transaction, on the same server (here: the same database)."""

import json
import os

import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit
from sqlalchemy_postgresql_audit.cdc.decoder import Decoder

# The tables get no trigger in this mode: the runtime check must not expect one.
engine = sa.create_engine(
    os.environ["DATABASE_URL"], execution_options={"audit_runtime_check": False}
)

# --8<-- [start:declare]
metadata = sa.MetaData()
account = sa.Table(
    "account",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.String, nullable=False),
    info={
        "audit.options": {
            "enabled": True,
            "session_settings": [sa.Column("username", sa.String)],
            "capture": ["transaction_id"],
        }
    },
)
metadata.create_all(engine)
audit.uninstall_audit_triggers(metadata, engine)  # the decoder writes the trail instead
# What installing CDC mode creates, spelled out: the publications and the slot.
with engine.begin() as connection:
    connection.exec_driver_sql("CREATE PUBLICATION account_audit FOR TABLE account")
    connection.exec_driver_sql(
        "CREATE TABLE audit_cdc_context (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " xact xid8 NOT NULL DEFAULT pg_current_xact_id(), settings jsonb NOT NULL)"
    )
    connection.exec_driver_sql(
        "CREATE PUBLICATION audit_context FOR TABLE audit_cdc_context WITH (publish = 'insert')"
    )
with engine.begin() as connection:  # a slot is made in a transaction of its own
    connection.exec_driver_sql("SELECT pg_create_logical_replication_slot('audit', 'pgoutput')")
# --8<-- [end:declare]

# --8<-- [start:write]
with engine.begin() as connection:
    # What a context does in this mode: one row, in the writer's transaction.
    connection.execute(
        sa.text("INSERT INTO audit_cdc_context (settings) VALUES (CAST(:s AS jsonb))"),
        {"s": json.dumps({"username": "alice"})},
    )
    connection.execute(account.insert().values(id=1, owner="alice"))
    connection.execute(account.update().values(owner="alice b."))
with engine.begin() as connection:
    connection.execute(account.delete())
# --8<-- [end:write]

# --8<-- [start:decode]
decoder = Decoder(
    engine,  # the server holding the slot
    engine,  # the audit tables' server: here the same database
    metadata,
    slot="audit",
    publication="account_audit",
    context_publication="audit_context",
)
assert decoder.run_once() == 3  # every change committed before the call
assert decoder.run_once() == 0  # nothing is written twice
# In a worker: decoder.run(stop_event) until the event is set.
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
    connection.exec_driver_sql("SELECT pg_drop_replication_slot('audit')")
