"""Which audited table a statement SQLAlchemy built writes, and what it may do to its rows.

Two listeners look at every write before it is sent: the runtime check (are the audit triggers,
or the CDC publication, there?) and the required-setting check of CDC tables (no trigger on the
server can refuse a write without its setting).  Both need the same answers, cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Alias, Table
from sqlalchemy.dialects.postgresql.dml import OnConflictDoUpdate

from .options import OPTIONS_KEY

_INSERT = frozenset({"INSERT"})
_UPSERT = frozenset({"INSERT", "UPDATE"})
_OPERATIONS = {"insert": _INSERT, "update": frozenset({"UPDATE"}), "delete": frozenset({"DELETE"})}


def written_table(statement: Any) -> Table | None:
    """The table an INSERT, UPDATE or DELETE construct writes (``update(t.alias("x"))`` writes
    ``t``), when its ``info`` carries audit options; else ``None``."""
    table = statement.table
    while isinstance(table, Alias):
        table = table.element
    if not isinstance(table, Table):
        return None
    table = table._deannotate()  # an ORM statement's table may be an annotated copy
    return table if OPTIONS_KEY in table.info else None


def operations_of(statement: Any) -> frozenset[str] | None:
    """What ``statement`` may do to rows (an upsert may UPDATE too); ``None`` for a DML
    construct of unknown kind."""
    operations = _OPERATIONS.get(statement.__visit_name__)
    if operations is _INSERT and isinstance(
        getattr(statement, "_post_values_clause", None), OnConflictDoUpdate
    ):
        return _UPSERT
    return operations


def nested_writes(context: Any) -> list[Any]:
    """Writes nested in common table expressions (``select(...).add_cte(update(t))``, a
    ``RETURNING`` CTE selected from, ``INSERT ... SELECT`` from a ``DELETE`` CTE).

    Read from the compiled statement, which lists the CTEs it rendered (and is cached per
    statement shape), so a statement without any costs one attribute look-up."""
    ctes = getattr(getattr(context, "compiled", None), "ctes", None)
    if not ctes:
        return []
    elements = (getattr(cte, "element", None) for cte in list(ctes))
    return [element for element in elements if getattr(element, "is_dml", False)]


def schema_written(table: Table, execution_options: Mapping[str, Any]) -> str | None:
    """``table``'s schema as the statement is sent (after ``schema_translate_map``)."""
    schema = table.schema
    translate = execution_options.get("schema_translate_map")
    if translate and schema in translate:
        return str(translate[schema]) if translate[schema] is not None else None
    return schema
