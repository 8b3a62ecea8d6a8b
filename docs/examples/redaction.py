"""Redaction at write time: a masked, a hashed and an omitted column, and what history shows."""

import hashlib
import hmac
import os

import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit

audit.enable()
engine = sa.create_engine(os.environ["DATABASE_URL"])  # the migrator, who owns the audit tables

# --8<-- [start:declare]
metadata = sa.MetaData()
customer = sa.Table(
    "customer",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("email", sa.String),  # hashed: equal emails can be matched, never read
    sa.Column("birthday", sa.Date),  # masked: "it changed", never the value
    sa.Column("notes", sa.Text),  # omitted: no audit column at all
    info={
        "audit.options": {
            "enabled": True,
            "redact": {"email": "hash", "birthday": "mask", "notes": "omit"},
        }
    },
)
metadata.create_all(engine)  # also creates the key table, with a first random key
# --8<-- [end:declare]

# --8<-- [start:key]
key = os.urandom(32)  # keep it in your secret store to check hashes outside the database
versions = audit.rotate_redaction_key(engine, metadata, key)  # {"public": 2}
# --8<-- [end:key]
assert versions == {"public": 2}

# --8<-- [start:write]
with engine.begin() as connection:
    connection.execute(
        customer.insert().values(
            id=1, name="Ada", email="ada@example.org", birthday="1815-12-10", notes="VIP"
        )
    )
    connection.execute(customer.update().values(birthday="1815-12-11", notes="regular"))

with engine.connect() as connection:
    for version in connection.execute(audit.history(customer, 1)):
        print(version.audit_operation, version.name, version.email, version.birthday)
    # I Ada [hash:v2:…] [redacted]
    # U Ada [hash:v2:…] [redacted]
    for change in connection.execute(audit.changes(customer, 1)).all()[-2:]:
        print(change.column, change.before, "->", change.after)
    # birthday [redacted] -> [redacted]
    # notes [redacted] -> [redacted]
# --8<-- [end:write]
    rows = connection.execute(audit.history(customer, 1)).all()
    listed = connection.execute(audit.changes(customer, 1))
    changed = [(c.column, c.before, c.after) for c in listed]
assert [r.birthday for r in rows] == [audit.REDACTED, audit.REDACTED]
assert str(rows[0].email).startswith("[hash:v2:")
assert changed[-2:] == [
    ("birthday", audit.REDACTED, audit.REDACTED),
    ("notes", audit.REDACTED, audit.REDACTED),
]

# --8<-- [start:match]
recorded = rows[0].email  # an audit.Hashed: key version and digest
with engine.connect() as connection:  # reading the key takes the audit owner
    assert audit.matches_hash(connection, customer, "email", "ada@example.org", recorded)
    assert not audit.matches_hash(connection, customer, "email", "eve@example.org", recorded)

# The same digest outside the database, from the key you kept: HMAC-SHA256 of the text form.
assert recorded.digest == hmac.new(key, b"ada@example.org", hashlib.sha256).digest()
# --8<-- [end:match]
