"""Server-side prepared statements for the history API's queries on psycopg2.

Why: psycopg2 sends every statement as text, and the server parses and plans it on every call.
A history query over a partitioned audit table is planned over every partition, which costs
about as much as running it (``docs/partitioning.md``).  psycopg 3 prepares a statement it has
run five times and asyncpg prepares every one; psycopg2 never does, so this does it for the
library's own queries, which the caller executes (``history()`` returns a select).

How: ``history``, ``as_of`` and ``changes`` mark their selects with the execution option
``audit_prepare=True``.  A ``before_cursor_execute`` listener, registered once on the
``Engine`` class when the history API is first used, turns such a select, on psycopg2 only, into
``EXECUTE name(%(p)s, ...)`` with the same parameters.  The first time on a DBAPI connection it
sends ``PREPARE name (types) AS <the select, $n for each parameter>`` before it (one more round
trip, or two: the savepoint), on a cursor of its own, inside a savepoint where a transaction
is open: a PREPARE the server refuses leaves the
transaction as it was, and the statement then runs unprepared on that connection.  The name is
a hash of what is prepared; the names a DBAPI connection holds are kept in its pooled
connection's ``info``, which the pool clears when it replaces the connection (its server went
away, a restart).  A parameter's declared type is what SQLAlchemy renders for its type
(``unknown``, inferred by the server, where it renders none or a collation).  At most
``MAX_PREPARED`` statements per connection; the least recently used is deallocated.  From the
sixth execution PostgreSQL may run a statement on one generic plan, planned once, where that
is estimated to cost no more than planning it for the values each time.

Left as they are: executemany, server-side (named) cursors, statements in an aborted
transaction (they fail as they would have, with nothing in front), a ``%`` that is no escape
or placeholder, a statement another listener changed first (a connection's own listeners run
before the engine's: an ``EXPLAIN`` put in front, a comment), psycopg 3 and asyncpg (they
prepare themselves).

Kept right:

- Schema changes: PostgreSQL checks a prepared statement's tables before each execution and
  plans it again after a change (partitions created by ``maintain``, dropped by retention, a
  column added).  One change it refuses: a result column whose type changed makes the
  statement fail ("cached plan must not change result type"), once, as below.
- ``DISCARD ALL`` or ``DEALLOCATE`` run through SQLAlchemy: the listener sees them and reads
  ``pg_prepared_statements`` again before its next use.
- A failed prepared execution (any error, also "prepared statement does not exist" after a
  ``DEALLOCATE`` on the raw driver connection): the listener reads ``pg_prepared_statements``
  again before its next use and deallocates the failed statement, so only that call fails.

Opting out: the execution option ``audit_prepare=False`` on the engine
(``create_engine(url, execution_options={"audit_prepare": False})``), a connection or one
statement.  Behind PgBouncer in transaction pooling mode it is needed: a statement prepared with
``PREPARE`` stays on the server connection it was prepared on, which the next transaction may
not get.
"""

from __future__ import annotations

import hashlib
import re
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Select, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.types import TupleType

from ..render.prepared import (
    HELD_STATEMENTS,
    deallocate,
    execute,
    prepare,
    release,
    savepoint,
    undo_savepoint,
)

#: The execution option: True on the history API's selects; False on an engine, a connection
#: or a statement turns preparing off.
PREPARE_OPTION = "audit_prepare"
#: Statements kept prepared per DBAPI connection, least recently used deallocated first.
MAX_PREPARED = 64
#: Every statement name starts with it (and goes on with hex digits).
NAME_PREFIX = "audit_"
#: Key in ``Connection.info`` (per DBAPI connection): its ``_Held``.
_HELD = "sqlalchemy_postgresql_audit.prepared"
#: psycopg2's placeholders: ``%%`` (a literal ``%``), ``%(name)s``, and a lone ``%``.
_PLACEHOLDER = re.compile(r"%(?:%|\((?P<name>[^)]*)\)s)?")
#: Statements that deallocate prepared statements.
_DEALLOCATES = re.compile(r"\s*(?:DISCARD|DEALLOCATE)\b", re.IGNORECASE)
#: ``psycopg2.extensions.TRANSACTION_STATUS_IDLE`` (no transaction open) and ``_INERROR``.
_IDLE, _IN_ERROR = 0, 3
_INSTALL_LOCK = threading.Lock()
_registered = False


@dataclass(frozen=True, slots=True)
class _Form:
    """A statement's prepared form: its name, the ``PREPARE`` and the ``EXECUTE``."""

    name: str
    prepare: str
    execute: str


@dataclass(slots=True)
class _Held:
    """What one DBAPI connection holds: the names (least recently used first); whether to read
    them from the server before the next use; the names whose execution failed since; those
    whose PREPARE the server refused; and the statement in flight (execution context, name)."""

    names: OrderedDict[str, None] = field(default_factory=OrderedDict)
    unsure: bool = False
    failed: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    pending: tuple[Any, str] | None = None


#: Prepared forms by compiled statement (SQLAlchemy caches those per statement shape), then by
#: the statement's text (expanding IN parameters give one text per list length).
_FORMS: weakref.WeakKeyDictionary[Any, dict[str, _Form | None]] = weakref.WeakKeyDictionary()
_FORMS_PER_COMPILED = 32


def register_prepared_statements() -> None:
    """Prepare the history API's selects on psycopg2 (once per process).  Idempotent, and
    cheap enough to call on every history call."""
    global _registered
    if _registered:
        return
    with _INSTALL_LOCK:
        if not event.contains(Engine, "before_cursor_execute", _before_cursor_execute):
            event.listen(Engine, "handle_error", _failed)
            # First, so that it sees the select itself, before a listener puts statements in
            # front of it (``audit_context``'s ``set_config`` on psycopg2): they go in front
            # of the EXECUTE.
            event.listen(
                Engine, "before_cursor_execute", _before_cursor_execute, retval=True, insert=True
            )
        _registered = True


def _before_cursor_execute(
    connection: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> tuple[str, Any]:
    if connection.dialect.driver != "psycopg2" or context is None:
        return statement, parameters
    if not context.execution_options.get(PREPARE_OPTION):
        if _DEALLOCATES.match(statement):
            held = connection.info.get(_HELD)
            if held is not None:
                held.unsure = True
        return statement, parameters
    compiled = context.compiled
    if (
        executemany
        or not parameters
        or not isinstance(parameters, dict)
        or compiled is None
        or not isinstance(compiled.statement, Select)
        or getattr(cursor, "name", None) is not None
        or (statement is not context.statement and statement != context.statement)
    ):
        return statement, parameters
    raw = cursor.connection
    if raw.info.transaction_status == _IN_ERROR:
        return statement, parameters
    form = _form(compiled, statement, context)
    if form is None:
        return statement, parameters
    held = connection.info.get(_HELD)
    if held is None:
        held = connection.info[_HELD] = _Held()
    if form.name in held.refused:
        return statement, parameters
    if held.unsure:
        _reread(raw, held)
    if form.name in held.names:
        held.names.move_to_end(form.name)
    elif not _prepare(raw, held, form):
        return statement, parameters
    held.pending = (context, form.name)
    return form.execute, parameters


def _prepare(raw: Any, held: _Held, form: _Form) -> bool:
    """PREPARE ``form`` (deallocating the least recently used beyond ``MAX_PREPARED``), in a
    savepoint where a transaction is open; False, and the transaction as it was, if the server
    refused it (then the statement runs unprepared on this connection from now on)."""
    evicted = list(held.names)[: max(0, len(held.names) - MAX_PREPARED + 1)]
    statements = [*map(deallocate, evicted), form.prepare]
    in_transaction = not raw.autocommit or raw.info.transaction_status != _IDLE
    cursor = raw.cursor()
    try:
        if in_transaction:
            # On its own: a syntax error would keep the server from running any statement of
            # the text it is in.
            cursor.execute(savepoint())
        cursor.execute(";\n".join([*statements, *([release()] if in_transaction else [])]))
    except raw.DatabaseError:
        # The server refused it.  (A broken connection raises again here, as the error of
        # the statement, and the pool replaces it.)
        if in_transaction:
            cursor.execute(undo_savepoint())
        held.refused.add(form.name)
        held.unsure = True  # an eviction may have run, or not
        return False
    finally:
        cursor.close()
    for name in evicted:
        del held.names[name]
    held.names[form.name] = None
    return True


def _failed(error: ExceptionContext) -> None:
    """A prepared execution failed: the statement may be gone (deallocated behind the
    library's back) or one the server can no longer run.  Read them again before the next."""
    connection = error.connection
    if connection is None or connection.invalidated or connection.closed:
        return
    held = connection.info.get(_HELD)
    if held is None or held.pending is None:
        return
    context, name = held.pending
    if context is error.execution_context:
        held.pending = None
        held.failed.add(name)
        held.unsure = True


def _reread(raw: Any, held: _Held) -> None:
    """Take the names from the server, deallocating those whose execution failed."""
    cursor = raw.cursor()
    try:
        cursor.execute(HELD_STATEMENTS)
        on_server = {row[0] for row in cursor.fetchall() if row[0].startswith(NAME_PREFIX)}
        for name in held.failed & on_server:
            cursor.execute(deallocate(name))
    finally:
        cursor.close()
    kept = on_server - held.failed
    # The ones this connection knew keep their order, after any it did not know.
    order = [name for name in kept if name not in held.names]
    order += [name for name in held.names if name in kept]
    held.names = OrderedDict.fromkeys(order)
    held.failed.clear()
    held.unsure = False


def _form(compiled: Any, statement: str, context: Any) -> _Form | None:
    """The prepared form of ``statement`` (as compiled by ``compiled``), or None when it has a
    ``%`` that is neither an escape nor a placeholder."""
    forms = _FORMS.get(compiled)
    if forms is None:
        forms = _FORMS.setdefault(compiled, {})
    if statement in forms:
        return forms[statement]
    if len(forms) >= _FORMS_PER_COMPILED:
        forms.clear()
    forms[statement] = found = _make_form(compiled, statement, context)
    return found


def _make_form(compiled: Any, statement: str, context: Any) -> _Form | None:
    order: dict[str, int] = {}
    lone_percent = False

    def number(match: re.Match[str]) -> str:
        nonlocal lone_percent
        name = match.group("name")
        if name is None:
            lone_percent = lone_percent or match.group(0) == "%"
            return "%"  # PREPARE is sent without parameters: no escapes
        return f"${order.setdefault(name, len(order) + 1)}"

    body = _PLACEHOLDER.sub(number, statement)
    if lone_percent:
        return None
    types = _parameter_types(compiled, context)
    declared = [types.get(name, "unknown") for name in order]
    digest = hashlib.sha256("\n".join([*declared, body]).encode()).hexdigest()
    name = NAME_PREFIX + digest[:24]
    return _Form(
        name=name,
        prepare=prepare(name, declared, body),
        execute=execute(name, [f"%({parameter})s" for parameter in order]),
    )


def _parameter_types(compiled: Any, context: Any) -> dict[str, str]:
    """Each parameter name as sent (escaped, expanded IN lists numbered) -> its SQL type."""
    dialect = context.dialect
    escaped = compiled.escaped_bind_names or {}
    expanded = getattr(context, "_expanded_parameters", None) or {}
    types: dict[str, str] = {}
    for bind, key in compiled.bind_names.items():
        sent = escaped.get(key, key)
        names = expanded.get(sent) or expanded.get(key) or [sent]
        element_types = bind.type.types if isinstance(bind.type, TupleType) else [bind.type]
        for index, name in enumerate(names):
            types[name] = _type_name(dialect, element_types[index % len(element_types)])
    return types


def _type_name(dialect: Any, type_: Any) -> str:
    """The parameter type SQLAlchemy renders for ``type_``, else ``unknown`` (the server infers
    it from where the parameter stands, as it does for psycopg2's quoted strings)."""
    try:
        rendered = str(dialect.type_compiler_instance.process(type_))
    except Exception:  # NullType and types without DDL: the server infers them
        return "unknown"
    return "unknown" if "COLLATE" in rendered.upper() else rendered
