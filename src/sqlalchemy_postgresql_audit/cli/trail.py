"""The audit trail of one row (or a table at a moment) as plain data, through the history API.

``history`` and ``as-of`` print it and the ``demo`` shows it, so all three read the same
``..history.history``, ``..history.changes`` and ``..history.as_of`` selects.
"""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, Session, registry

from ..declare.audit_table import SPEC_KEY
from ..declare.spec import (
    AUDIT_CURRENT_USER,
    AUDIT_ID,
    AUDIT_OPERATION,
    AUDIT_TIMESTAMP,
    AuditSpec,
    capture_column,
)
from ..history import Version, as_of, changes, history, removed_history
from ..history._redacted import REDACTED, from_json
from ..history._removed import known_select
from ..history._target import audited, key_values
from .base import CliError

OPERATIONS = {
    "I": "INSERT",
    "U": "UPDATE",
    "D": "DELETE",
    "T": "TRUNCATE",
    "B": "BASELINE",
    "K": "KEY CHANGE",
    "R": "RESTART",
}


def versions(
    connection: sa.Connection, table: sa.Table, key: Mapping[str, object]
) -> list[dict[str, Any]]:
    """Every version of row ``key``, oldest first, each with the columns it changed.

    ``changes`` gives before and after as ``jsonb`` (one column holds every type); they are
    read as text and parsed with decimals kept exact, so ``68.00`` stays ``68.00``.
    """
    spec: AuditSpec = table.info[SPEC_KEY]
    diffs: dict[int, dict[str, list[object]]] = {}
    changed = changes(table, dict(key)).subquery()
    query = sa.select(
        changed.c[AUDIT_ID],
        changed.c.column,
        sa.cast(changed.c.before, sa.Text),
        sa.cast(changed.c.after, sa.Text),
    )
    for audit_id, column, before, after in connection.execute(query):
        diffs.setdefault(audit_id, {})[column] = [
            from_json(_json(before)),
            from_json(_json(after)),
        ]
    context = [
        *((c, capture_column(c)) for c in spec.captures),
        *((s.name, s.column) for s in spec.settings),
    ]
    return [
        {
            "audit_id": row[AUDIT_ID],
            "operation": OPERATIONS.get(row[AUDIT_OPERATION], row[AUDIT_OPERATION]),
            "at": row[AUDIT_TIMESTAMP],
            "current_user": row[AUDIT_CURRENT_USER],
            "context": {name: row[column] for name, column in context},
            "values": _values(table, spec, row),
            "changes": diffs.get(row[AUDIT_ID], {}),
        }
        for row in connection.execute(history(table, dict(key))).mappings()
    ]


def shown_columns(table: sa.Table, spec: AuditSpec) -> list[str]:
    """The columns a version shows, in the table's order: the recorded ones and the omitted
    ones (``redact: omit`` keeps no value, but the column is still part of the row)."""
    wanted = (*spec.columns, *spec.omitted_columns)
    ordered = [column.name for column in table.c if column.name in wanted]
    return ordered + [name for name in wanted if name not in ordered]


def _values(table: sa.Table, spec: AuditSpec, row: sa.RowMapping) -> dict[str, Any]:
    """A version's values by column; an omitted column reads ``REDACTED`` where the row holds
    values (a marker row, whose key is NULL, holds none)."""
    holds_values = any(row[key] is not None for key in spec.key_columns)
    omitted = REDACTED if holds_values else None
    return {
        name: omitted if name in spec.omitted_columns else row[name]
        for name in shown_columns(table, spec)
    }


def rows_as_of(
    connection: sa.Connection,
    table: sa.Table,
    at: datetime.datetime,
    key: Mapping[str, object] | None = None,
) -> list[dict[str, Any]]:
    """The rows of ``table`` (or only row ``key``) as they stood at ``at``, by key."""
    return [state["values"] for state in states_as_of(connection, table, at, key)]


def states_as_of(
    connection: sa.Connection,
    table: sa.Table,
    at: datetime.datetime,
    key: Mapping[str, object] | None = None,
) -> list[dict[str, Any]]:
    """Each row as it stood at ``at``, with the version that put it there: who wrote it (the
    role and the session settings), when, and how.

    ``as_of`` gives these only as ORM ``Version`` objects, so the table is mapped to a
    throwaway class of its own (a table may be mapped by several classes).
    """
    spec: AuditSpec = table.info[SPEC_KEY]
    model: type[Any] = type("AsOfRow", (), {})
    mapper: Mapper[Any] = registry().map_imperatively(model, table)
    attributes = {name: mapper.get_property_by_column(table.c[name]).key for name in spec.columns}
    query = as_of(model, at, None if key is None else dict(key))
    with Session(connection) as session:
        found: Sequence[Version[Any]] = session.scalars(query).all()
    return [
        {
            "values": {
                name: REDACTED if name not in attributes else getattr(v.row, attributes[name])
                for name in shown_columns(table, spec)
            },
            "audit_id": v.audit_id,
            "operation": OPERATIONS.get(v.operation, v.operation),
            "at": v.at,
            "current_user": v.current_user,
            "context": dict(v.context),
        }
        for v in found
    ]


def _json(text: str | None) -> object:
    return None if text is None else json.loads(text, parse_float=decimal.Decimal)


def describe(version: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> str:
    """One version's change in a line: ``a=1, b=2`` inserted, ``a: 1 -> 2`` updated."""
    from .ui import cell

    diff = {name: pair for name, pair in version["changes"].items() if name not in skip}
    operation = version["operation"]
    if operation in ("DELETE", "TRUNCATE"):
        return "row removed"
    if operation == "KEY CHANGE":
        return "key changed: the row moved away to another key"
    if operation == "RESTART":
        return "auditing restarted over a kept trail: the row's earlier history ends here"
    if operation in ("INSERT", "BASELINE"):
        return ", ".join(f"{name}={cell(new)}" for name, (_, new) in diff.items())
    return ", ".join(f"{name}: {cell(old)} -> {cell(new)}" for name, (old, new) in diff.items())


def removal_as_of(
    connection: sa.Connection,
    table: sa.Table,
    at: datetime.datetime,
    key: Mapping[str, object] | None,
    found: bool,
) -> str | None:
    """What ``as-of`` must add when history was removed from ``table``'s trail: ``None`` when
    its answer is complete; raises ``CliError`` when the trail cannot know the state at all
    (``found``: whether ``as_of`` found the row ``key``)."""
    target = audited(table)
    removed = removed_history(connection, table)
    if removed is None:
        return None
    if key is not None:
        if found or connection.execute(known_select(target, key_values(target, key), at)).scalar():
            return None
        raise CliError(f"the state of key {dict(key)} at {at.isoformat()} is unknown: {removed}")
    if at < removed.before:
        raise CliError(f"the state of the table at {at.isoformat()} is unknown: {removed}")
    return f"incomplete: {removed}; rows not changed since then are not shown"
