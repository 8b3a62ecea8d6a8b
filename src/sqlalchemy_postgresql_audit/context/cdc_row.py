"""The writer's side of request context in change-data-capture mode: one context row.

A CDC table has no trigger reading ``audit.*`` settings in the writer's transaction, and the
apply worker of logical replication ignores logical messages, so a transaction that sets
context also inserts its settings into the context table (``declare.cdc.CdcNames``).  That row
travels in the transaction's WAL ahead of its changes; the consumer turns it back into
settings for the changes that follow it (design 1: a trigger on the target's copy of the
table; a decoder: reading it from the stream).  Only processes that declare CDC tables pay.
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
#: Per engine (its pool: one database): the declarations it was looked at under, and whether
#: the context table exists there.
_present: weakref.WeakKeyDictionary[Engine, tuple[int, bool]] = weakref.WeakKeyDictionary()


def context_insert(connection: Connection) -> str | None:
    """The INSERT a transaction setting context sends on ``connection``, or ``None``.

    ``None`` when no CDC table is declared in this process, or when the connection's database
    has no context table (a database without CDC: its CDC tables, if any, are refused by the
    runtime check until installed).  Looked up once per engine and declaration change, on a
    cursor of the connection's own, so a process writing to several databases pays nothing
    where there is no CDC.
    """
    global _cache
    stored = specs_stored()
    if _cache[0] != stored:
        _cache = (stored, _context_target())
    target = _cache[1]
    if target is None:
        return None
    engine = connection.engine
    known = _present.get(engine)
    if known is None or known[0] != stored:
        try:
            known = (stored, _exists(connection, target[1]))
        except Exception:  # e.g. an aborted transaction: its own statement reports the error
            return None
        _present[engine] = known
    return target[0] if known[1] else None


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
