"""What the database holds of a partitioned audit table: its range partitions with their
bounds, its DEFAULT partition and the rows waiting there, and the partitions retention detached
and kept.  Read by ``maintenance``, ``coverage`` and erasure (which must reach kept
partitions too)."""

from __future__ import annotations

import datetime
import warnings
from dataclasses import dataclass

import sqlalchemy as sa

from ..declare.audit_table import AUDIT_TABLE_COMMENT_SUFFIX
from ..declare.spec import AUDIT_TIMESTAMP
from ..install.compare import UNEXPECTED, Watched
from ..render.erasure import KEPT_PARTITIONS
from ..render.partitioning import PARTITION_COMMENT_PREFIX, default_partition
from ..render.sql import name_text

#: The range partitions of a table, bounds read back as timestamptz (rendered and parsed in
#: the same session time zone, so they round-trip exactly).
_PARTITIONS = sa.text(
    """
    SELECT c.relname AS name,
           CAST((pg_catalog.regexp_match(b.bound, 'FROM \\(''([^'']*)''\\)'))[1]
                AS timestamptz) AS lower,
           CAST((pg_catalog.regexp_match(b.bound, 'TO \\(''([^'']*)''\\)'))[1]
                AS timestamptz) AS upper
    FROM pg_catalog.pg_inherits i
    JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid)) AS b(bound)
    WHERE i.inhparent = CAST(:parent AS regclass) AND b.bound LIKE 'FOR VALUES FROM (%'
    ORDER BY 2
    """
)


def partition_comment(audit_table: str) -> str:
    """Every partition's comment, kept when retention detaches it: it tells the partitions of
    an audit table, attached or kept, apart from other tables.  It ends like an audit table's,
    so that Alembic's autogenerate keeps it (never proposes to drop it) as it keeps audit
    tables; ``kept`` matches only the comment of an audit table itself."""
    return f"{PARTITION_COMMENT_PREFIX}{audit_table}{AUDIT_TABLE_COMMENT_SUFFIX}"


@dataclass(frozen=True, slots=True)
class Kept:
    """The partitions retention detached and kept, and the tables that carry their comment
    but are not the library's (``render.erasure`` says what counts), with why not."""

    names: tuple[str, ...]
    suspicious: tuple[tuple[str, str], ...]


def kept_partitions(
    connection: sa.Connection, schema: str | None, audit_table: str, *, warn: bool = True
) -> Kept:
    """``audit_table``'s kept partitions in ``schema`` (the current schema when ``None``),
    oldest first (their names end with their period); a warning (``warn``) names each
    suspicious table, which is left alone."""
    if schema is None:
        schema = connection.execute(sa.select(sa.func.current_schema())).scalar_one()
    found = connection.execute(
        sa.text(KEPT_PARTITIONS),
        {
            "schema": schema,
            "audit_table": name_text(schema, audit_table),
            "comment": partition_comment(audit_table),
        },
    ).all()
    kept = Kept(
        names=tuple(row.name for row in found if row.problem is None),
        suspicious=tuple((row.name, row.problem) for row in found if row.problem is not None),
    )
    for name, problem in kept.suspicious if warn else ():
        warnings.warn(
            f"{name_text(schema, name)} carries the comment of a kept partition of "
            f"{name_text(schema, audit_table)} but is not one, so it is ignored (neither listed "
            f"nor erased): {problem}.  Check who made it.",
            UserWarning,
            stacklevel=3,
        )
    return kept


def look_alikes_watched(
    connection: sa.Connection, schema: str | None, audit_table: str
) -> list[Watched]:
    """``check``'s view: each table made to look like a kept partition, ``unexpected``."""
    found = kept_partitions(connection, schema, audit_table, warn=False)
    return [
        Watched(
            "kept partition",
            name,
            UNEXPECTED,
            (
                f"{name} carries the comment of a kept partition of {audit_table} but is not one: "
                f"{problem}",
            ),
        )
        for name, problem in found.suspicious
    ]


def detached_partitions(connection: sa.Connection, audit_table: sa.Table | str) -> list[str]:
    """The names of ``audit_table``'s partitions that retention detached and kept (with
    ``retention_keep``), in its schema, oldest first; tables only made to look like them are
    left out, each with a warning (``kept_partitions``).  ``audit_table``: the audit ``Table``,
    or its name (``"name"`` or ``"schema.name"``)."""
    if isinstance(audit_table, sa.Table):
        schema, name = audit_table.schema, audit_table.name
    elif isinstance(audit_table, str):
        schema, _, name = audit_table.rpartition(".")
        schema = schema or None
    else:
        raise TypeError(
            f"audit_table must be an audit Table or its name (str), got {audit_table!r}"
        )
    return list(kept_partitions(connection, schema, name).names)


_UNCOMMENTED = sa.text(
    """
    SELECT c.relname FROM pg_catalog.pg_inherits i
    JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = CAST(:parent AS regclass)
      AND pg_catalog.obj_description(c.oid, 'pg_class') IS DISTINCT FROM :comment
    ORDER BY 1
    """
)


def uncommented_partitions(
    connection: sa.Connection, schema: str | None, audit_table: str, comment: str
) -> list[str]:
    """Partitions lacking ``comment``: made by someone else than ``maintain`` (pg_partman)."""
    found = connection.execute(
        _UNCOMMENTED, {"parent": name_text(schema, audit_table), "comment": comment}
    )
    return list(found.scalars())


@dataclass(frozen=True, slots=True)
class RangePartition:
    name: str
    lower: datetime.datetime
    upper: datetime.datetime


def range_partitions(
    connection: sa.Connection, schema: str | None, audit_table: str
) -> list[RangePartition]:
    rows = connection.execute(_PARTITIONS, {"parent": name_text(schema, audit_table)})
    return [RangePartition(name=row.name, lower=row.lower, upper=row.upper) for row in rows]


_PENDING = sa.text(
    """
    SELECT c.relname FROM pg_catalog.pg_inherits i
    JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = CAST(:parent AS regclass) AND i.inhdetachpending
    ORDER BY 1
    """
)


def pending_detaches(connection: sa.Connection, schema: str | None, audit_table: str) -> list[str]:
    """Partitions a ``DETACH PARTITION ... CONCURRENTLY`` left half done (interrupted, or its
    session crashed): new queries no longer see them, nor route writes to them, until
    ``ALTER TABLE ... DETACH PARTITION ... FINALIZE``.  The library never detaches
    concurrently (PostgreSQL refuses it beside a DEFAULT partition); someone else did, with
    the DEFAULT partition gone.  PostgreSQL 14 added the state: none before."""
    version = connection.dialect.server_version_info or (0,)
    if version < (14,):
        return []
    found = connection.execute(_PENDING, {"parent": name_text(schema, audit_table)})
    return list(found.scalars())


def default_table(schema: str | None, audit_table: str) -> sa.TableClause:
    return sa.table(default_partition(audit_table), sa.column(AUDIT_TIMESTAMP), schema=schema)


def has_default_partition(connection: sa.Connection, schema: str | None, audit_table: str) -> bool:
    found = connection.execute(
        sa.select(sa.func.to_regclass(name_text(schema, default_partition(audit_table))))
    ).scalar()
    return found is not None


def default_rows(connection: sa.Connection, schema: str | None, audit_table: str) -> int:
    table = default_table(schema, audit_table)
    return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def default_moments(
    connection: sa.Connection, schema: str | None, audit_table: str, unit: str
) -> list[datetime.datetime]:
    """One moment per period (``unit``: day, week, month, in UTC) with rows in the DEFAULT
    partition."""
    table = default_table(schema, audit_table)
    start = sa.func.date_trunc(unit, table.c[AUDIT_TIMESTAMP], "UTC")
    return list(connection.execute(sa.select(start).distinct()).scalars())
