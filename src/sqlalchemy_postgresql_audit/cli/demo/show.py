"""What the demo shows: the trail read back, as a JSON-ready document and as text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import sqlalchemy as sa

from ..trail import describe, rows_as_of, versions
from ..ui import UI, cell
from .model import Shop
from .story import Story

ORDER = {"id": 1}
REMOVED_ITEM = {"order_id": 1, "line_no": 1}


def read_trail(connection: sa.Connection, shop: Shop, story: Story) -> dict[str, Any]:
    items = shop.order_items
    return {
        "steps": [asdict(step) for step in story.steps],
        "history": _history(connection, shop.orders, ORDER),
        "as_of": {
            "table": items.name,
            "at": story.before_removal,
            "rows": rows_as_of(connection, items, story.before_removal),
        },
        "now": [dict(row) for row in connection.execute(_rows(items)).mappings()],
        "restored": _history(connection, items, REMOVED_ITEM),
    }


def _rows(table: sa.Table) -> sa.Select[Any]:
    return sa.select(table).order_by(*table.primary_key.columns)


def _history(
    connection: sa.Connection, table: sa.Table, key: Mapping[str, object]
) -> dict[str, Any]:
    return {
        "table": table.name,
        "key": list(key.values()),
        "versions": versions(connection, table, key),
    }


def render(ui: UI, schema: str, shop: Shop, document: dict[str, Any], ddl: str | None) -> None:
    if ddl is not None:
        ui.heading("DDL (create_all runs it):")
        ui.line(ddl.rstrip())
    names = ", ".join(t.name for t in (shop.customers, shop.orders, shop.order_items))
    ui.line(f"Audited in schema {schema}: {names} (order_items keyed on order_id, line_no).")
    ui.heading("One transaction per request; each audit row records its user and request:")
    ui.table(
        ("user", "request", "what happened"),
        [(s["username"], s["request_id"], s["what"]) for s in document["steps"]],
        styles=[None if s["username"] else "warn" for s in document["steps"]],
    )
    history = document["history"]
    ui.heading(f"History of {_row_name(history)} (each update with its diff):")
    _versions(ui, history, skip=frozenset(shop.orders.primary_key.columns.keys()))
    as_of = document["as_of"]
    ui.heading(f"{as_of['table']} as it stood at {cell(as_of['at'])}, before req-1003 (as of):")
    columns = list(shop.order_items.columns.keys())
    ui.table(columns, [[row[c] for c in columns] for row in as_of["rows"]])
    restored = document["restored"]
    ui.heading(f"History of {_row_name(restored)}: deleted, then restored from its history:")
    _versions(ui, restored, skip=frozenset(shop.order_items.primary_key.columns.keys()))
    same = document["now"] == as_of["rows"]
    verdict = "matches" if same else "DIFFERS from"
    ui.line()
    style = "ok" if same else "drift"
    ui.line(f"{as_of['table']} now {verdict} what it was before req-1003.", style)


def _row_name(history: dict[str, Any]) -> str:
    key = history["key"]
    return f"{history['table']} {key[0] if len(key) == 1 else tuple(key)}"


def _versions(ui: UI, history: dict[str, Any], skip: frozenset[str]) -> None:
    ui.table(
        ("audit_id", "at", "user", "request", "operation", "changes"),
        [
            (
                v["audit_id"],
                v["at"],
                v["context"]["username"],
                v["context"]["request_id"],
                v["operation"],
                describe(v, skip),
            )
            for v in history["versions"]
        ],
    )
