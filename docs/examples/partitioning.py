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
this_week = done.created[0]
with engine.begin() as connection:
    connection.execute(payment.insert().values(id=1, amount=10))
    connection.execute(payment.update().values(amount=12))
# As of six weeks ago (a catch-up): the weeks since then are made too.
(caught_up,) = audit.maintain(engine, metadata, at=now - datetime.timedelta(weeks=6))
# --8<-- [end:maintain]

# --8<-- [start:retention]
(done,) = audit.maintain(engine, metadata)  # retention: four weeks kept
print(done.dropped)  # ('payment_audit_p20261019', ...): detached, then dropped whole
print(done.removed_before)  # the bound the X marker records
assert done.dropped and done.removed_before is not None and done.removed_before <= now
with engine.connect() as connection:
    versions = connection.execute(audit.history(payment, 1)).all()
    trail = payment.info[audit.AUDIT_TABLE_KEY]
    markers = connection.execute(
        sa.select(trail.c.audit_operation_timestamp).where(trail.c.audit_operation == "X")
    ).scalars()
    assert list(markers) == [done.removed_before]  # shown first in a row's history it cut
print([v.audit_operation for v in versions])  # ['I', 'U']: this week's history stays
assert [v.audit_operation for v in versions] == ["I", "U"]
# A later moment makes partitions ahead, but never removes one that can still be written:
(ahead,) = audit.maintain(engine, metadata, at=now + datetime.timedelta(weeks=5))
assert this_week not in ahead.dropped
# --8<-- [end:retention]

# --8<-- [start:hold]
audit.hold(engine, payment, "litigation 2026-17")  # retention pauses for this table
audit.hold(engine, payment, "archive")  # holds stack: each has its own reason
audit.maintain(engine, metadata, at=now - datetime.timedelta(weeks=6))  # old weeks again
(held,) = audit.maintain(engine, metadata)
assert held.held == "litigation 2026-17; archive" and held.dropped == ()
audit.release(engine, payment, "litigation 2026-17")  # lifts that hold, and no other
print([h.reason for h in audit.holds_of(engine, payment)])  # ['archive']
(still,) = audit.maintain(engine, metadata)
assert still.held == "archive" and still.dropped == ()
audit.release(engine, payment, "archive")  # no hold is left: retention runs again
# --8<-- [end:hold]
