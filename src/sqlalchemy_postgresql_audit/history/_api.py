"""The read side of the history API: ``history``, ``changes``, ``as_of``.

Each returns an ordinary select, so it composes (``.where``, ``.limit``, ``.subquery``) and runs
on ``Connection``, ``Session`` and their async twins.  Given a ``Table`` the rows are Core rows;
given an ORM class they are typed ``Version`` objects (run them with ``session.scalars``).

Building these selects costs milliseconds of Python (a window over every mirrored column), more
than running them on an indexed trail, so each shape is built once per audit table with bound
parameters for the key and the moment, and every call returns it with its values bound.
On psycopg2, which would have the server plan it again on every call, the select is marked to
run as a server-side prepared statement (``context/prepared.py``; psycopg 3 and asyncpg prepare
by themselves).
"""

from __future__ import annotations

import datetime
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar, overload

import sqlalchemy
from sqlalchemy import BindParameter, Select, Table, bindparam, false, select

from ..context.prepared import PREPARE_OPTION, register_prepared_statements
from ..declare.spec import AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP
from ..errors import AuditError
from ._queries import (
    STATE_OPERATIONS,
    as_of_select,
    changes_select,
    history_select,
    latest_versions,
    versions,
)
from ._target import Audited, audited, check_moment, key_values
from ._versions import Version, version_select

_M = TypeVar("_M")

#: Built statements by (audit table, shape, mapper, whole table?), least recently used last.
#: Bounded, because a statement holds its table: a weak mapping would never let go of it.
_TEMPLATES: OrderedDict[tuple[Any, ...], Select[Any]] = OrderedDict()
_TEMPLATES_MAX = 512
_PARAMS_REACH_BUNDLES = tuple(int(part) for part in sqlalchemy.__version__.split(".")[:2]) >= (2, 1)


_Build = Callable[[Audited, "dict[str, Any] | None", "dict[str, BindParameter[Any]]"], Select[Any]]


def _bound(
    target: Audited,
    kind: str,
    build: _Build,
    key: dict[str, Any] | None,
    moments: dict[str, datetime.datetime | None] | None = None,
) -> Select[Any]:
    """The statement of shape ``kind`` for ``target`` with ``key`` and ``moments`` bound.

    ``moments`` maps a name (``at``, ``since``, ``until``) to its value, None where not given;
    ``build`` receives a bound parameter for each given one, under the same name.
    Built once with bound parameters and reused with ``.params()``, except for ORM versions on
    SQLAlchemy 2.0, whose ``.params()`` does not reach into a Bundle's columns: those are built
    with their values each time.
    """
    names = [f"audit_key_{i}" for i in range(len(target.key_columns))]
    given = {name: value for name, value in (moments or {}).items() if value is not None}

    def parameters(
        with_values: bool,
    ) -> tuple[dict[str, Any] | None, dict[str, BindParameter[Any]]]:
        keys = None
        if key is not None:
            keys = {
                column: bindparam(
                    name,
                    key[column] if with_values else None,
                    type_=target.audit.c[column].type,
                )
                for name, column in zip(names, target.key_columns, strict=True)
            }
        bound = {
            name: bindparam(
                f"audit_{name}",
                value if with_values else None,
                type_=target.audit.c[AUDIT_TIMESTAMP].type,
            )
            for name, value in given.items()
        }
        return keys, bound

    register_prepared_statements()
    if target.mapper is not None and not _PARAMS_REACH_BUNDLES:
        return _prepared(build(target, *parameters(True)))
    shape = (target.audit, kind, target.mapper, key is None, tuple(given))
    template = _TEMPLATES.get(shape)
    if template is None:
        template = _TEMPLATES[shape] = _prepared(build(target, *parameters(False)))
        if len(_TEMPLATES) > _TEMPLATES_MAX:
            _TEMPLATES.popitem(last=False)
    else:
        _TEMPLATES.move_to_end(shape)
    values: dict[str, Any] = {}
    if key is not None:
        values.update({n: key[c] for n, c in zip(names, target.key_columns, strict=True)})
    values.update({f"audit_{name}": value for name, value in given.items()})
    return template.params(values)


def _prepared(statement: Select[Any]) -> Select[Any]:
    """Marked for a server-side prepared statement on psycopg2 (``context/prepared.py``): the
    query is planned over every partition of a partitioned audit table, and psycopg2 would plan
    it again on every call."""
    return statement.execution_options(**{PREPARE_OPTION: True})


@overload
def history(target: Table, pk: object) -> Select[Any]: ...
@overload
def history(target: type[_M], pk: object) -> Select[Version[_M]]: ...
def history(target: Table | type[Any], pk: object) -> Select[Any]:
    """Every version of the row with primary key ``pk``, oldest first (by ``audit_id``).

    ``pk`` is the key's value, or a mapping of every key column (or ORM attribute) to its value.
    For a ``Table``: the audit rows, every audit column.  For an ORM class:
    ``Version[Model]`` objects with ``changed`` filled in.  A TRUNCATE that removed the row
    appears as a version with operation ``T`` (and, as a marker row, no values); an UPDATE that
    changed the row's key ends this key's history with a ``K`` version (the row as it left).
    ``audit_id`` order is the order in which the row's versions were written and committed.
    """
    resolved = audited(target)
    key = key_values(resolved, pk)
    if resolved.mapper is None:
        return _bound(resolved, "history", lambda t, k, _: history_select(t, k or {}), key)

    def build(t: Audited, k: dict[str, Any] | None, _: Any) -> Select[Any]:
        sub = versions(t, k or {}, with_changes=True)
        return version_select(t, sub, with_changes=True).order_by(sub.c[AUDIT_ID])

    return _bound(resolved, "history", build, key)


def changes(
    target: Table | type[Any],
    pk: object,
    *,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
) -> Select[Any]:
    """What each version of the row changed: one row per changed column, oldest first.

    Columns: ``audit_id``, ``audit_operation``, ``audit_operation_timestamp``, who made the
    change (``audit_current_user``, the writing role, then one ``audit_<setting>`` column per
    session setting), ``column`` (the source column's name), ``before`` and ``after`` as
    ``jsonb`` (one result column has to hold every column's type; for typed values use
    ``history(Model, pk)`` and ``Version.changed``).
    An INSERT lists every non-NULL column with before NULL; a DELETE or a key change (``K``:
    the row moved to another key) every non-NULL column with after NULL; an UPDATE only the
    columns that differ from the previous version, compared byte for byte.  The first recorded
    version of a row whose history began with an UPDATE (also the one that moved it here from
    another key) has no previous version: its "before" is NULL.

    ``since`` and ``until`` keep the versions written (``audit_operation_timestamp``) at or
    after ``since`` and before ``until``: exactly those rows of the unbounded result.  The
    bound is applied inside the query, on a partitioned audit table's partition key, so the
    partitions after the window are not read, and of those before it only the row's latest
    version before ``since`` (the "before" of the window's first change) is looked up.  Time
    zone aware datetimes, as for ``as_of``'s ``at``.
    """
    resolved = audited(target)
    key = key_values(resolved, pk)
    window = {
        name: None if moment is None else check_moment(resolved, moment, name)
        for name, moment in (("since", since), ("until", until))
    }
    if since is not None and until is not None and since > until:
        raise AuditError(
            f"table {resolved.name!r}: 'since' ({since.isoformat()}) is after 'until' "
            f"({until.isoformat()})"
        )
    core = Audited(source=resolved.source, audit=resolved.audit, spec=resolved.spec, mapper=None)

    def build(t: Audited, k: dict[str, Any] | None, m: dict[str, Any]) -> Select[Any]:
        return changes_select(t, k or {}, m.get("since"), m.get("until"))

    return _bound(core, "changes", build, key, window)


@overload
def as_of(target: Table, at: datetime.datetime, pk: object = None) -> Select[Any]: ...
@overload
def as_of(target: type[_M], at: datetime.datetime, pk: object = None) -> Select[Version[_M]]: ...
def as_of(target: Table | type[Any], at: datetime.datetime, pk: object = None) -> Select[Any]:
    """The row ``pk`` (or every row, ``pk=None``) as it stood at ``at``.

    "As it stood at ``at``" is the changes that had become visible by then: where the server
    records commit times (``track_commit_timestamp = on``) and the table captures
    ``transaction_id``, every change whose transaction committed at or before ``at``, exactly
    what a reader saw at ``at``; elsewhere (and for changes 2**31 or more transactions old)
    every change written at or before ``at`` (``audit_operation_timestamp``), which also counts
    a change that a transaction still in flight at ``at`` had written and committed later.  A
    row whose newest counting version is a DELETE or a key change (``K``) is absent; a TRUNCATE
    empties the table at its point.  ``at`` must be time zone aware (naive datetimes are
    refused), except on ``legacy_timestamp`` tables, which need naive ones.

    For a ``Table``: rows of the mirrored columns, ordered by key.  For an ORM class:
    ``Version[Model]`` objects, the version each row was in (``changed`` is empty).

    After retention or a purge removed history, the trail no longer holds the version a row
    last changed in before the removal, so such a row is missing from the result, not absent:
    ``removed_history(connection, target)`` says whether and up to when history was removed
    (``restore(at=...)`` and the command line's ``as-of`` check it themselves).
    """
    resolved = audited(target)
    moment = check_moment(resolved, at)
    key = None if pk is None else key_values(resolved, pk)

    if resolved.mapper is None:
        return _bound(
            resolved, "as_of", lambda t, k, m: as_of_select(t, m["at"], k), key, {"at": moment}
        )

    def build(t: Audited, k: dict[str, Any] | None, m: dict[str, Any]) -> Select[Any]:
        latest = latest_versions(t, m["at"], k)
        states = (
            select(*latest.c, false().label(t.labels.marker))
            .where(latest.c[AUDIT_OPERATION].in_(STATE_OPERATIONS))
            .subquery("audit_as_of_versions")
        )
        return version_select(t, states, with_changes=False).order_by(
            *(states.c[k] for k in t.key_columns)
        )

    return _bound(resolved, "as_of", build, key, {"at": moment})
