"""Moving rows that wait outside the range partitions (the DEFAULT partition, detached by
``maintain``, or the one pg_partman's registration set aside) into the range partitions made
for them, without passing them through the partitioned parent again.

Each target partition is detached while it is filled and attached again (a scan of the rows
just moved), so a publication of the audit table (``lifecycle.archive``) never sees the moved
rows a second time: an archive server receives each row once.

Every column the table has in the database is copied, read from the catalog: an audit column
the model no longer declares (its source column was dropped, its history kept) keeps its
values.  The source is indexed on the timestamp first when rows of several periods wait, so
that each period's move reads its own rows instead of scanning the whole source again.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import sqlalchemy as sa

from ..declare.spec import AUDIT_TIMESTAMP
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
    return sa.table(table, sa.column(AUDIT_TIMESTAMP), schema=schema)


def waiting_moments(
    connection: sa.Connection, schema: str | None, table: str, unit: str
) -> list[datetime.datetime]:
    """One moment per period (``unit``: day, week, month, in UTC) with rows in ``table``."""
    source = _source(schema, table)
    start = sa.func.date_trunc(unit, source.c[AUDIT_TIMESTAMP], "UTC")
    return list(connection.execute(sa.select(start).distinct()).scalars())


def row_count(connection: sa.Connection, schema: str | None, table: str) -> int:
    source = _source(schema, table)
    return int(connection.execute(sa.select(sa.func.count()).select_from(source)).scalar_one())


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
    if len(wanted) > 1:
        _run(connection, sql.index_timestamp(schema, source))
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
