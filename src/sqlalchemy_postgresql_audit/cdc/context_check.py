"""Context values the audit columns cannot hold, found before they stop the trail.

A writer's context row is JSON: nothing on the writer's side casts a setting to its audit
column's type, so one bad value (an unknown enum label, ``"abc"`` for an integer) would make
every COPY of its transaction fail, at every retry, and no change after it would ever reach
the trail.  The decoder writes without this check; when a COPY fails on bad input it writes
the batch again with it: a value that does not cast is recorded as NULL, with a warning naming
the table, the setting and the transaction.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from ..declare.spec import AUDIT_CURRENT_USER, capture_column
from ..render.cdc_decoder import COLUMN_TYPES, cast_check
from ..render.sql import name_text
from .rows import CHANGED_COLUMNS, Context, TablePlan

log = logging.getLogger(__name__)


class ContextCheck:
    """Which context values cast to their audit columns' types (remembered per type)."""

    def __init__(self) -> None:
        self._types: dict[str, dict[str, str]] = {}
        self._casts: dict[tuple[str, str], bool] = {}

    def fit(
        self, target: Connection, plan: TablePlan, context: Context, transaction_id: int
    ) -> Context:
        """``context`` without the values ``plan``'s audit table cannot hold."""
        types = self._column_types(target, plan)
        bad = [
            name
            for name, column in _context_columns(plan)
            if context.values.get(name) is not None
            and column in types
            and not self._casts_to(target, context.values[name], types[column])
        ]
        if not bad:
            return context
        spec = plan.spec
        for name in bad:
            log.warning(
                "table %s: context value %r of %r does not fit the audit column's type; "
                "recorded NULL for transaction %d",
                name_text(spec.schema, spec.table),
                context.values[name],
                name,
                transaction_id,
            )
        return Context({k: v for k, v in context.values.items() if k not in bad})

    def _column_types(self, target: Connection, plan: TablePlan) -> dict[str, str]:
        spec = plan.spec
        name = name_text(spec.schema, spec.audit_table)
        if name not in self._types:
            columns = [c for _, c in _context_columns(plan)]
            rows = target.exec_driver_sql(COLUMN_TYPES, {"table": name, "columns": columns})
            self._types[name] = {r[0]: r[1] for r in rows}
        return self._types[name]

    def _casts_to(self, target: Connection, value: str, type_name: str) -> bool:
        known = self._casts.get((type_name, value))
        if known is None:
            savepoint = target.begin_nested()
            try:
                target.exec_driver_sql(cast_check(type_name), {"value": value})
            except DBAPIError as error:
                if not is_bad_input(error):
                    raise
                savepoint.rollback()
                known = False
            else:
                savepoint.commit()
                known = True
            self._casts[(type_name, value)] = known
        return known


def _context_columns(plan: TablePlan) -> list[tuple[str, str]]:
    """(context name, audit column) of the values ``TablePlan.prefix`` takes from a context."""
    captures = [
        (c, capture_column(c))
        for c in plan.spec.captures
        if c not in ("transaction_id", CHANGED_COLUMNS)
    ]
    settings = [(s.name, s.column) for s in plan.spec.settings]
    return [("current_user", AUDIT_CURRENT_USER), *captures, *settings]


def is_bad_input(error: BaseException) -> bool:
    """A data exception (SQLSTATE class 22): a value its column's type does not accept."""
    original = getattr(error, "orig", error)
    code = getattr(original, "pgcode", None) or getattr(original, "sqlstate", None)
    return isinstance(code, str) and code.startswith("22")
