"""The documented way to remove old history from an ``append_only`` audit table.

The append-only guard refuses every UPDATE, DELETE and TRUNCATE of audit rows.  A retention
policy still has to remove old rows, so the guard lets one kind of DELETE through: rows older
than the transaction-local setting this module sets for the duration of one statement, a bound
no later than the transaction's start, and all of them (a statement that leaves a row recorded
before the bound is refused whole).  The guard then writes a ``P`` marker row whose
``audit_operation_timestamp`` is the bound and ``audit_current_user`` who purged, so the trail
says "history before <bound> purged".

A CDC table whose decoder rebuilds old rows from its history (``lifecycle.rebuilt``) is
refused: removing versions would stop the decoder for good.

A hold (``lifecycle.holds``) pauses a purge as it pauses ``maintain``'s retention: every
removal the library offers waits while a hold is left, except ``erase``, which is a legal duty
of its own.  The purge reads the holds under the lock ``hold`` takes exclusively, so a hold
placed meanwhile is waited for and then seen (at READ COMMITTED, which the purge requires).
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa

from .declare.declaration import declared_audit
from .declare.spec import AUDIT_CURRENT_USER, AUDIT_OPERATION, AUDIT_TIMESTAMP
from .errors import AuditError
from .install.ddl import resolve_spec
from .lifecycle.holds import held_reason
from .lifecycle.isolation import refuse_other_level
from .lifecycle.rebuilt import DEFAULT_TIMEOUT, refuse_removal
from .render import PURGE_BEFORE_SETTING, PURGE_OPERATION_CODE


def purge_audit_history(
    connection: sa.Connection,
    table: sa.Table,
    *,
    before: datetime.datetime,
    timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """Delete the audit rows of ``table`` recorded before ``before``; returns how many.

    Runs in the caller's transaction (commit it to make the purge stick).  The caller needs
    DELETE and INSERT on the audit table, which the least-privilege grants give only to the
    audit owner.  Works on tables without ``append_only`` too: there the guard that writes the
    ``P`` marker is absent, so this writes it (``erase`` finds by it that an archive still
    holds what the purge removed here; ``removed_history`` reports it).
    On an ``append_only`` table, a ``before`` later than the transaction's start is refused.
    Refused, naming the holds, while the table's history is held (``hold``), and on a
    connection above READ COMMITTED (the holds would be read with an older snapshot).
    Refused for a CDC table whose decoder rebuilds old rows from this history
    (``lifecycle.rebuilt``: published here with replica identity ``default``); under ``full``
    it waits up to ``timeout`` seconds for the consumer to pass the WAL written before it
    (changes logged under ``default`` carry only the key), and is refused, naming the slot,
    when it does not.
    """
    spec, audit_table = declared_audit(table)
    if not isinstance(before, datetime.datetime):
        raise TypeError(f"before must be a datetime, got {before!r}")
    refuse_other_level(connection, "purge_audit_history")
    resolved = resolve_spec(connection, spec)
    refuse_removal(connection, table, resolved, "purge_audit_history", timeout)
    held = held_reason(connection, resolved.schema, resolved.audit_table)
    if held is not None:
        raise AuditError(
            f"purge_audit_history: the history of {table.fullname!r} is held ({held}); a hold "
            "pauses every removal of history but erase: release it first"
        )
    flag = sa.func.set_config(PURGE_BEFORE_SETTING, before.isoformat(), True)
    connection.execute(sa.select(flag))
    deleted = connection.execute(
        audit_table.delete().where(audit_table.c[AUDIT_TIMESTAMP] < before)
    )
    # Cleared at once: later deletes in the same transaction are refused again.  (A failed
    # delete aborts the transaction, which discards the setting with it.)
    connection.execute(sa.select(sa.func.set_config(PURGE_BEFORE_SETTING, "", True)))
    if deleted.rowcount and not spec.append_only:  # the guard's marker, where it is absent
        connection.execute(
            audit_table.insert().values(
                {
                    AUDIT_OPERATION: PURGE_OPERATION_CODE,
                    AUDIT_TIMESTAMP: before,
                    AUDIT_CURRENT_USER: sa.func.current_user(),
                }
            )
        )
    return int(deleted.rowcount)
