"""SQL text of erasure: finding the partitions retention detached and kept.

A kept partition keeps its name and its comment (``maintenance.partition_comment``), and is no
longer a partition of anything, so it is found by that comment in the audit table's schema.
The comment proves nothing (anyone may write it on a table of theirs), so each table found is
checked like a library table the library would adopt (``render.adoption``): owned by the audit
table's owner itself, a plain table with no column the audit table lacks, no policy, rule or
inheritance, and no trigger but those running the functions of the audit table's own triggers
(the append-only guard).  Erasure updates kept partitions as its caller: a table planted with
the comment and a trigger would run the planter's code with the caller's rights.
"""

from __future__ import annotations

from .adoption import EXACT_OWNER, adoption_problems
from .sql import qualified, quote

_PROBLEMS = adoption_problems(
    owner_problem=EXACT_OWNER.format(owner="audit.relowner"),
    expected_columns=(
        "ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a"
        " WHERE a.attrelid = audit.oid AND a.attnum > 0 AND NOT a.attisdropped)"
    ),
    trigger_functions=(
        "ARRAY(SELECT t.tgfoid FROM pg_catalog.pg_trigger t"
        " JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid"
        " WHERE t.tgrelid = audit.oid AND p.proowner = audit.relowner)"
    ),
)

#: Tables of the audit table's schema that carry its partitions' comment and are not its
#: partitions (any more), each with why it is not one retention kept (NULL: it is).
KEPT_PARTITIONS = f"""
SELECT c.relname::text AS name,
       (SELECT pg_catalog.string_agg(why.reason, '; ') FROM ({_PROBLEMS}
       ) AS why(reason)) AS problem
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN (SELECT a.oid, a.relowner FROM pg_catalog.pg_class a
            WHERE a.oid = CAST(:audit_table AS pg_catalog.regclass)) AS audit
WHERE n.nspname = :schema
  AND pg_catalog.obj_description(c.oid, 'pg_class') = :comment
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_inherits i
                  WHERE i.inhrelid = c.oid AND i.inhparent = audit.oid)
ORDER BY 1
"""

#: The publications that publish an audit table (or one of its partitions).  Matched by name,
#: not by ``to_regclass`` of every published name, which the planner may run on any table
#: (those of schemas the role may not use included, an error).
PUBLISHED_IN = """
SELECT DISTINCT t.pubname::text
FROM pg_catalog.pg_partition_tree(CAST(:audit_table AS pg_catalog.regclass)) p
JOIN pg_catalog.pg_class c ON c.oid = p.relid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_publication_tables t ON t.schemaname = n.nspname AND t.tablename = c.relname
ORDER BY 1
"""


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
