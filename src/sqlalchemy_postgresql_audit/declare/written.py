"""Which audited table a statement SQLAlchemy built writes, and what it may do to its rows.

Two listeners look at every write before it is sent: the runtime check (are the audit triggers,
or the CDC publication, there?) and the required-setting check of CDC tables (no trigger on the
server can refuse a write without its setting).  Both need the same answers, cheaply.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Alias, Connection, Engine, Table, event
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


#: A check of one built write: (connection, the INSERT/UPDATE/DELETE construct, its execution
#: options).  It raises to refuse the write.
WriteCheck = Callable[[Connection, Any, Mapping[str, Any]], None]


class WriteListeners:
    """Hand every write SQLAlchemy builds, on every engine, to one ``check``: the statement
    itself before it is compiled (``before_execute``), and the writes nested in its common
    table expressions once it is (``before_cursor_execute``).  ``first`` puts the cursor
    listener before the others, so nothing is sent in front of a refused statement."""

    def __init__(self, check: WriteCheck, *, first: bool = False) -> None:
        self._check = check
        self._first = first
        self._lock = threading.Lock()

    def install(self) -> None:
        """Idempotent, and safe from several threads."""
        if event.contains(Engine, "before_cursor_execute", self._before_cursor_execute):
            return
        with self._lock:
            if not event.contains(Engine, "before_execute", self._before_execute):
                event.listen(Engine, "before_execute", self._before_execute)
            if not event.contains(Engine, "before_cursor_execute", self._before_cursor_execute):
                event.listen(
                    Engine,
                    "before_cursor_execute",
                    self._before_cursor_execute,
                    insert=self._first,
                )

    def remove(self) -> None:
        """Undo ``install`` (the benchmarks compare writes with and without the check)."""
        with self._lock:
            if event.contains(Engine, "before_execute", self._before_execute):
                event.remove(Engine, "before_execute", self._before_execute)
            if event.contains(Engine, "before_cursor_execute", self._before_cursor_execute):
                event.remove(Engine, "before_cursor_execute", self._before_cursor_execute)

    def _before_execute(
        self,
        connection: Connection,
        statement: Any,
        multiparams: Any,
        params: Any,
        execution_options: Mapping[str, Any],
    ) -> None:
        if getattr(statement, "is_dml", False):
            self._check(connection, statement, execution_options)

    def _before_cursor_execute(
        self,
        connection: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        for write in nested_writes(context):
            self._check(connection, write, context.execution_options)
