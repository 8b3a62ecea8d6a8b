"""Design 1: stale replica rows out of the apply worker's way.

A partition detached or dropped on the source keeps its rows in the replica (no DELETE is
replicated).  When a key of one comes back on the source (a partition created again, a tenant
returning) before the seed ran, the apply worker stops on a duplicate key, retries for ever,
and no change of any CDC table reaches the trail; the seed cannot run either, since it waits
for the subscription to catch up.

So when the apply worker fails while the consumer waits, the consumer looks for such rows: in
each table whose leaf partitions lost one since its replica was last compared
(``.signature``), the replica rows whose key the source now holds in a leaf it did not have
then.  Those are removed from the replica with its audit triggers off, recording nothing (as
trigger mode records nothing for a detached partition); the worker's retry then applies the
INSERT, recorded as usual.  Rows the source does not hold at all are left alone: a later
DELETE in the stream may still be on its way to them; the seed removes what remains once the
subscription caught up.
"""

from __future__ import annotations

import logging

from sqlalchemy import Table, text

from ..declare.spec import AuditSpec
from ..install.resolve import resolve_specs
from ..render import cdc_reconcile as reconcile_sql
from ..render import cdc_replica as sql
from ..render.sql import name_text
from .copy import copy_in, copy_out
from .replica import Replica
from .signature import oid_array, signatures

_log = logging.getLogger(__name__)


def remove_stale_rows(replica: Replica) -> int:
    """Remove the replica rows that block the apply worker (see the module); how many."""
    now, recorded = signatures(replica)
    removed = 0
    for table, spec in replica.pairs():
        if not table.primary_key.columns:
            continue  # no key, no duplicate key
        name = name_text(table.schema, table.name)
        current, previous = now[name], recorded.get(name)
        if current is None or previous is None or current.table != previous.table:
            continue
        before, after = previous.leaves, current.leaves
        if before is None or after is None or before <= after:
            continue  # no leaf left (or unknown): no stale row to tell
        removed += _remove(replica, table, spec, before & after)
    return removed


def _remove(replica: Replica, table: Table, spec: AuditSpec, kept: frozenset[int]) -> int:
    """In ``table``'s replica, remove the rows whose key the source holds outside ``kept``
    (the leaves it had at the last comparison and still has)."""
    key = [c.name for c in table.primary_key.columns]
    with replica.source.connect() as source:
        for setting in sql.COPY_SETTINGS:
            source.exec_driver_sql(setting)
        query = reconcile_sql.copy_keys_with_leaf(table.schema, table.name, key)
        keys = copy_out(source, query, {})
    with replica.target.begin() as target:
        for setting in sql.COPY_SETTINGS:
            target.exec_driver_sql(setting)
        create, copy = reconcile_sql.stale_keys_table(table.schema, table.name, key)
        target.exec_driver_sql(create)
        copy_in(target, copy, [keys])
        (capture,) = resolve_specs(target, [spec.capture_spec])
        triggers = [trigger.name for trigger in capture.triggers]
        for trigger in triggers:
            target.exec_driver_sql(
                sql.set_trigger(table.schema, table.name, trigger, enabled=False)
            )
        removed = int(
            target.execute(
                text(reconcile_sql.delete_moved_to_new_leaves(table.schema, table.name, key)),
                {"kept": oid_array(kept)},
            ).scalar_one()
        )
        for trigger in triggers:
            target.exec_driver_sql(sql.set_trigger(table.schema, table.name, trigger, enabled=True))
    if removed:
        _log.warning(
            "change-data-capture replica of table %s: removed %d stale row(s) of a partition "
            "detached or dropped on the source, whose keys came back in another partition "
            "(the apply worker stopped on them); not recorded, as in trigger mode",
            name_text(table.schema, table.name),
            removed,
        )
    return removed
