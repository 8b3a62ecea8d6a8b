"""``audit_context(**values)``: settings for every transaction run while it is active.

The values live in a ``contextvars.ContextVar``, so each thread and each asyncio task sees
its own; ``default_context(**values)`` sets a process-wide default for every thread and task
in which no ``audit_context`` is active.  On first use, listeners are registered once on the
``~sqlalchemy.engine.Engine`` class (so every engine, sync or async, ORM or Core, is covered,
and nothing fires twice):

- ``before_cursor_execute`` compares the values active now with those already applied in this
  transaction and, when they differ, sends ``set_config(name, value, true)`` for the
  difference.  On psycopg2 the call rides in front of the statement in the same
  ``cursor.execute`` (one round trip); psycopg 3 and asyncpg bind parameters server side, which
  allows one statement per call, so there it is one extra statement, sent once per transaction.
  Savepoint statements (``SAVEPOINT``, ``ROLLBACK TO``, ``RELEASE``) never carry settings: in
  an aborted transaction anything in front of ``ROLLBACK TO SAVEPOINT`` would fail and hide
  the real error.  The settings go with the next statement instead.
- In a process that declares CDC tables, the values also travel as a row of the context table
  (``cdc_row``), sent in front of the first statement of the transaction that may write a CDC
  table (``statements.may_write_cdc``) after the values changed, never in front of a read: a
  read-only transaction, a hot standby or a reader role could not insert it.
- ``begin``, ``commit``, ``rollback`` (and the two-phase variants) forget what was applied, so
  the next transaction applies the values again.  ``savepoint`` remembers what was applied when
  the savepoint was taken and ``rollback_savepoint`` goes back to it, since PostgreSQL undoes
  settings (and context rows) made inside a rolled back savepoint; the next statement then
  applies the difference (the next write inserts the row again).
- ``handle_error``: when the statement that carried the settings failed (on psycopg2 the
  driver may refuse it before sending anything: a NUL byte, a parameter it cannot adapt), what
  was applied goes back to what the server had before it.

So every statement runs with the context active when it is executed: a transaction begun
before the context was entered gets the values from its next statement on, and a statement run
after the context exited (still in the same transaction) runs with the settings reset to NULL.
Settings are transaction-local and set inside the transaction, so nothing outlives it (safe
with connection pools and PgBouncer transaction pooling).
"""

from __future__ import annotations

import contextvars
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any

from sqlalchemy import Connection, String, bindparam, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.engine.interfaces import ExecuteStyle
from sqlalchemy.sql.expression import (
    ReleaseSavepointClause,
    RollbackToSavepointClause,
    SavepointClause,
)

from .cdc_row import SETTINGS_PARAMETER, cdc_declared, context_insert, settings_json
from .explicit import overridden, sent_settings
from .session import (
    config_parameters,
    config_statement,
    is_autocommit,
    prepare_values,
    refuse_autocommit,
)
from .statements import may_write_cdc
from .transaction_state import TRANSACTION_EDGES, listen_once, release, savepoint_depth

_EMPTY: Mapping[str, str] = MappingProxyType({})
_SAVEPOINT_STATEMENTS = (SavepointClause, RollbackToSavepointClause, ReleaseSavepointClause)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Frame:
    """One entered context: the merged values, the frame it covers, and who entered it.

    The stack lives in the context variable itself (not in the AuditContext), so one
    AuditContext object may be entered by many threads and tasks at once.
    """

    values: Mapping[str, str]
    parent: _Frame | None
    owner: AuditContext | None
    #: Shared by the frames of one stack: ``{id(connection info): (info, values applied)}``,
    #: so that leaving the outermost context can tell a transaction still open with its values.
    applied_in: dict[int, tuple[dict[str, Any], Mapping[str, str]]]


_ROOT = _Frame(values=_EMPTY, parent=None, owner=None, applied_in={})
_CURRENT: contextvars.ContextVar[_Frame] = contextvars.ContextVar(
    "sqlalchemy_postgresql_audit_context", default=_ROOT
)
#: What applies where no audit_context is active (``default_context``); one for the process.
_default: Mapping[str, str] = _EMPTY
#: Keys in ``Connection.info`` (per DBAPI connection), all about its current transaction:
#: the values applied; the values its CDC context rows carry (or need none);
#: ``[(savepoint name, values applied, values carried when it was taken)]``; and
#: ``(execution context, values applied, values carried before it)`` while a statement
#: carrying settings may still fail.
_APPLIED = "sqlalchemy_postgresql_audit.applied"
_CARRIED = "sqlalchemy_postgresql_audit.carried"
_SAVEPOINTS = "sqlalchemy_postgresql_audit.savepoints"
_PENDING = "sqlalchemy_postgresql_audit.pending"
_PREFIX = "_audit_ctx"


class AuditContext:
    """What ``audit_context`` returns: use it with ``with`` or ``async with``."""

    __slots__ = ("_entered_in", "_values")

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values
        self._entered_in = ""

    def __enter__(self) -> Mapping[str, str]:
        _install()
        frame = _CURRENT.get()
        merged = MappingProxyType({**frame.values, **self._values})
        applied_in = {} if frame is _ROOT else frame.applied_in
        _CURRENT.set(_Frame(values=merged, parent=frame, owner=self, applied_in=applied_in))
        self._entered_in = threading.current_thread().name  # for the error below only
        return merged

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        frame = _CURRENT.get()
        if frame.owner is not self or frame.parent is None:
            raise RuntimeError(_exit_error(self, frame))
        _CURRENT.set(frame.parent)
        if frame.parent is _ROOT:
            _warn_if_still_open(frame)

    async def __aenter__(self) -> Mapping[str, str]:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)


def _exit_error(context: AuditContext, frame: _Frame) -> str:
    """Why ``context`` cannot exit here: out of order, or not active in this thread / task."""
    outer: _Frame | None = frame
    while outer is not None:
        if outer.owner is context:
            return (
                "audit_context exited out of order: a context entered inside it is still "
                "active (exit contexts in the reverse order, e.g. with nested 'with' blocks)"
            )
        outer = outer.parent
    here = threading.current_thread().name
    where = (
        f"it was entered in thread {context._entered_in!r}, and exits in thread {here!r}"
        if context._entered_in and context._entered_in != here
        else f"it exits in thread {here!r} in another contextvars context (task) than it was "
        "entered in"
    )
    return (
        f"audit_context exited where it is not active: {where}, so the code in between ran "
        "without its values (optional settings recorded NULL).  A FastAPI or Starlette "
        "dependency declared with 'def' runs in a threadpool: declare the dependency that "
        "enters audit_context with 'async def'.  Thread pools and executors: submit "
        "contextvars.copy_context().run(fn, ...) so the work sees the caller's context"
    )


def _warn_if_still_open(frame: _Frame) -> None:
    """Warn when a transaction that applied this context's values is still open at its exit.

    Its later statements run without the values, typically a Session that flushes and commits
    after the context exited: a FastAPI session dependency declared before the context one.
    """
    still_open = [
        info for info, values in list(frame.applied_in.values()) if info.get(_APPLIED) is values
    ]
    if still_open:
        warnings.warn(
            f"audit_context exited while {len(still_open)} transaction(s) that applied its "
            "values are still open: what they run from now on (e.g. a Session's flush at "
            "commit) runs without them (NULL, or the default_context).  Commit inside the "
            "context; in FastAPI, "
            "declare the dependency that enters audit_context before the session dependency",
            RuntimeWarning,
            stacklevel=3,
        )


def audit_context(**values: object) -> AuditContext:
    """Apply ``audit.<name>`` settings to every transaction run while the context is active.

    Names and values are checked now, like ``set_session_vars`` checks them.  Contexts nest:
    the inner one adds to and overrides the outer one's values; ``None`` sets NULL.  Enter and
    exit it in the same thread and task (a ``def`` dependency of FastAPI does not).
    """
    return AuditContext(prepare_values(values))


def default_context(**values: object) -> None:
    """Set the process-wide values for every thread and task where no audit_context is active.

    For workers and jobs that are one actor throughout, including the threads other libraries
    start (a heartbeat thread, a ``ThreadPoolExecutor``), which contextvars do not reach.  An
    active ``audit_context`` replaces the default wholly (its values are never mixed with the
    default's); ``default_context()`` without values clears it.  Not applied on AUTOCOMMIT
    connections, which cannot hold transaction-local settings.
    """
    global _default
    prepared = prepare_values(values)
    _install()
    _default = MappingProxyType(prepared) if prepared else _EMPTY


def current_audit_values() -> Mapping[str, str]:
    """The settings (as sent to PostgreSQL) that apply here now; empty if none."""
    frame = _CURRENT.get()
    return _default if frame is _ROOT else frame.values


def _install() -> None:
    listen_once(_LISTENERS, retval=("before_cursor_execute",))


def _forget(connection: Connection, *args: Any) -> None:
    # An invalidated connection (its backend died) has no info to forget: touching it would
    # raise PendingRollbackError from inside the rollback and hide the real error.  Its
    # replacement DBAPI connection starts with a fresh info dict.
    if not connection.invalidated:
        info = connection.info
        info.pop(_APPLIED, None)
        info.pop(_CARRIED, None)
        info.pop(_SAVEPOINTS, None)
        info.pop(_PENDING, None)


def _savepoint(connection: Connection, name: str) -> None:
    if not connection.invalidated:
        info = connection.info
        info.setdefault(_SAVEPOINTS, []).append(
            (name, info.get(_APPLIED, _EMPTY), info.get(_CARRIED, _EMPTY))
        )


def _rollback_savepoint(connection: Connection, name: str, context: Any) -> None:
    """PostgreSQL restores the settings the savepoint was taken with (it stays open), and
    undoes the context rows inserted since: the next write inserts one again."""
    if connection.invalidated:
        return
    info = connection.info
    info.pop(_PENDING, None)
    stack = info.get(_SAVEPOINTS, [])
    depth = savepoint_depth(stack, name)
    if depth is None:  # taken before the listeners existed: unknown, apply (and carry) all again
        info[_APPLIED] = info[_CARRIED] = None
        return
    del stack[depth + 1 :]
    info[_APPLIED], info[_CARRIED] = stack[depth][1], stack[depth][2]


def _release_savepoint(connection: Connection, name: str, context: Any) -> None:
    if not connection.invalidated:
        release(connection.info.get(_SAVEPOINTS, []), name)


def _failed(error: ExceptionContext) -> None:
    """The statement that carried the settings failed: the server has what it had before."""
    connection = error.connection
    if connection is None or connection.invalidated or connection.closed:
        return
    info = connection.info
    pending = info.get(_PENDING)
    if pending is not None and pending[0] is error.execution_context:
        info[_APPLIED], info[_CARRIED] = pending[1], pending[2]
        del info[_PENDING]


def _before_cursor_execute(
    connection: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> tuple[str, Any]:
    frame = _CURRENT.get()
    wanted = _default if frame is _ROOT else frame.values
    info = connection.info
    applied: Mapping[str, str] | None = info.get(_APPLIED, _EMPTY)
    carried: Mapping[str, str] | None = info.get(_CARRIED, _EMPTY)
    if wanted is applied and wanted is carried:
        return statement, parameters
    compiled = context.compiled if context is not None else None
    if compiled is not None and isinstance(compiled.statement, _SAVEPOINT_STATEMENTS):
        return statement, parameters  # the next statement carries them (module docstring)
    if wanted and is_autocommit(connection):
        if frame is _ROOT:
            return statement, parameters  # the process default does not apply here
        refuse_autocommit(connection)
    if frame is not _ROOT:
        frame.applied_in[id(info)] = (info, wanted)
    changes = {} if wanted is applied else _difference(wanted, applied)
    insert, row = None, {}
    if wanted is not carried:
        if not _difference(wanted, carried):
            # Nothing to carry (no context, or the same values): no row, and no look-up of
            # where a row would go, which can fail for reasons of its own.
            info[_CARRIED] = carried = wanted
        else:
            insert = _context_row_here(connection, statement, context)
            if insert is _LATER:
                insert = None
            elif insert is None:
                info[_CARRIED] = carried = wanted  # no context row in this transaction here
            else:
                row = _difference(wanted, carried)
    if changes:
        overridden(info, changes)
    if not changes and not row:
        info[_APPLIED] = wanted
        if insert is not None:
            info[_CARRIED] = wanted
        return statement, parameters
    if _can_piggyback(connection, cursor, parameters, context, executemany):
        info[_PENDING] = (context, applied, carried)  # until the server has it: see _failed
        parts, bound = _prefix(connection, changes, insert, row)
        info[_APPLIED] = wanted
        if insert is not None:
            info[_CARRIED] = wanted
        return ";\n".join([*parts, statement]), {**parameters, **bound}
    raw = connection.connection.dbapi_connection
    assert raw is not None
    side_cursor = raw.cursor()
    try:
        if changes:
            sql, order = _compiled(connection, len(changes))
            bound = config_parameters(changes, _PREFIX)
            side_cursor.execute(sql, [bound[name] for name in order] if order else bound)
        if row and insert is not None:
            insert_sql, positional = _compiled_insert(connection, insert)
            value = settings_json(row)
            side_cursor.execute(insert_sql, [value] if positional else {SETTINGS_PARAMETER: value})
    finally:
        side_cursor.close()
    info[_APPLIED] = wanted
    if insert is not None:
        info[_CARRIED] = wanted
    return statement, parameters


def missing_for_next_write(connection: Connection, names: Iterable[str]) -> list[str]:
    """Which of the ``audit.*`` settings ``names`` the next statement on ``connection`` runs
    without (unset, or NULL), as far as the library sent them, without asking the server.

    For each name: what this module sends in front of that statement, else what
    ``set_session_vars`` sent since this module last sent it (``explicit``), else what this
    module applied.  All of them on an AUTOCOMMIT connection, where no transaction-local
    setting reaches the next statement.
    """
    if is_autocommit(connection):
        return list(names)
    frame = _CURRENT.get()
    wanted = _default if frame is _ROOT else frame.values
    info = connection.info
    applied: Mapping[str, str] | None = info.get(_APPLIED, _EMPTY)
    sent = sent_settings(info)
    missing = []
    for name in names:
        if applied is None:  # unknown: every wanted value is sent again (_difference)
            value = wanted[name] if name in wanted else sent.get(name)
        elif wanted.get(name) != applied.get(name):
            value = wanted.get(name)  # sent in front of it (None: reset to NULL)
        else:
            value = sent.get(name, applied.get(name))
        if not value:
            missing.append(name)
    return missing


def _difference(wanted: Mapping[str, str], had: Mapping[str, str] | None) -> dict[str, str]:
    """What to send so that ``had`` becomes ``wanted``: ``""`` resets a setting to NULL."""
    if had is None:
        return dict(wanted)
    changes = {name: text for name, text in wanted.items() if had.get(name) != text}
    changes.update((name, "") for name in had if name not in wanted)
    return changes


def _prefix(
    connection: Connection, changes: Mapping[str, str], insert: str | None, row: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The statements (and their parameters) that ride in front of the statement (psycopg2)."""
    parts: list[str] = []
    bound: dict[str, str] = {}
    if changes:
        parts.append(_compiled(connection, len(changes))[0])
        bound.update(config_parameters(changes, _PREFIX))
    if row and insert is not None:
        parts.append(_compiled_insert(connection, insert)[0])
        bound[SETTINGS_PARAMETER] = settings_json(row)
    return parts, bound


#: ``_context_row_here``: not in front of this statement, maybe in front of a later one.
_LATER = "later"


def _context_row_here(connection: Connection, statement: str, context: Any) -> str | None:
    """The CDC context row's INSERT to send in front of this statement, ``_LATER``, or ``None``
    when no context row goes to this database in this transaction.

    The row must precede the transaction's first change of a CDC table, and must not turn a
    read into a write: a read-only transaction, a hot standby or a role without INSERT on the
    context table would fail on it, and every read would cost a row and a commit flush.  So it
    rides only in front of a statement that may write a CDC table (``may_write_cdc``), outside
    transactions made read-only with the ``postgresql_readonly`` execution option; and the
    look-up (see ``context_insert``) says no on a standby.
    """
    if not cdc_declared():
        return None
    if not may_write_cdc(statement, context):
        return _LATER
    options = context.execution_options if context is not None else {}
    if options.get("postgresql_readonly"):
        return _LATER
    return context_insert(connection)


_COMPILED_INSERTS: dict[tuple[type, str, str], tuple[str, bool]] = {}


def _compiled_insert(connection: Connection, insert: str) -> tuple[str, bool]:
    """The CDC context row's INSERT in the dialect's paramstyle, and whether it is positional."""
    dialect = connection.dialect
    key = (type(dialect), dialect.paramstyle, insert)
    cached = _COMPILED_INSERTS.get(key)
    if cached is None:
        statement = text(insert).bindparams(bindparam(SETTINGS_PARAMETER, type_=String()))
        compiled = statement.compile(dialect=dialect)
        cached = (compiled.string, bool(compiled.positional))
        _COMPILED_INSERTS[key] = cached
    return cached


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


#: Registered in this order: the last one tells whether all are (``listen_once``).
_LISTENERS: tuple[tuple[str, Callable[..., Any]], ...] = (
    *((edge, _forget) for edge in TRANSACTION_EDGES),
    ("savepoint", _savepoint),
    ("rollback_savepoint", _rollback_savepoint),
    ("release_savepoint", _release_savepoint),
    ("handle_error", _failed),
    ("before_cursor_execute", _before_cursor_execute),
)
