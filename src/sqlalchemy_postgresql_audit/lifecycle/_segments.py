"""Where a segment's rows are and how they are read: the audit table's partitions with their
bounds, its committed columns, and the rows of one partition in ``audit_id`` order as
canonical text (``_chain.canonical_text`` must be in force).  Shared by sealing, verifying and
erasing, so that the three read a row identically."""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ..declare.spec import AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP
from ..render.partitioning import RETENTION_OPERATION_CODE
from ..render.seals import RELATION_KIND, TABLE_COLUMNS
from ..render.sql import name_text
from .partition_catalog import range_partitions

#: Committed to by the row digest itself; every other column gets a commitment.
HEADER = (AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP)
#: Rows read per round trip when streaming.
BATCH = 20_000

Row = tuple[int, str, str, datetime.datetime, tuple[str | None, ...]]


@dataclass(frozen=True, slots=True)
class Place:
    """A partition (or the unpartitioned audit table itself) and the time it holds."""

    name: str
    lower: datetime.datetime | None
    upper: datetime.datetime | None


def committed_columns(connection: sa.Connection, schema: str | None, table: str) -> list[str]:
    names = connection.execute(sa.text(TABLE_COLUMNS), {"table": name_text(schema, table)})
    return [name for name in names.scalars() if name not in HEADER]


def places(connection: sa.Connection, schema: str | None, audit_table: str) -> list[Place]:
    """The range partitions of a partitioned audit table, else the table itself."""
    kind = connection.execute(
        sa.text(RELATION_KIND),
        {"t": name_text(schema, audit_table)},
    ).scalar_one()
    if kind != "p":
        return [Place(audit_table, None, None)]
    return [
        Place(p.name, p.lower, p.upper) for p in range_partitions(connection, schema, audit_table)
    ]


def stream_rows(
    connection: sa.Connection,
    table: sa.TableClause,
    columns: Sequence[str],
    where: sa.ColumnElement[bool],
) -> Iterator[Row]:
    """``(audit_id, operation, time as text, time, values as text)`` of the rows of ``table``
    (a ``relation_table``) matching ``where``, retention markers left out, by ``audit_id``."""
    texts = [sa.cast(table.c[name], sa.Text) for name in columns]
    statement = (
        sa.select(
            table.c[AUDIT_ID],
            table.c[AUDIT_OPERATION],
            sa.cast(table.c[AUDIT_TIMESTAMP], sa.Text),
            table.c[AUDIT_TIMESTAMP],
            *texts,
        )
        .where(where, table.c[AUDIT_OPERATION] != RETENTION_OPERATION_CODE)
        .order_by(table.c[AUDIT_ID])
        .execution_options(stream_results=True, yield_per=BATCH)
    )
    for row in connection.execute(statement):
        yield (row[0], row[1], row[2], row[3], tuple(row[4:]))


def relation_table(schema: str | None, relation: str, columns: Sequence[str]) -> sa.TableClause:
    return sa.table(
        relation,
        sa.column(AUDIT_ID, sa.BigInteger),
        sa.column(AUDIT_OPERATION, sa.Text),
        sa.column(AUDIT_TIMESTAMP, sa.DateTime(timezone=True)),
        *(sa.column(name) for name in columns),
        schema=schema,
    )
