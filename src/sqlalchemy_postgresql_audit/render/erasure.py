"""SQL text of erasure: finding the partitions retention detached and kept.

A kept partition keeps its name and its comment (``maintenance.partition_comment``), and is no
longer a partition of anything, so it is found by that comment in the audit table's schema.
"""

from __future__ import annotations

from .sql import qualified, quote

#: Tables of a schema that were partitions of an audit table and are not any more.
KEPT_PARTITIONS = (
    "SELECT c.relname::text FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema AND c.relkind = 'r' AND NOT c.relispartition "
    "AND pg_catalog.obj_description(c.oid, 'pg_class') = :comment "
    "ORDER BY 1"
)


def lock_for_erasure(schema: str | None, table: str) -> str:
    """SHARE conflicts with the ROW EXCLUSIVE lock every writer holds until it commits: taken on
    the audited table and its audit table, it waits for writers in flight (whose audit rows the
    erasure could not see yet) and holds new ones back until the erasure commits."""
    return f"LOCK TABLE {qualified(schema, table)} IN SHARE MODE"


#: Whether the current role may take a SHARE lock on a table (LOCK TABLE's own rule).
MAY_LOCK = (
    "SELECT pg_catalog.has_table_privilege(CAST(:table AS pg_catalog.regclass), "
    "'UPDATE, DELETE, TRUNCATE')"
)


def analyze_erased(schema: str | None, table: str, columns: tuple[str, ...]) -> str:
    """Statistics are sampled values: ``pg_stats`` (most common values, histogram bounds) would
    keep showing an erased value until the next ANALYZE, so the erasure runs it on the columns
    it erased, in its own transaction (which no longer sees the values)."""
    return f"ANALYZE {qualified(schema, table)} ({', '.join(quote(c) for c in columns)})"
