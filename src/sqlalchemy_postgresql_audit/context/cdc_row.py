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
from collections.abc import Mapping

from ..declare.cdc import cdc_names, is_cdc
from ..declare.declaration import declared_tables, specs_stored
from ..declare.naming import CONTEXT_TABLE_KEY
from ..errors import AuditConfigurationError
from ..render.cdc import insert_context

#: Bound parameter of ``insert_context``.
SETTINGS_PARAMETER = "_audit_ctx_settings"

_cache: tuple[int, str | None] = (-1, None)


def context_insert() -> str | None:
    """The INSERT a transaction setting context sends, or ``None`` when no CDC table is
    declared in this process.  Cached until a declaration changes."""
    global _cache
    stored = specs_stored()
    if _cache[0] != stored:
        _cache = (stored, _context_insert())
    return _cache[1]


def _context_insert() -> str | None:
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
    return insert_context(schema, table)


def settings_json(changes: Mapping[str, str]) -> str:
    """The ``settings`` column: ``{name: text}``, ``""`` for a setting reset to NULL."""
    return json.dumps(dict(changes), sort_keys=True)
