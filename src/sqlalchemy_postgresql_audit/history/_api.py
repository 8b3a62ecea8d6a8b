"""The read side of the history API: ``history``, ``changes``, ``as_of``.

Each returns an ordinary select, so it composes (``.where``, ``.limit``, ``.subquery``) and runs
on ``Connection``, ``Session`` and their async twins.  Given a ``Table`` the rows are Core rows;
given an ORM class they are typed :class:`Version` objects (run them with ``session.scalars``).
"""

from __future__ import annotations

import datetime
from typing import Any, TypeVar, overload

from sqlalchemy import Select, Table, false, select

from ._queries import (
    MARKER,
    STATE_OPERATIONS,
    as_of_select,
    changes_select,
    history_select,
    latest_versions,
    versions,
)
from ._target import audited, check_moment, key_values
from ._versions import Version, version_select

_M = TypeVar("_M")


@overload
def history(target: Table, pk: object) -> Select[Any]: ...
@overload
def history(target: type[_M], pk: object) -> Select[Version[_M]]: ...
def history(target: Table | type[Any], pk: object) -> Select[Any]:
    """Every version of the row with primary key ``pk``, oldest first (by ``audit_id``).

    ``pk`` is the key's value, or a mapping of every key column (or ORM attribute) to its value.
    For a ``Table``: the audit rows, every audit column.  For an ORM class:
    ``Version[Model]`` objects with ``changed`` filled in.  A TRUNCATE that removed the row
    appears as a version with operation ``T`` (and, as a marker row, no values).
    """
    resolved = audited(target)
    key = key_values(resolved, pk)
    if resolved.mapper is None:
        return history_select(resolved, key)
    sub = versions(resolved, key).subquery
    return version_select(resolved, sub, with_changes=True).order_by(sub.c.audit_id)


def changes(target: Table | type[Any], pk: object) -> Select[Any]:
    """What each version of the row changed: one row per changed column, oldest first.

    Columns: ``audit_id``, ``audit_operation``, ``audit_operation_timestamp``, ``column`` (the
    source column's name), ``before`` and ``after`` as ``jsonb`` (one result column has to hold
    every column's type; for typed values use ``history(Model, pk)`` and ``Version.changed``).
    An INSERT lists every non-NULL column with before NULL; a DELETE every non-NULL column with
    after NULL; an UPDATE only the columns that differ from the previous version, compared byte
    for byte.  The first recorded version of a row whose history began with an UPDATE has no
    previous version: its "before" is NULL.
    """
    resolved = audited(target)
    return changes_select(resolved, key_values(resolved, pk))


@overload
def as_of(target: Table, at: datetime.datetime, pk: object = None) -> Select[Any]: ...
@overload
def as_of(target: type[_M], at: datetime.datetime, pk: object = None) -> Select[Version[_M]]: ...
def as_of(target: Table | type[Any], at: datetime.datetime, pk: object = None) -> Select[Any]:
    """The row ``pk`` (or every row, ``pk=None``) as it stood at ``at``.

    "As it stood at ``at``": the changes of every transaction that *started* at or before
    ``at`` (``audit_operation_timestamp`` is ``now()``, the transaction's start), applied in
    ``audit_id`` order; a change made later by a transaction that started earlier counts, one
    made by a transaction that started later does not.  Deleted rows are absent; a TRUNCATE
    empties the table at its point; ``at`` must be time zone aware (naive datetimes are
    refused), except on ``legacy_timestamp`` tables, which need naive ones.

    For a ``Table``: rows of the mirrored columns, ordered by key.  For an ORM class:
    ``Version[Model]`` objects, the version each row was in (``changed`` is empty).
    """
    resolved = audited(target)
    moment = check_moment(resolved, at)
    key = None if pk is None else key_values(resolved, pk)
    if resolved.mapper is None:
        return as_of_select(resolved, moment, key)
    latest = latest_versions(resolved, moment, key)
    states = (
        select(*latest.c, false().label(MARKER))
        .where(latest.c.audit_operation.in_(STATE_OPERATIONS))
        .subquery("audit_as_of_versions")
    )
    return version_select(resolved, states, with_changes=False).order_by(
        *(states.c[k] for k in resolved.key_columns)
    )
