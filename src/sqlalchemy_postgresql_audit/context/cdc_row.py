"""The writer's side of request context in change-data-capture mode: one context row.

A CDC table has no trigger reading ``audit.*`` settings in the writer's transaction, and the
apply worker of logical replication ignores logical messages, so a transaction that sets
context also inserts its settings into the context table (``declare.cdc.CdcNames``).  That row
travels in the transaction's WAL ahead of its changes; the consumer turns it back into
settings for the changes that follow it (design 1: a trigger on the target's copy of the
table; a decoder: reading it from the stream).  Only processes that declare CDC tables pay,
and only transactions that write a CDC table (``scope`` sends the row in front of such a
write, never in front of a read or of a write to a trigger-mode table).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Mapping

from sqlalchemy import Connection, Engine

from ..declare.cdc import cdc_names, is_cdc
from ..declare.declaration import declared_tables, specs_stored
from ..declare.naming import CONTEXT_TABLE_KEY
from ..errors import AuditConfigurationError
from ..render.cdc import context_table_exists, insert_context

#: Bound parameter of ``insert_context``.
SETTINGS_PARAMETER = "_audit_ctx_settings"

_cache: tuple[int, tuple[str, str] | None] = (-1, None)
#: Per engine (its pool: one database): the declarations under which its context table was
#: found.  Only the positive answer is kept: a database without the table (yet) is asked
#: again, so a process started before CDC was installed sends context once it is.
_present: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()


def cdc_declared() -> bool:
    """Whether this process declares any CDC table (a process without one never sends a row)."""
    return _target() is not None


_names: tuple[int, frozenset[str]] = (-1, frozenset())


def cdc_table_names() -> frozenset[str]:
    """The names of the CDC tables declared in this process (cached per declaration change)."""
    global _names
    stored = specs_stored()
    if _names[0] != stored:
        _names = (stored, frozenset(t.name for t in declared_tables() if is_cdc(t)))
    return _names[1]


def _target() -> tuple[str, str] | None:
    global _cache
    stored = specs_stored()
    if _cache[0] != stored:
        _cache = (stored, _context_target())
    return _cache[1]


def context_insert(connection: Connection) -> str | None:
    """The INSERT a transaction setting context sends on ``connection``, or ``None``.

    ``None`` when no CDC table is declared in this process, when the connection's database
    has no context table (a database without CDC: its CDC tables, if any, are refused by the
    runtime check until installed), or when the server is in recovery (a hot standby, where
    nothing is written).  The table's presence is remembered per engine and declaration
    change; its absence is not, so callers ask once per transaction that writes with context
    (a look-up on a cursor of the connection's own).
    """
    target = _target()
    if target is None:
        return None
    engine = connection.engine
    stored = specs_stored()
    if _present.get(engine) == stored:
        return target[0]
    try:
        present = _exists(connection, target[1])
    except Exception:  # e.g. an aborted transaction: its own statement reports the error
        return None
    if present:
        _present[engine] = stored
        return target[0]
    return None


def _exists(connection: Connection, check: str) -> bool:
    raw = connection.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute(check)
        row = cursor.fetchone()
    finally:
        cursor.close()
    return bool(row and row[0])


def _context_target() -> tuple[str, str] | None:
    """(the INSERT, the query whether its table exists), or ``None`` without CDC tables."""
    targets = {
        (names.context_schema, names.context_table)
        for names in (cdc_names(table.metadata) for table in declared_tables() if is_cdc(table))
    }
    if not targets:
        return None
    if len(targets) > 1:
        raise AuditConfigurationError(
            ", ".join(sorted(".".join(filter(None, t)) for t in targets)),
            CONTEXT_TABLE_KEY,
            "names more than one context table for the CDC tables declared in this process; "
            "a transaction's context goes to one: give their MetaData the same schema and "
            f"{CONTEXT_TABLE_KEY!r} naming convention",
        )
    schema, table = targets.pop()
    return insert_context(schema, table), context_table_exists(schema, table)


def settings_json(changes: Mapping[str, str]) -> str:
    """The ``settings`` column: ``{name: text}``, ``""`` for a setting reset to NULL."""
    return json.dumps(dict(changes), sort_keys=True)
