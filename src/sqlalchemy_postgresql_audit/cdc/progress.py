"""Where the trail stands: the last transaction written, and how much of it.

Recorded in the target, in the same transaction as the audit rows it covers, so that after a
crash the decoder neither loses nor repeats a change: it reads the slot again from the slot's
position (advanced only after such a commit) and skips what the progress row covers.  The
commit LSN alone is no key for one change (a transaction larger than one batch is written in
several), hence the position within the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from ..declare.audit_table import AUDIT_TABLE_COMMENT_SUFFIX
from ..install.planted import catalog_tables
from ..render.cdc_decoder import (
    PROGRESS_OTHER_RIGHTS,
    PROGRESS_TABLE,
    create_progress_table,
    progress_table_exists,
    read_progress,
    record_progress,
)
from ..render.cdc_health import (
    add_health_columns,
    health_columns_present,
    read_health,
    record_caught_up,
    record_failure,
    refresh_caught_up,
)
from ..render.sql import name_text
from .claim import lock_creating
from .errors import CdcError
from .pgoutput import format_lsn, parse_lsn


@dataclass(frozen=True, slots=True)
class Progress:
    #: The end of the commit record of the last transaction written (0: none yet).
    end_lsn: int = 0
    #: How many of that transaction's changes are written.
    position: int = 0
    #: Whether all of them are.
    complete: bool = True

    def written(self, end_lsn: int) -> int | None:
        """How many changes of the transaction ending at ``end_lsn`` the trail already holds:
        ``None`` for all of them (skip it), else a count of leading changes to skip."""
        if end_lsn < self.end_lsn or (end_lsn == self.end_lsn and self.complete):
            return None
        return self.position if end_lsn == self.end_lsn else 0


#: The progress table's comment: marks it as the library's (Alembic never drops it).
PROGRESS_COMMENT = "change-data-capture decoder's progress" + AUDIT_TABLE_COMMENT_SUFFIX


def ensure_progress_table(connection: Connection, schema: str | None) -> None:
    """Create the progress table unless it exists, and add the consumer's health columns
    (``.render.cdc_health``) to one an older release made; under the creation lock, looking
    again once it is held, so two consumers starting together (on other slots: they share the
    table) neither fail on each other's table nor replace its grants and comment.  Then refuse
    one another role made first (``refuse_planted_progress``), before anything writes to it."""
    _ensure(connection, schema)
    refuse_planted_progress(connection, schema)


def _ensure(connection: Connection, schema: str | None) -> None:
    if _complete(connection, schema):
        return
    lock_creating(connection)
    if _complete(connection, schema):
        return
    if not connection.exec_driver_sql(progress_table_exists(schema)).scalar():
        for statement in create_progress_table(schema, PROGRESS_COMMENT):
            connection.exec_driver_sql(statement)
    for statement in add_health_columns(schema):
        connection.exec_driver_sql(statement)


def refuse_planted_progress(connection: Connection, schema: str | None) -> None:
    """Refuse a progress table owned by a role this one neither is nor was granted, or carrying
    code the library never makes there (``install.planted``): made first under the name by a
    role that may create in the schema, its triggers would run as the consumer, and its owner
    could move the progress row past changes the trail never got."""
    for table in catalog_tables(connection, [name_text(schema, PROGRESS_TABLE)]):
        if not table.owned:
            raise CdcError(
                f"the consumer's progress table {table.name} is owned by role {table.owner!r}, "
                "which the consumer's role neither is nor was granted: made first under the "
                "name, its triggers would run as the consumer, and its owner could move the "
                f"progress past changes the trail never got.  Drop it, or ALTER TABLE "
                f"{table.name} OWNER TO the consumer's role"
            )
        if table.foreign_code:
            raise CdcError(
                f"the consumer's progress table {table.name} carries "
                f"{', '.join(table.foreign_code)}, which the library never makes there: it "
                "would run as the consumer.  Drop what is not the library's"
            )


def _complete(connection: Connection, schema: str | None) -> bool:
    """The progress table exists with every column of this release."""
    return bool(connection.exec_driver_sql(health_columns_present(schema)).scalar())


def keep_private(connection: Connection, schema: str | None) -> None:
    """Take every right on the progress table from every role but its owner (default
    privileges may have granted some when it was made): a role that can move the progress
    row forward makes the decoder skip changes."""
    table = name_text(schema, PROGRESS_TABLE)
    for (revoke,) in connection.exec_driver_sql(PROGRESS_OTHER_RIGHTS, {"table": table}).all():
        connection.exec_driver_sql(revoke)


def load_progress(connection: Connection, schema: str | None, slot: str) -> Progress:
    row = connection.exec_driver_sql(read_progress(schema), {"slot": slot}).first()
    if row is None:
        return Progress()
    return Progress(parse_lsn(row[0]), int(row[1]), bool(row[2]))


def save_progress(
    connection: Connection, schema: str | None, slot: str, progress: Progress
) -> None:
    connection.exec_driver_sql(
        record_progress(schema),
        {
            "slot": slot,
            "end_lsn": format_lsn(progress.end_lsn),
            "position": progress.position,
            "complete": progress.complete,
        },
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    """How the consumer of a slot is doing, as it recorded it (``cdc status`` reads it)."""

    #: The last error of the runs that failed in a row (none once a run succeeds).
    last_error: str | None = None
    last_error_at: datetime | None = None
    #: How many runs in a row failed.
    failures: int = 0
    #: Seconds since the trail last moved: a batch written, or a run that caught up.
    idle_seconds: float | None = None
    #: Seconds since a run that caught up began: every change committed before then is in the
    #: trail, so no change missing from it is older.
    behind_seconds: float | None = None


def record_run_failed(connection: Connection, schema: str | None, slot: str, error: str) -> None:
    """One more run in a row failed with ``error`` (creating the progress table if need be:
    a consumer can fail before its first batch)."""
    ensure_progress_table(connection, schema)
    connection.exec_driver_sql(record_failure(schema), {"slot": slot, "error": error})


def record_run_caught_up(
    connection: Connection, schema: str | None, slot: str, elapsed: float
) -> None:
    """A run that began ``elapsed`` seconds ago ended without error: clear the last error."""
    ensure_progress_table(connection, schema)
    connection.exec_driver_sql(record_caught_up(schema), {"slot": slot, "elapsed": elapsed})


def refresh_run_caught_up(
    connection: Connection, schema: str | None, slot: str, elapsed: float, every: float
) -> None:
    """As ``record_run_caught_up`` once it has made the row, writing only when a failure
    stands or the time recorded is more than ``every`` seconds old."""
    connection.exec_driver_sql(
        refresh_caught_up(schema), {"slot": slot, "elapsed": elapsed, "every": every}
    )


def load_health(connection: Connection, schema: str | None, slot: str) -> Health | None:
    """``None`` when nothing is recorded (no consumer ran, or an older release's table)."""
    if not _complete(connection, schema):
        return None
    row = connection.exec_driver_sql(read_health(schema), {"slot": slot}).first()
    if row is None:
        return None
    return Health(
        last_error=row.last_error,
        last_error_at=row.last_error_at,
        failures=int(row.failures),
        idle_seconds=None if row.idle_seconds is None else float(row.idle_seconds),
        behind_seconds=None if row.behind_seconds is None else float(row.behind_seconds),
    )
