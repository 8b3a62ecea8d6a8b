"""Partitioned audit tables: a weekly-partitioned, append-only trail kept four weeks, maintained
as of chosen moments; retention leaves a marker ``history`` shows, and a hold pauses it."""

import datetime
import os

import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit

audit.enable()
engine = sa.create_engine(os.environ["DATABASE_URL"])
UTC = datetime.timezone.utc

# --8<-- [start:declare]
metadata = sa.MetaData()
payment = sa.Table(
    "payment",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("amount", sa.Numeric),
    info={
        "audit.options": {
            "enabled": True,
            "append_only": True,
            "partition": "week",  # or "day", "month"
            "retention": datetime.timedelta(weeks=4),  # None (the default): keep everything
        }
    },
)
metadata.create_all(engine)  # payment_audit, partitioned, with its DEFAULT partition
# --8<-- [end:declare]

# --8<-- [start:maintain]
now = datetime.datetime.now(UTC)
(done,) = audit.maintain(engine, metadata)  # run it from cron, daily: idempotent
print(done.created)  # ('payment_audit_p20261130', ... this week and the 4 after it)
assert len(done.created) == 5 and done.dropped == ()
with engine.begin() as connection:
    connection.execute(payment.insert().values(id=1, amount=10))
    connection.execute(payment.update().values(amount=12))
# --8<-- [end:maintain]

# --8<-- [start:retention]
later = now + datetime.timedelta(weeks=5)
(done,) = audit.maintain(engine, metadata, at=later)  # as of five weeks on
print(done.dropped)  # ('payment_audit_p20261130',): detached, then dropped whole
print(done.removed_before)  # the bound the X marker records
with engine.connect() as connection:
    versions = connection.execute(audit.history(payment, 1)).all()
print([v.audit_operation for v in versions])  # ['X']: earlier history removed by retention
assert [v.audit_operation for v in versions] == ["X"]
assert versions[0].audit_operation_timestamp == done.removed_before
# --8<-- [end:retention]

# --8<-- [start:hold]
audit.hold(engine, payment, "litigation 2026-17")  # retention pauses for this table
(held,) = audit.maintain(engine, metadata, at=later + datetime.timedelta(weeks=4))
assert held.held == "litigation 2026-17" and held.dropped == ()
audit.release(engine, payment)  # the next maintain applies retention again
# --8<-- [end:hold]
