"""The history API: versions of one row, what each changed, the table as of a moment, restore."""

import datetime
import os

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import sqlalchemy_postgresql_audit as audit

audit.enable()


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "account"
    __table_args__ = {
        "info": {
            "audit.options": {
                "enabled": True,
                "session_settings": [sa.Column("username", sa.String)],
            }
        }
    }
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str]
    balance: Mapped[int]


engine = sa.create_engine(os.environ["DATABASE_URL"])
Base.metadata.create_all(engine)

# A row that predates auditing: triggers are dropped, the row written (a write to an audited
# table without its triggers is refused unless the check is turned off), triggers reinstalled.
audit.uninstall_audit_triggers(Base.metadata, engine)
with engine.execution_options(audit_runtime_check=False).begin() as connection:
    connection.execute(sa.insert(Account).values(id=1, owner="legacy", balance=0))
audit.install_audit_triggers(Base.metadata, engine)

# --8<-- [start:baseline]
with Session(engine) as session, session.begin():
    recorded = audit.record_baseline(session, Account)  # B versions for unexplained rows
assert recorded == 1
# --8<-- [end:baseline]

# --8<-- [start:write]
with Session(engine) as session, session.begin():
    audit.set_session_vars(session, username="alice")
    session.add(Account(id=2, owner="alice", balance=10))
with Session(engine) as session, session.begin():
    audit.set_session_vars(session, username="bob")
    session.get(Account, 2).balance = 25
with Session(engine) as session:
    moment = session.scalar(sa.select(sa.func.clock_timestamp()))  # after bob's first change
with Session(engine) as session, session.begin():
    audit.set_session_vars(session, username="bob")
    session.get(Account, 2).balance = 99
# --8<-- [end:write]

# --8<-- [start:history]
with Session(engine) as session:
    versions = session.scalars(audit.history(Account, 2)).all()
for version in versions:
    print(version.operation, version.context["username"], version.row.balance, version.changed)
# I alice 10 {'id': (None, 2), 'owner': (None, 'alice'), 'balance': (None, 10)}
# U bob 25 {'balance': (10, 25)}
# U bob 99 {'balance': (25, 99)}
# --8<-- [end:history]
assert [(v.operation, v.context["username"], v.row.balance) for v in versions] == [
    ("I", "alice", 10),
    ("U", "bob", 25),
    ("U", "bob", 99),
]
assert versions[1].changed == {"balance": (10, 25)}
assert isinstance(versions[0].row, Account) and versions[0].current_user

# --8<-- [start:changes]
with engine.connect() as connection:
    rows = connection.execute(audit.changes(Account, 2)).all()
print([(row.audit_username, row.column, row.before, row.after) for row in rows[-2:]])
# [('bob', 'balance', 10, 25), ('bob', 'balance', 25, 99)]
# --8<-- [end:changes]
assert [(r.audit_username, r.column, r.before, r.after) for r in rows[-2:]] == [
    ("bob", "balance", 10, 25),
    ("bob", "balance", 25, 99),
]
assert rows[-1].audit_operation == "U" and rows[-1].audit_current_user

# --8<-- [start:changes_window]
with engine.connect() as connection:
    since_then = connection.execute(audit.changes(Account, 2, since=moment)).all()
print([(row.column, row.before, row.after) for row in since_then])
# [('balance', 25, 99)]
# --8<-- [end:changes_window]
assert [(r.column, r.before, r.after) for r in since_then] == [("balance", 25, 99)]
assert since_then == [r for r in rows if r.audit_operation_timestamp >= moment]

# --8<-- [start:as_of]
with Session(engine) as session:
    then = session.scalars(audit.as_of(Account, moment)).all()
print([(v.operation, v.row.id, v.row.balance) for v in then])
# [('B', 1, 0), ('U', 2, 25)]
# --8<-- [end:as_of]
assert [(v.operation, v.row.id, v.row.balance) for v in then] == [("B", 1, 0), ("U", 2, 25)]

# --8<-- [start:restore]
with Session(engine) as session, session.begin():
    audit.set_session_vars(session, username="carol")
    outcome = audit.restore(session, Account, 2, moment)
assert outcome == "updated"
with Session(engine) as session:
    assert session.get(Account, 2).balance == 25
    last = session.scalars(audit.history(Account, 2)).all()[-1]
assert (last.operation, last.context["username"], last.changed) == (
    "U",
    "carol",
    {"balance": (99, 25)},
)  # the restore is itself audited
# --8<-- [end:restore]

# --8<-- [start:restore_version]
first = versions[0]  # from history(): the INSERT, balance 10
with Session(engine) as session, session.begin():
    audit.set_session_vars(session, username="carol")
    outcome = audit.restore(session, Account, 2, version=first.audit_id)
assert outcome == "updated"
with Session(engine) as session:
    assert session.get(Account, 2).balance == 10
# --8<-- [end:restore_version]

# --8<-- [start:model]
AccountAudit = audit.audit_model(Account)
with Session(engine) as session:
    bobs = session.scalars(
        sa.select(AccountAudit)
        .where(AccountAudit.audit_username == "bob")
        .order_by(AccountAudit.audit_id)
    ).all()
assert [record.balance for record in bobs] == [25, 99]
# --8<-- [end:model]

# Naive datetimes are refused: "as of" needs a point in time.
try:
    audit.as_of(Account, datetime.datetime(2026, 1, 1))
except audit.AuditError as error:
    print(type(error).__name__, error)
else:
    raise AssertionError("a naive datetime was accepted")
