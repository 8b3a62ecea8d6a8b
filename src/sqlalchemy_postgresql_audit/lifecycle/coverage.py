"""How well a partitioned audit table's partitions cover the writes to come: ``check`` reports
it, and fails when the next write would land in the DEFAULT partition (a gap ``maintain`` has
to close), when writes are about to (the partitions end less than one partition's period
ahead: ``maintain`` evidently stopped running), when there is no DEFAULT partition to catch
it, or when a conversion to partitions stopped after its first step (its leftover constraint
will refuse writes).  It also reports detaches left pending (a ``DETACH ... CONCURRENTLY``
interrupted): such a partition covers nothing."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import sqlalchemy as sa

from ..install.compare import OK, OUTDATED, Watched
from .partition_catalog import (
    default_rows,
    has_default_partition,
    pending_detaches,
    range_partitions,
)
from .partman import stale_registration
from .periods import utc
from .unfinished import Unfinished, unfinished_conversion

#: ``Watched.state`` of a partitioned audit table whose next write has no range partition.
GAP = "gap"


@dataclass(frozen=True, slots=True, kw_only=True)
class Coverage:
    #: The end of the unbroken run of range partitions holding ``at`` (``None``: none holds it).
    covered_until: datetime.datetime | None
    #: Whether that run ends less than its last partition's period after ``at``: writes are
    #: about to land in the DEFAULT partition (``maintain`` keeps four periods ahead).
    ending: bool = False
    #: Rows in the DEFAULT partition, waiting for ``maintain`` to move them.
    waiting: int
    has_default: bool
    #: Partitions whose detach was left pending: they take no writes and show no history.
    pending: tuple[str, ...] = ()
    #: A conversion to partitions that stopped after its first step.
    unfinished: Unfinished | None = None


def coverage(
    connection: sa.Connection,
    schema: str | None,
    audit_table: str,
    at: datetime.datetime | None = None,
) -> Coverage:
    moment = utc(at or datetime.datetime.now(datetime.timezone.utc))
    covered_until = None
    ending = False
    pending = tuple(pending_detaches(connection, schema, audit_table))
    for partition in range_partitions(connection, schema, audit_table):
        if partition.name in pending:
            continue
        start = moment if covered_until is None else covered_until
        if partition.lower <= start < partition.upper:
            covered_until = partition.upper
            ending = partition.upper - moment < partition.upper - partition.lower
    has_default = has_default_partition(connection, schema, audit_table)
    waiting = default_rows(connection, schema, audit_table) if has_default else 0
    return Coverage(
        covered_until=covered_until,
        ending=ending,
        waiting=waiting,
        has_default=has_default,
        pending=pending,
        unfinished=unfinished_conversion(connection, schema, audit_table),
    )


def coverage_watched(audit_table: str, found: Coverage) -> Watched:
    """``check``'s view: ``gap`` when the next write has no range partition (or no DEFAULT
    partition catches it), when the partitions end within one period, or a detach was left
    pending, else ``ok`` with how far ahead partitions exist."""
    if found.unfinished is not None:  # not partitioned yet: nothing else applies
        return Watched("partitions", audit_table, GAP, (found.unfinished.advice(),))
    notes = []
    if not found.has_default and found.covered_until is None:
        notes.append("no DEFAULT partition and no partition holds the present: writes fail")
    elif not found.has_default:
        notes.append("no DEFAULT partition: a write no partition holds fails")
    elif found.covered_until is None:
        notes.append("no partition holds the present: writes land in the DEFAULT partition")
    if found.covered_until is not None:
        notes.append(f"partitions until {found.covered_until.isoformat()}")
    if found.ending:
        notes.append(
            "less than one partition's period ahead: writes land in the DEFAULT partition "
            "from then on; run maintain (is its schedule running?)"
        )
    if found.waiting:
        notes.append(f"{found.waiting} rows wait in the DEFAULT partition")
    for partition in found.pending:
        notes.append(
            f"the detach of partition {partition} was left pending: its rows are out of "
            "history and its period takes no writes; finish it (ALTER TABLE ... DETACH "
            "PARTITION ... FINALIZE), then attach it again to keep its rows"
        )
    gap = (
        found.covered_until is None or found.ending or not found.has_default or bool(found.pending)
    )
    return Watched("partitions", audit_table, GAP if gap else OK, tuple(notes))


def registration_watched(
    connection: sa.Connection, schema: str | None, audit_table: str
) -> list[Watched]:
    """``check``'s view of the audit table's registration with pg_partman: ``outdated`` when
    it is registered but not partitioned (a conversion undone, the table dropped by hand),
    which makes pg_partman's maintenance fail for the whole database."""
    problem = stale_registration(connection, schema, audit_table)
    return [] if problem is None else [Watched("pg_partman", audit_table, OUTDATED, (problem,))]
