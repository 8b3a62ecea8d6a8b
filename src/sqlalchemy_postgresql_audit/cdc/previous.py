"""Old rows rebuilt from the trail, for tables whose WAL carries only the key.

Under the default ``REPLICA IDENTITY`` an UPDATE's WAL record holds only the new row (without
its unchanged TOASTed values) and a DELETE's only the key.  The trail already holds the row's
previous version: the decoder writes in commit order, so a key's newest audit row is its state
before the change being decoded.  Versions written earlier in the same batch, not yet
committed, come from memory; the others with one query per table and transaction.  A key with
no version (a row older than the trail, without a baseline) is an error naming it: writing
NULL for values the row held is never an option.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from ..declare.spec import AuditSpec
from ..render.cdc_decoder import COLUMN_TYPES, latest_versions
from ..render.sql import name_text
from .pgoutput import Values
from .rows import TablePlan

Key = tuple[bytes | None, ...]
#: Operations after which the key holds a row.
_PRESENT = frozenset({"I", "U", "B"})
#: Versions kept in memory between flushes before the decoder forgets them.
KEPT = 200_000


class PreviousVersions:
    """The newest known state of each key: ``None`` once deleted or moved away."""

    def __init__(self) -> None:
        self._state: dict[tuple[str, Key], tuple[tuple[str, ...], Values | None]] = {}
        self._key_types: dict[str, list[tuple[str, str]]] = {}

    def forget(self, *, unless_below: int = 0) -> None:
        """Forget what the trail in the database holds too (call with nothing pending)."""
        if len(self._state) >= unless_below:
            self._state.clear()

    def remember(self, plan: TablePlan, key: Key, values: Values | None) -> None:
        self._state[(plan.copy_sql, key)] = (plan.relation.columns, values)

    def old(self, plan: TablePlan, key: Key) -> Values | None:
        """The state of ``key`` (``None``: no row holds it), or ``KeyError`` when unknown."""
        columns, values = self._state[(plan.copy_sql, key)]
        if values is None or columns == plan.relation.columns:
            return values
        by_name = dict(zip(columns, values, strict=True))
        return tuple(by_name.get(c) for c in plan.relation.columns)

    def load(self, target: Connection, wanted: Iterable[tuple[TablePlan, Key]]) -> None:
        """Read the newest version of each wanted key this memory does not hold."""
        by_plan: dict[str, tuple[TablePlan, set[Key]]] = {}
        for plan, key in wanted:
            if (plan.copy_sql, key) not in self._state:
                by_plan.setdefault(plan.copy_sql, (plan, set()))[1].add(key)
        for plan, keys in by_plan.values():
            self._load(target, plan, sorted(keys, key=repr))

    def _load(self, target: Connection, plan: TablePlan, keys: list[Key]) -> None:
        spec = plan.spec
        key_types = self._types(target, spec)
        sql = latest_versions(spec.schema, spec.audit_table, key_types, plan.mirrored)
        parameters = {
            f"k{i}": [None if k[i] is None else k[i].decode() for k in keys]  # type: ignore[union-attr]
            for i in range(len(key_types))
        }
        index = {c: i for i, c in enumerate(plan.mirrored)}
        for operation, *recorded in target.exec_driver_sql(sql, parameters):
            values = tuple(
                None
                if c not in index or recorded[index[c]] is None
                else str(recorded[index[c]]).encode()
                for c in plan.relation.columns
            )
            self.remember(plan, plan.key(values), values if operation in _PRESENT else None)

    def _types(self, target: Connection, spec: AuditSpec) -> list[tuple[str, str]]:
        name = name_text(spec.schema, spec.audit_table)
        if name not in self._key_types:
            rows = target.exec_driver_sql(
                COLUMN_TYPES, {"table": name, "columns": list(spec.key_columns)}
            )
            types: dict[str, str] = {r[0]: r[1] for r in rows}
            self._key_types[name] = [(k, types[k]) for k in spec.key_columns]
        return self._key_types[name]
