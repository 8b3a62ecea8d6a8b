"""Typed versions of an ORM model's rows: ``Version[Order]``.

Python's type system cannot spell "the attributes of ``Order`` plus ``operation`` and ``at``",
so a version is a composition that mypy checks exactly: ``v.row`` is an ``Order`` (a transient
instance, never added to a session) holding the recorded values, with the model's own attribute
types, next to the audit fields.  The rows come from an ORM ``~sqlalchemy.orm.Bundle``, so
``session.scalars(history(Order, 42))`` yields ``Version[Order]`` objects and the statement
still composes (``.where``, ``.limit``, ``.subquery``) like any select.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, cast

from sqlalchemy import ColumnElement, Select, select, true
from sqlalchemy.orm import Bundle
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.selectable import Subquery

from ..declare.spec import (
    AUDIT_CURRENT_USER,
    AUDIT_ID,
    AUDIT_OPERATION,
    AUDIT_TIMESTAMP,
    capture_column,
)
from ._redacted import REDACTED, shown
from ._target import Audited

_M = TypeVar("_M")

Operation = Literal["I", "U", "D", "T", "B", "K", "R"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Version(Generic[_M]):
    """One recorded version of a row of model ``_M``.

    ``operation``: ``I`` insert, ``U`` update, ``D`` delete, ``T`` truncate, ``B`` baseline,
    ``K`` the row's key changed (this key's row moved away to another key; a ``U`` under the
    new key follows), ``R`` the trail restarts (auditing installed again over a kept audit
    table; like a TRUNCATE marker it ends every row's earlier history).  ``at`` is when the
    version was written (``audit_operation_timestamp``).
    ``row`` is ``None`` only for a marker (a ``T`` or ``R`` without the row's values);
    columns the table does not mirror (``exclude_columns``) are not set on it, so they read as
    ``None``.  ``context`` maps each session setting and capture name (``"username"``,
    ``"transaction_id"``) to its recorded value.  ``changed`` maps attribute names to
    ``(before, after)`` for the attributes this version changed (empty from ``as_of``).
    """

    audit_id: int
    operation: Operation
    at: datetime.datetime
    current_user: str
    context: Mapping[str, Any]
    row: _M | None
    changed: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)


class VersionBundle(Bundle[Version[_M]]):
    """Builds a ``Version`` from one row of a history subquery."""

    def __init__(self, target: Audited, source: Subquery, *, with_changes: bool) -> None:
        self._target = target
        self._context = [
            *((c, capture_column(c)) for c in target.spec.captures),
            *((s.name, s.column) for s in target.spec.settings),
        ]
        self._attributes = target.attribute_keys()
        self._with_changes = with_changes
        columns: list[ColumnElement[Any]] = [
            source.c[name] for name in (AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP)
        ]
        columns.append(source.c[AUDIT_CURRENT_USER])
        columns += [source.c[column] for _, column in self._context]
        spec = target.spec
        columns += [shown(spec, name, source.c[name], true()) for name in spec.columns]
        labels = target.labels
        columns.append(source.c[labels.marker])
        if with_changes:
            for i, name in enumerate(spec.compared_columns):
                columns += [
                    shown(spec, name, source.c[labels.before(i)], source.c[labels.before(i)]),
                    shown(spec, name, source.c[labels.after(i)], source.c[labels.after(i)]),
                    source.c[labels.changed(i)],
                ]
        super().__init__(f"version_{target.audit.name}", *columns)

    def create_row_processor(
        self,
        query: Select[Any],
        procs: Sequence[Callable[[Any], Any]],
        labels: Sequence[str],
    ) -> Callable[[Any], Any]:
        mapper = self._target.mapper
        assert mapper is not None
        names = self._target.spec.columns
        compared = self._target.spec.compared_columns
        context_names = [name for name, _ in self._context]
        attributes = self._attributes
        omitted = [n for n in self._target.spec.omitted_columns if n in attributes]
        n_context, n_columns = len(context_names), len(names)

        def version(row: Any) -> Version[Any]:
            values = [proc(row) for proc in procs]
            context = dict(zip(context_names, values[4 : 4 + n_context], strict=True))
            start = 4 + n_context
            mirrored = values[start : start + n_columns]
            marker = values[start + n_columns]
            instance = None
            if not marker:
                instance = mapper.class_manager.new_instance()
                for name, value in zip(names, mirrored, strict=True):
                    if name in attributes:
                        set_committed_value(instance, attributes[name], value)
                for name in omitted:
                    set_committed_value(instance, attributes[name], REDACTED)
            changed: dict[str, tuple[Any, Any]] = {}
            if self._with_changes:
                triples = values[start + n_columns + 1 :]
                for i, name in enumerate(compared):
                    before, after, differs = triples[3 * i : 3 * i + 3]
                    if differs and name in attributes:
                        changed[attributes[name]] = (before, after)
            return Version(
                audit_id=values[0],
                operation=cast(Operation, values[1]),
                at=values[2],
                current_user=values[3],
                context=context,
                row=instance,
                changed=changed,
            )

        return version


def version_select(
    target: Audited, source: Subquery, *, with_changes: bool
) -> Select[Version[Any]]:
    bundle: VersionBundle[Any] = VersionBundle(target, source, with_changes=with_changes)
    return select(bundle)
