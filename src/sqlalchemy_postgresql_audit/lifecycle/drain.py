"""Moving rows that wait outside the range partitions (the DEFAULT partition, detached by
``maintain``, or the one pg_partman's registration set aside) into the range partitions made
for them, without passing them through the partitioned parent again.

Each target partition is detached while it is filled and attached again (a scan of the rows
just moved), so a publication of the audit table (``lifecycle.archive``) never sees the moved
rows a second time: an archive server receives each row once.

Every column the table has in the database is copied, read from the catalog: an audit column
the model no longer declares (its source column was dropped, its history kept) keeps its
values.

Rows of periods that have ended can be copied before ``maintain`` takes the lock writers wait
for (``prefill``): into a plain table shaped like the parent, outside the tree (so neither
published nor seen twice), with a validated check of the period's bounds; under the lock,
``ATTACH`` then finds the bound implied and skips its scan, and what was copied is checked
against the DEFAULT partition's rows of that period (count and sum of ``audit_id``), so a row
that arrived since is never dropped: the period is then moved the slow way.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from ..declare.naming import fit_identifier
from ..declare.spec import AUDIT_ID, AUDIT_TIMESTAMP
from ..install.ddl import AuditDDL
from ..render import partitioning as sql
from ..render.sql import name_text
from .partition_catalog import range_partitions
from .periods import Period, bound_text

#: A table's stored columns, in order: dropped and generated columns are left out (a
#: generated column cannot be inserted into; it is computed again).
_COLUMNS = sa.text(
    "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = CAST(:t AS regclass) "
    "AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum"
)


def stored_columns(connection: sa.Connection, schema: str | None, table: str) -> tuple[str, ...]:
    """Every column ``table`` has in the database, declared in Python or not."""
    found = connection.execute(_COLUMNS, {"t": name_text(schema, table)}).scalars()
    return tuple(found)


def _source(schema: str | None, table: str) -> sa.TableClause:
    return sa.table(table, sa.column(AUDIT_TIMESTAMP), sa.column(AUDIT_ID), schema=schema)


@dataclass(frozen=True, slots=True)
class Tally:
    """The rows of one period: how many, and the sum of their ``audit_id``."""

    rows: int
    ids: int


def tallies(
    connection: sa.Connection, schema: str | None, table: str, unit: str
) -> dict[datetime.datetime, Tally]:
    """Per period start (``unit``: day, week, month, in UTC), the rows ``table`` holds: one
    scan."""
    source = _source(schema, table)
    start = sa.func.date_trunc(unit, source.c[AUDIT_TIMESTAMP], "UTC")
    query = sa.select(
        start, sa.func.count(), sa.func.coalesce(sa.func.sum(source.c[AUDIT_ID]), 0)
    ).group_by(start)
    return {
        moment: Tally(rows=int(rows), ids=int(ids))
        for moment, rows, ids in connection.execute(query)
    }


@dataclass(frozen=True, slots=True)
class Prefilled:
    """A table filled with one period's rows, outside the tree, ready to be attached."""

    period: Period
    table: str
    check: str
    tally: Tally


def prefill(
    connection: sa.Connection,
    schema: str | None,
    audit_table: str,
    source: str,
    period: Period,
    table: str,
) -> Prefilled:
    """Copy ``source``'s rows of ``period`` into ``table``, a new plain table shaped like the
    parent; no lock writers wait for is taken (the source and the parent are only read)."""
    lower, upper = bound_text(period.lower), bound_text(period.upper)
    check = fit_identifier(f"{table}_bounds")
    columns = stored_columns(connection, schema, source)
    _run(connection, sql.create_like_parent(schema, audit_table, table))
    _run(connection, sql.refill_partition(schema, source, table, columns, lower, upper))
    _run(connection, sql.add_bounds_check(schema, table, check, lower, upper))
    filled = _source(schema, table)
    rows, ids = connection.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(filled.c[AUDIT_ID]), 0))
    ).one()
    return Prefilled(period=period, table=table, check=check, tally=Tally(int(rows), int(ids)))


def waiting_moments(
    connection: sa.Connection, schema: str | None, table: str, unit: str
) -> list[datetime.datetime]:
    """One moment per period (``unit``: day, week, month, in UTC) with rows in ``table``."""
    source = _source(schema, table)
    start = sa.func.date_trunc(unit, source.c[AUDIT_TIMESTAMP], "UTC")
    return list(connection.execute(sa.select(start).distinct()).scalars())


def refill(
    connection: sa.Connection,
    schema: str | None,
    audit_table: str,
    source: str,
    periods: Iterable[Period],
) -> int:
    """Move ``source``'s rows (a table outside the partition tree) into the partitions
    covering ``periods``; returns how many rows were moved."""
    wanted = list(periods)
    columns = stored_columns(connection, schema, source)
    moved = 0
    for partition in range_partitions(connection, schema, audit_table):
        if not any(partition.lower <= period.lower < partition.upper for period in wanted):
            continue
        lower, upper = bound_text(partition.lower), bound_text(partition.upper)
        _run(connection, sql.detach_partition(schema, audit_table, partition.name))
        fill = sql.refill_partition(schema, source, partition.name, columns, lower, upper)
        moved += connection.execute(AuditDDL(fill)).rowcount
        _run(connection, sql.attach_partition(schema, audit_table, partition.name, lower, upper))
    return moved


def _run(connection: sa.Connection, statement: str) -> None:
    connection.execute(AuditDDL(statement))
