"""Partitions and inheritance children of audited tables: what the catalog holds, and the
TRUNCATE triggers template 2 puts on them (``render.partitions`` says why).

``catalog.installed_audits`` uses ``with_partitions`` to file an audit function's triggers on
other tables than its own apart from the table's triggers, next to the table's descendants;
``compare.drifts`` uses ``partition_drifts`` to report a descendant lacking its trigger (one
attached after the install, say; an inheritance child also lacking its key trigger) and a
trigger left on a table that is no longer a descendant.
Types only from ``catalog``, which imports this module.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text

from ..declare.spec import AuditSpec

if TYPE_CHECKING:
    from .catalog import InstalledAudit, TriggerState

#: Every table inheriting from one of the given tables, at any depth (partitions,
#: sub-partitions, inheritance children); foreign tables cannot have TRUNCATE triggers.
_DESCENDANTS = text(
    """
    WITH RECURSIVE roots AS (
      SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      JOIN unnest(CAST(:schemas AS text[]), CAST(:tables AS text[])) AS wanted(schema, name)
        ON wanted.schema = n.nspname::text AND wanted.name = c.relname::text
    ), tree(schema, name, relation) AS (
      SELECT r.schema, r.name, i.inhrelid
      FROM roots r JOIN pg_catalog.pg_inherits i ON i.inhparent = r.oid
      UNION
      SELECT t.schema, t.name, i.inhrelid
      FROM tree t JOIN pg_catalog.pg_inherits i ON i.inhparent = t.relation
    )
    SELECT t.schema, t.name, n.nspname AS child_schema, c.relname AS child_name,
           c.relispartition
    FROM tree t
    JOIN pg_catalog.pg_class c ON c.oid = t.relation
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
    ORDER BY 1, 2, 3, 4
    """
)


def descendants(
    connection: Connection, tables: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[tuple[tuple[str, str], bool], ...]]:
    """The ``(schema, name)`` of every table inheriting from each of ``tables``, each with
    whether it is a partition."""
    if not tables:
        return {}
    rows = connection.execute(
        _DESCENDANTS,
        {"schemas": [schema for schema, _ in tables], "tables": [name for _, name in tables]},
    )
    found: dict[tuple[str, str], list[tuple[tuple[str, str], bool]]] = defaultdict(list)
    for row in rows:
        found[(row.schema, row.name)].append(
            ((row.child_schema, row.child_name), bool(row.relispartition))
        )
    return {table: tuple(children) for table, children in found.items()}


def with_partitions(connection: Connection, audits: list[InstalledAudit]) -> list[InstalledAudit]:
    """``audits`` with each function's triggers on other tables than its own moved to
    ``partition_triggers``, and the table's descendants in ``partitions``."""
    tables = [(a.spec.schema or a.schema, a.spec.table) if a.spec else None for a in audits]
    children = descendants(connection, sorted({table for table in tables if table}))
    result = []
    for audit, table in zip(audits, tables, strict=True):
        if table is None:
            result.append(audit)
            continue
        own = tuple(t for t in audit.triggers if (t.schema, t.table) == table)
        others = tuple(t for t in audit.triggers if (t.schema, t.table) != table)
        found = children.get(table, ())
        result.append(
            replace(
                audit,
                triggers=own,
                partition_triggers=others,
                partitions=tuple(child for child, _ in found),
                inheritance_children=tuple(child for child, partition in found if not partition),
            )
        )
    return result


def expected_partition_triggers(
    spec: AuditSpec,
    installed: InstalledAudit,
    table_truncate: TriggerState | None,
    table_key: TriggerState | None = None,
) -> frozenset[TriggerState]:
    """The triggers installing ``spec`` puts on the table's current descendants:
    ``table_truncate`` (the table's own expected TRUNCATE trigger), as ``BEFORE`` on each, and
    ``table_key`` (its key trigger) on each inheritance child."""
    if spec.template < 2:
        return frozenset()
    truncates = (
        ()
        if table_truncate is None
        else (
            replace(table_truncate, schema=schema, table=name, timing="BEFORE")
            for schema, name in installed.partitions
        )
    )
    keys = (
        ()
        if table_key is None
        else (
            replace(table_key, schema=schema, table=name)
            for schema, name in installed.inheritance_children
        )
    )
    return frozenset((*truncates, *keys))


def partition_drifts(
    spec: AuditSpec,
    installed: InstalledAudit,
    table_truncate: TriggerState | None,
    table_key: TriggerState | None = None,
) -> list[tuple[str, bool]]:
    """``(reason, disabled)`` for each way the function's triggers on other tables than its own
    differ from what installing ``spec`` puts there; ``disabled`` when only switched off."""
    expected = {
        (t.schema, t.table, t.name): t
        for t in expected_partition_triggers(spec, installed, table_truncate, table_key)
    }
    actual = {(t.schema, t.table, t.name): t for t in installed.partition_triggers}
    found: list[tuple[str, bool]] = []
    for key in sorted(expected.keys() | actual.keys()):
        schema, table, name = key
        if "TRUNCATE" in (expected.get(key) or actual[key]).events:
            where = f"TRUNCATE trigger {name} on partition {schema}.{table}"
            lost = "a TRUNCATE of it is not recorded"
        else:
            where = f"key trigger {name} on inheritance child {schema}.{table}"
            lost = "a key moved through it is not recorded"
        if key not in actual:
            found.append((f"{where} missing: {lost}", False))
        elif key not in expected:
            found.append((f"trigger {name} on {schema}.{table} left behind", False))
        elif replace(actual[key], enabled=True) != expected[key]:
            found.append((f"{where} differs", False))
        elif not actual[key].enabled:
            found.append((f"{where} disabled", True))
    return found
