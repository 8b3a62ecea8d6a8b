"""Design 1: knowing when the subscription has applied everything committed before a moment.

A fence is an empty context row committed on the source.  The target has applied everything
committed before it when the row has arrived there, or when the source's slot shows the
subscriber confirmed a WAL position past the fence's start: another consumer of the same
target may delete the row first (it deletes the context rows it passed), and the slot's
position still tells.  While waiting, errors of the apply worker end the wait at once
(``.apply_errors``): a change it cannot apply would otherwise hold the trail until the timeout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from ..declare.cdc import CdcNames
from ..render import cdc as sql
from ..render import cdc_replica as replica_sql
from ..render import cdc_subscription as subscription_sql
from ..render.sql import name_text, quote
from .apply_errors import apply_failed
from .errors import INSUFFICIENT_PRIVILEGE, CdcError, sqlstate
from .replica import Replica

#: How often the wait looks at the target while it waits.
POLL_SECONDS = 0.05
#: How long an enabled subscription may go without an apply worker before the wait says why
#: (a worker restarting after an error or a source restart is back within seconds).
NO_WORKER_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Fence:
    #: The context row's id.
    id: int
    #: The source's WAL insert position before the fence committed.
    lsn: str


def commit_fence(source: Engine, names: CdcNames) -> Fence:
    """Commit one empty context row, after everything committed before the call."""
    insert = sql.insert_context(names.context_schema, names.context_table) + " RETURNING id"
    try:
        with source.begin() as connection:
            lsn = connection.execute(text(replica_sql.WAL_INSERT_POSITION)).scalar_one()
            fence = connection.execute(text(insert), {"_audit_ctx_settings": "{}"}).scalar_one()
    except DBAPIError as error:
        if sqlstate(error) != INSUFFICIENT_PRIVILEGE:
            raise
        raise CdcError(
            f"the consumer's role may not insert into the source's context table "
            f"{name_text(names.context_schema, names.context_table)}: design 1 commits an "
            "empty context row there at each run, as a fence the target's apply must reach.  "
            "GRANT INSERT (settings) ON it TO the consumer's role"
        ) from error
    return Fence(int(fence), str(lsn))


def wait_for(replica: Replica, fence: Fence, timeout: float) -> None:
    """Until the target applied ``fence``, and so, in commit order, all before it."""
    names = replica.names
    arrived = text(sql.context_arrived(names.context_schema, names.context_table))
    confirmed = text(replica_sql.CONFIRMED)
    deadline = time.monotonic() + timeout
    with replica.target.connect() as target, replica.source.connect() as source:
        errors = _apply_errors(target, replica.subscription)
        workerless = _Workerless(replica.subscription)
        while not (
            target.execute(arrived, {"id": fence.id}).scalar()
            or source.execute(confirmed, {"slot": names.slot, "lsn": fence.lsn}).scalar()
        ):
            target.rollback()
            source.rollback()
            now = _apply_errors(target, replica.subscription)
            if errors is not None and now is not None and now > errors:
                raise apply_failed(replica, now - errors)
            workerless.check(target)
            if time.monotonic() > deadline:
                raise CdcError(
                    f"subscription {replica.subscription!r} did not apply the source's "
                    f"changes within {timeout} s{_disabled(target, replica.subscription)}; see "
                    "'sqlalchemy-postgresql-audit cdc status' and the target's server log"
                )
            time.sleep(POLL_SECONDS)


def _disabled(target: Connection, subscription: str) -> str:
    """Why a wait timed out when the subscription is disabled (nothing applies then)."""
    enabled = target.execute(
        text(subscription_sql.SUBSCRIPTION_ENABLED), {"subscription": subscription}
    ).scalar()
    target.rollback()
    if enabled is not False:
        return ""
    return f": it is disabled on the target (ALTER SUBSCRIPTION {quote(subscription)} ENABLE)"


class _Workerless:
    """Tells, during a wait, a subscription that has had no apply worker for
    ``NO_WORKER_SECONDS``: the target server is out of logical replication worker slots (one
    per subscription, one more per seed copying a table), and nothing says so but a WARNING
    in its log, repeated every few seconds."""

    def __init__(self, subscription: str) -> None:
        self.subscription = subscription
        self.since: float | None = None
        self.next_look = time.monotonic() + 1

    def check(self, target: Connection) -> None:
        now = time.monotonic()
        if now < self.next_look:
            return
        self.next_look = now + 1
        row = target.execute(
            text(replica_sql.APPLY_WORKER), {"subscription": self.subscription}
        ).one()
        target.rollback()
        if row.present:
            self.since = None
        elif self.since is None:
            self.since = now
        elif now - self.since > NO_WORKER_SECONDS:
            disabled = _disabled(target, self.subscription)
            if disabled:
                raise CdcError(f"subscription {self.subscription!r} applies nothing{disabled}")
            error = CdcError(
                f"subscription {self.subscription!r} has had no apply worker for "
                f"{now - self.since:.0f} s: the target server may be out of logical replication "
                f"worker slots (max_logical_replication_workers = {row.pool}, {row.used} in "
                "use; one per subscription, one more per table a seed copies).  Raise it, and "
                "max_worker_processes, then restart the target server"
            )
            error.transient = True
            raise error


def _apply_errors(target: Connection, subscription: str) -> int | None:
    """The apply worker's error count (PostgreSQL 15+; ``None`` before)."""
    if (target.dialect.server_version_info or (0,)) < (15,):
        return None
    count = target.execute(text(replica_sql.APPLY_ERRORS), {"subscription": subscription})
    value = count.scalar()
    target.rollback()  # statistics are read once per transaction
    return int(value or 0)


def delete_context(engine: Engine, names: CdcNames, upto: int) -> None:
    """Delete the context rows up to ``upto``: the consumer is past them, progress committed."""
    delete = text(sql.delete_context(names.context_schema, names.context_table))
    with engine.begin() as connection:
        connection.execute(delete, {"upto": upto})
