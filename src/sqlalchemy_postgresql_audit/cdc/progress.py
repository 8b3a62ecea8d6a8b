"""Where the trail stands: the last transaction written, and how much of it.

Recorded in the target, in the same transaction as the audit rows it covers, so that after a
crash the decoder neither loses nor repeats a change: it reads the slot again from the slot's
position (advanced only after such a commit) and skips what the progress row covers.  The
commit LSN alone is no key for one change (a transaction larger than one batch is written in
several), hence the position within the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from ..declare.audit_table import AUDIT_TABLE_COMMENT_SUFFIX
from ..render.cdc_decoder import (
    PROGRESS_OTHER_RIGHTS,
    PROGRESS_TABLE,
    create_progress_table,
    progress_table_exists,
    read_progress,
    record_progress,
)
from ..render.sql import name_text
from .claim import lock_creating
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
    """Create the progress table unless it exists; under the creation lock, looking again once
    it is held, so two decoders starting together (on other slots: they share the table)
    neither fail on each other's table nor replace its grants and comment."""
    if _progress_table_exists(connection, schema):
        return
    lock_creating(connection)
    if _progress_table_exists(connection, schema):
        return
    for statement in create_progress_table(schema, PROGRESS_COMMENT):
        connection.exec_driver_sql(statement)


def _progress_table_exists(connection: Connection, schema: str | None) -> bool:
    return bool(connection.exec_driver_sql(progress_table_exists(schema)).scalar())


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
