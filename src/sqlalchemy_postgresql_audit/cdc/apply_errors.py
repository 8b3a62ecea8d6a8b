"""What design 1's apply worker reports, turned into what to do about it.

The apply worker retries a change it cannot apply forever, and writes why only into the
target's server log; meanwhile no change of the source reaches the trail.  The usual cause is
a column the source gained (a migration) that the replica lacks (a consumer still running with
the old models): the error names those columns and the fix.  PostgreSQL 18 also counts the
UPDATEs and DELETEs it found no row for (``confl_update_missing``, ``confl_delete_missing``):
changes that left no audit row, reported by ``cdc status``.

PostgreSQL's counts are cumulative: one error long past (the source restarting, a table the
target lacked for a moment) would keep ``cdc status`` failing for ever.  So a successful run
records the apply worker's error count on the target, and ``cdc status`` reports only the
errors since: a run that succeeds shows the apply worker works again.  The missing-row
conflicts stay until the statistics are reset, since no later run brings back the change they
lost.

A table that joined CDC holds the apply worker at its join until a consumer seeds it
(``.join_seed``): expected, and reported as such, not as a failure.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from ..render import cdc_replica as sql
from ..render.sql import name_text
from .errors import CdcError
from .joins import pending
from .replica import Replica


class ApplyFailed(CdcError):
    """The subscription's apply worker failed while a consumer waited for it."""

    #: It retries on its own: a conflict or a lock may clear.
    transient = True


class ReplicaLacksColumns(CdcError):
    """The source sends columns the replica lacks: only new models (or a hand migration of
    the target) can help."""


def apply_failed(replica: Replica, errors: int) -> CdcError:
    """The error to raise when the apply worker failed ``errors`` times during a wait."""
    missing = _missing_columns(replica)
    if missing:
        listed = "; ".join(
            f"table {table}: {', '.join(repr(c) for c in columns)}"
            for table, columns in missing.items()
        )
        return ReplicaLacksColumns(
            f"subscription {replica.subscription!r} cannot apply the source's changes: the "
            f"source sends columns the target's replica lacks ({listed}), so no change reaches "
            "the trail until the target has them.  Run the consumer with models that declare "
            "them (its first run adds them to the replica and the audit table), or add them on "
            "the target by hand and call sqlalchemy_postgresql_audit.cdc.install_capture("
            "connection, metadata) in the same transaction"
        )
    with replica.source.connect() as source, replica.target.connect() as target:
        waiting = pending(source, target, replica.names)
    if waiting:
        tables = ", ".join(dict.fromkeys(join.table_name for join in waiting))
        return ApplyFailed(
            f"subscription {replica.subscription!r} is waiting for the consumer to seed "
            f"{tables}, which joined change-data-capture: this consumer's models do not "
            "declare it (or the subscription does not apply it yet), so no later change "
            "reaches the trail.  Run the consumer with models that declare it"
        )
    return ApplyFailed(
        f"subscription {replica.subscription!r}: the apply worker failed {errors} time(s) "
        "while the consumer waited, and retries; no change reaches the trail meanwhile.  The "
        "message is in the target's server log ('sqlalchemy-postgresql-audit cdc status' "
        "counts the errors)"
    )


def _missing_columns(replica: Replica) -> dict[str, list[str]]:
    """``{table: columns the source sends and the replica lacks}``."""
    names = [name_text(table.schema, table.name) for table, _ in replica.pairs()]
    with replica.source.connect() as source, replica.target.connect() as target:
        missing: dict[str, list[str]] = {}
        for name in names:
            sent = _columns(source, name)
            kept = _columns(target, name)
            lacking = [c for c in sent if c not in kept]
            if lacking:
                missing[name] = lacking
        return missing


def _columns(connection: Connection, table: str) -> list[str]:
    rows = connection.execute(text(sql.SENT_COLUMNS), {"table": table})
    return [str(name) for (name,) in rows]


def acknowledge_apply_errors(connection: Connection, schema: str | None, subscription: str) -> None:
    """At a successful run: the apply worker's errors so far are past (written only when the
    count or its reset changed, so a quiet run writes nothing)."""
    now = _apply_errors(connection, subscription)
    if now is None or _seen(connection, schema, subscription) == now:
        return
    connection.execute(
        text(sql.record_apply_seen(schema)),
        {"subscription": subscription, "apply_error_count": now[0], "stats_reset": now[1]},
    )


def apply_errors_since_success(
    connection: Connection, schema: str | None, subscription: str
) -> int | None:
    """The apply worker's errors since the consumer's last successful run (all of them when
    none is recorded or the statistics were reset since); ``None`` before PostgreSQL 15."""
    now = _apply_errors(connection, subscription)
    if now is None:
        return None
    seen = _seen(connection, schema, subscription)
    if seen is None or seen[1] != now[1] or seen[0] > now[0]:
        return now[0]
    return now[0] - seen[0]


def _apply_errors(connection: Connection, subscription: str) -> tuple[int, str | None] | None:
    if (connection.dialect.server_version_info or (0,)) < (15,):
        return None
    row = connection.execute(
        text(sql.APPLY_ERRORS_SINCE_RESET), {"subscription": subscription}
    ).first()
    return None if row is None else (int(row.apply_error_count or 0), row.stats_reset)


def _seen(
    connection: Connection, schema: str | None, subscription: str
) -> tuple[int, str | None] | None:
    """What the last successful run recorded (not probed when the table is not there yet: a
    target made by an older release, or no run succeeded)."""
    table = name_text(schema, sql.APPLY_SEEN_TABLE)
    if not connection.execute(text(sql.EXISTING), {"names": [table]}).first():
        return None
    row = connection.execute(text(sql.apply_seen(schema)), {"subscription": subscription}).first()
    return None if row is None else (int(row.apply_error_count), row.stats_reset)


def missing_row_conflicts(connection: Connection, subscription: str) -> tuple[str, ...]:
    """Problems for ``cdc status`` (PostgreSQL 18+ target; nothing before): changes the apply
    worker skipped because the replica had no row for them, so the trail lacks them."""
    if (connection.dialect.server_version_info or (0,)) < (18,):
        return ()
    row = connection.execute(
        text(sql.MISSING_ROW_CONFLICTS), {"subscription": subscription}
    ).first()
    if row is None or not (row.confl_update_missing or row.confl_delete_missing):
        return ()
    return (
        f"subscription {subscription!r}: {row.confl_update_missing} UPDATE(s) and "
        f"{row.confl_delete_missing} DELETE(s) found no row in the target's replica and were "
        "skipped, so the trail lacks them: the replica lacks rows of the source (changed on "
        "the target by hand, or older than the slot).  Run the consumer (it copies rows a "
        "replica lacks after a table joins the publication or a partition is attached), then "
        "record a baseline where the trail is so the gap shows in the history; then "
        "acknowledge them with pg_stat_reset_subscription_stats (on the target, given the "
        "subscription's oid in pg_subscription; the counts are cumulative)",
    )
