"""SQL text of erasure: finding the partitions retention detached and kept.

A kept partition keeps its name and its comment (``maintenance.partition_comment``), and is no
longer a partition of anything, so it is found by that comment in the audit table's schema.
"""

from __future__ import annotations

#: Tables of a schema that were partitions of an audit table and are not any more.
KEPT_PARTITIONS = (
    "SELECT c.relname::text FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema AND c.relkind = 'r' AND NOT c.relispartition "
    "AND pg_catalog.obj_description(c.oid, 'pg_class') = :comment "
    "ORDER BY 1"
)
