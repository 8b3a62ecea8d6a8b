"""Design 1: the stale-row replacement (``render.cdc_stale``) switched on only while the source is
known to have lost rows outside the stream, on the tables that did, and until the comparison
has run.

The source loses rows without a DELETE in the stream when a partition is dropped, detached or
truncated, or when a new subscription starts after a lost slot's gap.  The replica keeps them,
and a later INSERT of one of their keys stops the apply worker.  While the consumer waits for
its fence and the worker fails, the consumer looks at the tables' signatures (``.signature``):
on the tables that changed outside the stream since the last comparison (a leaf came, went, or
came back in another version; the table made again), it switches the replacement on, the
worker's next try
applies the change, and the comparison at the end of the run makes the replica right; then
the replacement goes off again.  Otherwise the error stays an error: with the replacement on
for good, a key the models declare narrower than the source's, or one made deferrable on the
source since the consumer started, would make a live row look stale.  Switching on installs
the triggers again first, so a key changed since then is seen.
"""

from __future__ import annotations

from collections.abc import Set

from sqlalchemy import Table, text

from ..render import cdc_stale as sql
from ..render.sql import name_text
from .replica import Replica
from .signature import signatures
from .stale_triggers import replacing_triggers


def changed_outside_the_stream(replica: Replica) -> set[str]:
    """The tables (regclass texts) whose source changed outside the stream since their replica
    was compared: made again, published again, or any leaf partition that came, went, or came
    back in another version (a partition made after the comparison may have been filled and
    truncated or dropped since)."""
    now, recorded = signatures(replica)
    changed = set()
    for name, current in now.items():
        previous = recorded.get(name)
        if current is None or previous is None:
            continue  # not there yet, or never compared: its join or first comparison copies it
        before, after = previous.leaf_versions, current.leaf_versions
        if current.table != previous.table or before is None or before != after:
            changed.add(name)
    return changed


def start_replacing(replica: Replica, tables: Set[str] | None = None) -> None:
    """The replacing triggers of ``tables`` (all: ``None``) made again and switched on, one
    table at a time."""
    for table in _chosen(replica, tables):
        with replica.target.begin() as target, replica.source.connect() as source:
            replacing_triggers(target, source, replica.names, table, on=True)


def stop_replacing(replica: Replica, tables: Set[str] | None = None) -> None:
    """The replacing triggers of ``tables`` (all: ``None``) off, one table at a time."""
    for table in _chosen(replica, tables):
        with replica.target.begin() as target:
            name = name_text(table.schema, table.name)
            if target.execute(text(sql.HAS_REPLACING), {"table": name}).scalar():
                for statement in sql.switch(table.schema, table.name, enabled=False):
                    target.exec_driver_sql(statement)


def _chosen(replica: Replica, tables: Set[str] | None) -> list[Table]:
    return [
        table
        for table, _ in replica.pairs()
        if tables is None or name_text(table.schema, table.name) in tables
    ]
