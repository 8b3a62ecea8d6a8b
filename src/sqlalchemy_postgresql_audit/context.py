"""``audit_context(**values)``: settings for every transaction run while it is active.

The values live in a ``contextvars.ContextVar``, so each thread and each asyncio task sees
its own.  On first use, listeners are registered once on the ``~sqlalchemy.engine.Engine``
class (so every engine, sync or async, ORM or Core, is covered, and nothing fires twice):

- ``before_cursor_execute`` compares the values active now with those already applied in this
  transaction and, when they differ, sends ``set_config(name, value, true)`` for the
  difference.  On psycopg2 the call rides in front of the statement in the same
  ``cursor.execute`` (one round trip); psycopg 3 and asyncpg bind parameters server side, which
  allows one statement per call, so there it is one extra statement, sent once per transaction.
- ``begin``, ``commit``, ``rollback`` (and the two-phase variants) forget what was applied, so
  the next transaction applies the values again; ``rollback_savepoint`` marks it unknown, since
  PostgreSQL undoes settings made inside a rolled back savepoint.

So every statement runs with the context active when it is executed: a transaction begun
before the context was entered gets the values from its next statement on, and a statement run
after the context exited (still in the same transaction) runs with the settings reset to NULL.
Settings are transaction-local and set inside the transaction, so nothing outlives it (safe
with connection pools and PgBouncer transaction pooling).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine.interfaces import ExecuteStyle

from .session import config_parameters, config_statement, prepare_values, refuse_autocommit

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class _Frame:
    """One entered context: the merged values, the frame it covers, and who entered it.

    The stack lives in the context variable itself (not in the AuditContext), so one
    AuditContext object may be entered by many threads and tasks at once.
    """

    values: Mapping[str, str]
    parent: _Frame | None
    owner: AuditContext | None


_ROOT = _Frame(values=_EMPTY, parent=None, owner=None)
_CURRENT: contextvars.ContextVar[_Frame] = contextvars.ContextVar(
    "sqlalchemy_postgresql_audit_context", default=_ROOT
)
#: Key in ``Connection.info`` (per DBAPI connection): the values applied in its transaction.
_APPLIED = "sqlalchemy_postgresql_audit.applied"
_PREFIX = "_audit_ctx"
_INSTALL_LOCK = threading.Lock()


class AuditContext:
    """What ``audit_context`` returns: use it with ``with`` or ``async with``."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def __enter__(self) -> Mapping[str, str]:
        _install()
        frame = _CURRENT.get()
        merged = MappingProxyType({**frame.values, **self._values})
        _CURRENT.set(_Frame(values=merged, parent=frame, owner=self))
        return merged

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        frame = _CURRENT.get()
        if frame.owner is not self or frame.parent is None:
            raise RuntimeError(
                "audit_context exited out of order, or in another thread or task than the one "
                "that entered it"
            )
        _CURRENT.set(frame.parent)

    async def __aenter__(self) -> Mapping[str, str]:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)


def audit_context(**values: object) -> AuditContext:
    """Apply ``audit.<name>`` settings to every transaction run while the context is active.

    Names and values are checked now, like ``set_session_vars`` checks them.  Contexts nest:
    the inner one adds to and overrides the outer one's values; ``None`` sets NULL.
    """
    return AuditContext(prepare_values(values))


def current_audit_values() -> Mapping[str, str]:
    """The settings (as sent to PostgreSQL) that the active context applies; empty if none."""
    return _CURRENT.get().values


def _install() -> None:
    if event.contains(Engine, "before_cursor_execute", _before_cursor_execute):
        return
    with _INSTALL_LOCK:
        if event.contains(Engine, "before_cursor_execute", _before_cursor_execute):
            return
        for name in ("begin", "commit", "rollback", "commit_twophase", "rollback_twophase"):
            event.listen(Engine, name, _forget)
        event.listen(Engine, "rollback_savepoint", _unknown)
        event.listen(Engine, "before_cursor_execute", _before_cursor_execute, retval=True)


def _forget(connection: Connection, *args: Any) -> None:
    # An invalidated connection (its backend died) has no info to forget: touching it would
    # raise PendingRollbackError from inside the rollback and hide the real error.  Its
    # replacement DBAPI connection starts with a fresh info dict.
    if not connection.invalidated:
        connection.info.pop(_APPLIED, None)


def _unknown(connection: Connection, *args: Any) -> None:
    if not connection.invalidated:
        connection.info[_APPLIED] = None


def _before_cursor_execute(
    connection: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> tuple[str, Any]:
    wanted = _CURRENT.get().values
    info = connection.info
    applied: Mapping[str, str] | None = info.get(_APPLIED, _EMPTY)
    if wanted is applied:
        return statement, parameters
    if wanted:
        refuse_autocommit(connection)
    if applied is None:
        changes = dict(wanted)
    else:
        changes = {name: text for name, text in wanted.items() if applied.get(name) != text}
        changes.update((name, "") for name in applied if name not in wanted)
    info[_APPLIED] = wanted
    if not changes:
        return statement, parameters
    sql, order = _compiled(connection, len(changes))
    bound = config_parameters(changes, _PREFIX)
    if _can_piggyback(connection, cursor, parameters, context, executemany):
        return f"{sql};\n{statement}", {**parameters, **bound}
    raw = connection.connection.dbapi_connection
    assert raw is not None
    side_cursor = raw.cursor()
    try:
        side_cursor.execute(sql, [bound[name] for name in order] if order else bound)
    finally:
        side_cursor.close()
    return statement, parameters


_COMPILED: dict[tuple[type, str, int], tuple[str, tuple[str, ...]]] = {}


def _compiled(connection: Connection, count: int) -> tuple[str, tuple[str, ...]]:
    """The ``set_config`` statement for ``count`` settings in the dialect's paramstyle, cached."""
    dialect = connection.dialect
    key = (type(dialect), dialect.paramstyle, count)
    cached = _COMPILED.get(key)
    if cached is None:
        compiled = config_statement(count, _PREFIX).compile(dialect=dialect)
        order = compiled.positiontup if compiled.positional else None
        cached = (compiled.string, tuple(order or ()))
        _COMPILED[key] = cached
    return cached


def _can_piggyback(
    connection: Connection, cursor: Any, parameters: Any, context: Any, executemany: bool
) -> bool:
    """Whether ``set_config`` can share this ``cursor.execute`` (psycopg2, one plain statement).

    psycopg2 interpolates parameters client side and sends the string as one simple query,
    which may hold several statements.  Not for ``executemany`` (except insertmanyvalues
    batches, which are single executes), named (server-side) cursors, or raw driver SQL whose
    ``%`` signs were not escaped by SQLAlchemy's compiler.
    """
    if connection.dialect.driver != "psycopg2" or not isinstance(parameters, dict):
        return False
    if context is None or context.compiled is None or context.no_parameters:
        return False
    if executemany and context.execute_style is not ExecuteStyle.INSERTMANYVALUES:
        return False
    return getattr(cursor, "name", None) is None
