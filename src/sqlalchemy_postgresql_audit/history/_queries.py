"""The SQL of the history API, as ordinary SQLAlchemy Core selects over the audit table.

Every query filters on the source's primary-key columns and orders by ``audit_id``, so an index
on the audit table's ``(key columns..., audit_id)`` answers one row's history or state with one
index range scan, whatever the size of the trail.

Vocabulary: a *version* is an audit row of the key (``I``, ``U``, ``B`` record the row's new
state; ``D`` and a ``T`` row with the key, written by ``truncate_rows``, record its last state
before it went away); a *marker* is the one ``T`` row a TRUNCATE writes by default, with every
mirrored column NULL, which removes every row at once.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.types import UserDefinedType

from ..spec import AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP
from ._target import Audited, key_filter

#: Operations whose version holds the row's state afterwards.
STATE_OPERATIONS = ("I", "U", "B")
#: Operations after which the row no longer exists.
GONE_OPERATIONS = ("D", "T")
#: Names of the computed columns; the prefix keeps them apart from source column names.
MARKER = "audit_history_marker"
PREVIOUS_OPERATION = "audit_history_previous_operation"


def before_label(index: int) -> str:
    return f"audit_history_before_{index}"


def after_label(index: int) -> str:
    return f"audit_history_after_{index}"


def changed_label(index: int) -> str:
    return f"audit_history_changed_{index}"


def lag_label(index: int) -> str:
    return f"audit_history_lag_{index}"


class _Record(UserDefinedType[Any]):
    """PostgreSQL's anonymous ``record``: the operand type of the binary-image comparison."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "record"


def differ(left: list[ColumnElement[Any]], right: list[ColumnElement[Any]]) -> ColumnElement[bool]:
    """True when the values differ byte for byte (``*<>``), two NULLs being equal.

    The triggers' ``skip_unchanged`` uses the same operator, so "changed" means the same thing
    here: it works for every type, also those without ``=`` (json, point, ...).
    """
    operator = cast(func.ROW(*left), _Record()).op("OPERATOR(pg_catalog.*<>)", is_comparison=True)
    return operator(cast(func.ROW(*right), _Record()))


#: Marker rows (a NULL key) end every row's life at once: a TRUNCATE's ``T``, and ``R``, where
#: a trail kept from an earlier life of the table restarts (``render/restart.py``).
MARKER_OPERATIONS = ("T", "R")


def marker_condition(table: Any, target: Audited) -> ColumnElement[bool]:
    """A marker row: operation ``T`` (TRUNCATE) or ``R`` (restart), and a NULL key."""
    return and_(
        table.c[AUDIT_OPERATION].in_(MARKER_OPERATIONS),
        *(table.c[k].is_(None) for k in target.key_columns),
    )


def versions(target: Audited, key: Mapping[str, Any], *, with_changes: bool) -> Subquery:
    """Every version of the row, and the TRUNCATE markers that removed it, oldest first
    (``with_changes``: and, per mirrored column ``i``, its value before and after and whether
    it changed: ``before_label(i)``, ``after_label(i)``, ``changed_label(i)``).

    A marker counts when the version before it left the row present; markers while the row
    was absent are no part of its history.  The "before" of a version is the state the previous
    version left (NULL when the row did not exist, or its first recorded version is an UPDATE);
    a DELETE's "before" is the deleted row as recorded.
    """
    audit = target.audit
    own = select(*audit.c, false().label(MARKER)).where(key_filter(audit, key))
    first = select(func.min(audit.c[AUDIT_ID])).where(key_filter(audit, key)).scalar_subquery()
    markers = select(*audit.c, true().label(MARKER)).where(
        marker_condition(audit, target), audit.c[AUDIT_ID] > first
    )
    both = union_all(own, markers).subquery("audit_history_versions")
    order = both.c[AUDIT_ID]
    columns = target.spec.columns if with_changes else ()
    lagged = select(
        *both.c,
        func.lag(both.c[AUDIT_OPERATION]).over(order_by=order).label(PREVIOUS_OPERATION),
        *(
            func.lag(both.c[c]).over(order_by=order).label(lag_label(i))
            for i, c in enumerate(columns)
        ),
    ).subquery("audit_history_lagged")
    operation = lagged.c[AUDIT_OPERATION]
    previous_present = lagged.c[PREVIOUS_OPERATION].in_(STATE_OPERATIONS)
    recorded_gone = and_(operation.in_(GONE_OPERATIONS), ~lagged.c[MARKER])
    staged_columns: list[ColumnElement[Any]] = []
    for i, name in enumerate(columns):
        value = lagged.c[name]
        before = case((recorded_gone, value), (previous_present, lagged.c[lag_label(i)]))
        after = case((operation.in_(STATE_OPERATIONS), value))
        staged_columns += [before.label(before_label(i)), after.label(after_label(i))]
    staged = (
        select(*(lagged.c[c.name] for c in audit.c), lagged.c[MARKER], *staged_columns)
        .where(or_(~lagged.c[MARKER], previous_present))
        .subquery("audit_history_staged")
    )
    # A layer of its own, so the comparison names before and after instead of repeating them.
    final = select(
        *staged.c,
        *(
            differ([staged.c[before_label(i)]], [staged.c[after_label(i)]]).label(changed_label(i))
            for i in range(len(columns))
        ),
    )
    return final.subquery("audit_history")


def history_select(target: Audited, key: Mapping[str, Any]) -> Select[Any]:
    """Core form of ``history()``: the audit rows (markers included), oldest first."""
    sub = versions(target, key, with_changes=False)
    return select(*(sub.c[c.name] for c in target.audit.c)).order_by(sub.c[AUDIT_ID])


def changes_select(target: Audited, key: Mapping[str, Any]) -> Select[Any]:
    """One row per changed column per version: ``audit_id``, ``audit_operation``,
    ``audit_operation_timestamp``, ``column``, ``before``, ``after`` (both ``jsonb``)."""
    # A CTE: the union below reads the versions once per column.
    sub = versions(target, key, with_changes=True).element.cte("audit_history")
    stamped = sub.c[AUDIT_ID], sub.c[AUDIT_OPERATION], sub.c[AUDIT_TIMESTAMP]
    parts = [
        select(
            *stamped,
            literal(name).label("column"),
            func.to_jsonb(sub.c[before_label(i)]).label("before"),
            func.to_jsonb(sub.c[after_label(i)]).label("after"),
            literal(i).label("position"),
        ).where(sub.c[changed_label(i)])
        for i, name in enumerate(target.spec.columns)
    ]
    every = union_all(*parts).subquery("audit_changes")
    return select(
        *(every.c[name] for name in (AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP)),
        every.c.column,
        every.c.before,
        every.c.after,
    ).order_by(every.c[AUDIT_ID], every.c.position)


def latest_versions(
    target: Audited,
    at: datetime.datetime | ColumnElement[datetime.datetime] | None,
    key: Mapping[str, Any] | None,
) -> Subquery:
    """The latest version of each row (or of ``key``) visible at ``at``, after the latest
    visible TRUNCATE marker; the caller keeps only those whose operation leaves a row.

    Visible: written by a transaction that started at or before ``at`` (the audit timestamp
    is ``now()``, the transaction's start); among those, ``audit_id`` orders the changes.
    """
    audit = target.audit
    visible = [] if at is None else [audit.c[AUDIT_TIMESTAMP] <= at]
    last_marker = (
        select(func.max(audit.c[AUDIT_ID]))
        .where(marker_condition(audit, target), *visible)
        .scalar_subquery()
    )
    after_marker = audit.c[AUDIT_ID] > func.coalesce(last_marker, 0)
    keys = [audit.c[k] for k in target.key_columns]
    if key is not None:
        one = select(*audit.c).where(key_filter(audit, key), *visible, after_marker)
        return one.order_by(audit.c[AUDIT_ID].desc()).limit(1).subquery("audit_as_of")
    every = (
        select(*audit.c)
        .where(*(k.is_not(None) for k in keys), *visible, after_marker)
        .order_by(*keys, audit.c[AUDIT_ID].desc())
    )
    return _distinct_on(every, keys).subquery("audit_as_of")


def _distinct_on(statement: Select[Any], keys: list[Any]) -> Select[Any]:
    """``SELECT DISTINCT ON (keys)``: an extension in SQLAlchemy 2.1, a method in 2.0."""
    try:
        from sqlalchemy.dialects.postgresql import distinct_on
    except ImportError:  # SQLAlchemy 2.0
        return statement.distinct(*keys)
    return statement.ext(distinct_on(*keys))


def present(latest: Subquery) -> ColumnElement[bool]:
    return latest.c[AUDIT_OPERATION].in_(STATE_OPERATIONS)


def as_of_select(
    target: Audited,
    at: datetime.datetime | ColumnElement[datetime.datetime] | None,
    key: Mapping[str, Any] | None,
) -> Select[Any]:
    """Core form of ``as_of()``: the mirrored columns of the rows present at ``at``."""
    latest = latest_versions(target, at, key)
    return (
        select(*(latest.c[c] for c in target.spec.columns))
        .where(present(latest))
        .order_by(*(latest.c[k] for k in target.key_columns))
    )
