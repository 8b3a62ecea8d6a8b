"""Quick start: audit one table, write to it with request context, read the history back."""

import os
import uuid

# --8<-- [start:declare]
import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit

audit.enable()  # or: create_engine(url, plugins=["audit"])

metadata = sa.MetaData()
account = sa.Table(
    "account",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("owner", sa.String, nullable=False),
    info={
        "audit.options": {
            "enabled": True,
            "session_settings": [
                sa.Column("username", sa.String, nullable=False),  # required for every write
                sa.Column("request_id", sa.UUID),
            ],
        }
    },
)
# --8<-- [end:declare]

engine = sa.create_engine(os.environ["DATABASE_URL"])
request_uuid = uuid.uuid4()

# --8<-- [start:write]
metadata.create_all(engine)  # creates account and account_audit, installs the triggers

with engine.begin() as connection:
    audit.set_session_vars(connection, username="alice", request_id=request_uuid)
    connection.execute(account.insert().values(id=1, owner="alice"))
    connection.execute(account.update().values(owner="alice b."))
# --8<-- [end:write]

# --8<-- [start:read]
account_audit = metadata.tables["account_audit"]
with engine.connect() as connection:
    rows = connection.execute(
        sa.select(
            account_audit.c.audit_operation,
            account_audit.c.audit_username,
            account_audit.c.owner,
        ).order_by(account_audit.c.audit_id)
    ).all()
print(rows)  # [('I', 'alice', 'alice'), ('U', 'alice', 'alice b.')]
# --8<-- [end:read]

assert [tuple(row) for row in rows] == [("I", "alice", "alice"), ("U", "alice", "alice b.")]
