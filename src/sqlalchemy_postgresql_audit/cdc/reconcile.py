"""Design 1: the replica made equal to the source table, by key and values, each difference
recorded in the trail.

Called by the seed (``.seed``) with the source table locked ``IN SHARE MODE`` and the
subscription caught up to the lock, so the two sides differ only by what the stream never
carried: rows older than the slot, rows an attached partition brought, rows of a partition
detached or dropped, a partition reloaded with new values for the same keys, or, after a lost
slot, every change of the gap.  The source's rows are copied into a temporary table on the
target and compared there, by key and binary image (``render.cdc_reconcile``); in one target
transaction, with the replica's audit triggers off (these are no changes of the source):

- a row the replica has and the source lacks is removed; recorded as a ``D`` version with the
  values the replica held when ``removed_code`` says so (after a lost slot: the row was deleted
  in the gap, when and by whom is lost), else not at all (a partition detached: trigger mode
  records nothing either, since no trigger fires);
- a row whose values differ gets the source's, recorded as a ``B`` version with them;
- a row the replica lacks is copied, recorded as a ``B`` version.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

from sqlalchemy import Connection, Table

from ..declare.spec import AuditSpec
from ..install.resolve import resolve_specs
from ..render import cdc_reconcile as reconcile_sql
from ..render import cdc_replica as sql
from ..render.baseline import BASELINE_CODE
from .copy import CHUNK_BYTES, copy_in, copy_out_to

#: Rows copied from the source stay in memory up to this size, then go to a temporary file.
_SPOOL_BYTES = 32 << 20


@dataclass(frozen=True, slots=True)
class Reconciled:
    #: Rows the replica lacked, copied.
    copied: int
    #: Rows whose values differed, replaced.
    replaced: int
    #: Rows the source lacked, removed.
    removed: int

    @property
    def changed(self) -> int:
        return self.copied + self.replaced + self.removed


def load(source: Connection, target: Connection, table: Table) -> None:
    """Copy the source's rows (as of this statement) into a temporary table on the target,
    dropped when the target's transaction ends."""
    columns = [c.name for c in table.columns if c.computed is None]
    for setting in sql.COPY_SETTINGS:
        source.exec_driver_sql(setting)
        target.exec_driver_sql(setting)
    create, copy = sql.seed_rows_table(table.schema, table.name, columns)
    target.exec_driver_sql(create)
    # Spooled, and sent a chunk at a time: a large table's rows never sit in memory whole.
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        copy_out_to(source, sql.copy_out(table.schema, table.name, columns), {}, spool)
        spool.seek(0)
        copy_in(target, copy, iter(lambda: spool.read(CHUNK_BYTES), b""))
    # A temporary table has no statistics: the three joins below would be planned blind.
    target.exec_driver_sql(sql.analyze_seed_rows())


def differences(target: Connection, table: Table) -> int:
    """How many replica rows ``reconcile`` would change, against the rows ``load`` copied;
    writes nothing."""
    columns = [c.name for c in table.columns if c.computed is None]
    key = [c.name for c in table.primary_key.columns]
    return _count(target, reconcile_sql.differences(table.schema, table.name, columns, key))


def reconcile(
    target: Connection, table: Table, spec: AuditSpec, *, removed_code: str | None
) -> Reconciled:
    """Make ``table``'s replica equal to the rows ``load`` copied (see the module), in the
    target's transaction, which the caller commits (or rolls back)."""
    columns = [c.name for c in table.columns if c.computed is None]
    key = [c.name for c in table.primary_key.columns]
    (capture,) = resolve_specs(target, [spec.capture_spec])
    shape = (capture.schema, capture.table, capture.audit_table, columns, capture.columns, key)
    triggers = [trigger.name for trigger in capture.triggers]
    for trigger in triggers:
        target.exec_driver_sql(sql.set_trigger(table.schema, table.name, trigger, enabled=False))
    removed = _count(target, reconcile_sql.remove_extra(*shape, removed_code))
    replaced = _count(target, reconcile_sql.replace_changed(*shape, BASELINE_CODE)) if key else 0
    copied = _count(target, sql.insert_missing(*shape))
    for trigger in triggers:
        target.exec_driver_sql(sql.set_trigger(table.schema, table.name, trigger, enabled=True))
    return Reconciled(copied=copied, replaced=replaced, removed=removed)


def _count(target: Connection, statement: str) -> int:
    return int(target.exec_driver_sql(statement).scalar_one())
