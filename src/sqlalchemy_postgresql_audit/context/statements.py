"""Which statements a CDC context row must ride in front of: those that may write a CDC table.

A compiled INSERT, UPDATE or DELETE (also nested in a common table expression) does when the
table it writes is a CDC table, or when a foreign key's ``ON DELETE``/``ON UPDATE`` action
carries its change on to one (``cascades``); one writing a trigger-mode table otherwise does
not (its trigger reads the settings), nor does a compiled SELECT or DDL.  A written table
SQLAlchemy knows no audit spec for (reflected, ``sa.table(...)``) is taken for a CDC table
when a declared CDC table has its name: a context row too many costs a row, one too few loses
the context.

Textual and driver SQL is not parsed: it may write unless each of its statements starts like a
plain read or transaction control (``SELECT``, ``SHOW``, ``SET``, ``BEGIN``, ...), so
``SET LOCAL lock_timeout = '2s'; UPDATE ...`` gets the row.  A SELECT calling a function that
writes a CDC table is taken for a read, so such a write gets no context row from the listener:
``set_session_vars`` sends one explicitly.  So does a trigger-mode table whose own trigger
writes a CDC table.
"""

from __future__ import annotations

import re
import weakref
from functools import partial
from typing import Any

from sqlalchemy import Alias, Table
from sqlalchemy.sql.elements import TextClause

from ..declare.audit_table import SPEC_KEY
from ..declare.declaration import specs_stored
from ..declare.spec import AuditSpec
from ..declare.written import nested_writes, operations_of, written_table
from .cascades import reaches_cdc
from .cdc_row import cdc_table_names

#: The first word of textual SQL that cannot change a row.  ``WITH`` and ``EXPLAIN`` are not
#: here: a data-modifying CTE or ``EXPLAIN ANALYZE`` writes.
_READS = frozenset(
    {
        "select",
        "show",
        "values",
        "table",
        "set",
        "reset",
        "begin",
        "start",
        "commit",
        "end",
        "rollback",
        "abort",
        "savepoint",
        "release",
        "fetch",
        "move",
        "close",
        "listen",
        "unlisten",
        "discard",
        "deallocate",
    }
)
#: Leading blanks, comments and parentheses, then the first word.
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*([A-Za-z]+)", re.DOTALL)
#: What may hide a ``;`` that does not end a statement (quoted text, identifiers, comments),
#: or a ``;`` that does.
_QUOTED_OR_END = re.compile(
    r"""[Ee]'(?:[^'\\]|\\.|'')*'?|'(?:[^']|'')*'?|"(?:[^"]|"")*"?"""
    r"""|(\$[A-Za-z_0-9]*\$).*?(?:\1|$)|--[^\n]*|/\*.*?(?:\*/|$)|;""",
    re.DOTALL,
)
#: A statement of blanks and comments only.
_NOTHING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*\Z", re.DOTALL)


def may_write_cdc(statement: str, context: Any) -> bool:
    """Whether ``statement`` (as sent, with its execution context) may change a CDC table's
    rows."""
    compiled = getattr(context, "compiled", None)
    if compiled is not None and not isinstance(getattr(compiled, "statement", None), TextClause):
        if getattr(context, "isddl", False):
            return False
        stored = specs_stored()
        answer = _ANSWERS.get(id(compiled))
        if answer is None or answer[0]() is not compiled or answer[1] != stored:
            answer = _answer(compiled, context, stored)
        return answer[2]
    if ";" not in statement:
        return _text_may_write(statement)
    return any(_text_may_write(part) for part in _statements(statement))


#: A compiled statement's answer: a weak reference to it (SQLAlchemy's cache decides how long
#: it lives), ``specs_stored()`` when answered (a table declared since may change the answer),
#: and whether it writes a CDC table.  A plain tuple: read on every compiled statement, and
#: a named tuple's or dataclass's fields measured slower.
_Answer = tuple["weakref.ref[Any]", int, bool]


#: ``id(compiled)`` -> its answer.  SQLAlchemy caches compiled statements per statement shape,
#: so a compiled write costs a look-up and two comparisons, not a walk of its tables, and
#: SQLAlchemy's objects get no attribute of ours.  Keyed by ``id`` rather than by the object:
#: a ``WeakKeyDictionary`` makes a weak reference at every look-up, which measured 1.4x the
#: cost of the whole check (this: 1.15x that of an attribute on the compiled object).  The
#: entry's reference tells whether it is this object's (an ``id`` is reused once its object
#: is gone), and its callback removes the entry then.
_ANSWERS: dict[int, _Answer] = {}


def _answer(compiled: Any, context: Any, stored: int) -> _Answer:
    key = id(compiled)
    reference = weakref.ref(compiled, partial(_forget, key))
    answer = (reference, stored, _compiled_writes_cdc(compiled, context))
    _ANSWERS[key] = answer
    return answer


def _forget(key: int, reference: weakref.ref[Any]) -> None:
    """The compiled statement is gone: drop its entry, unless a newer object's holds the key."""
    answer = _ANSWERS.get(key)
    if answer is not None and answer[0] is reference:
        _ANSWERS.pop(key, None)


def _compiled_writes_cdc(compiled: Any, context: Any) -> bool:
    if (compiled.isinsert or compiled.isupdate or compiled.isdelete) and _writes_cdc(
        compiled.statement
    ):
        return True
    return any(_writes_cdc(write) for write in nested_writes(context))


def _text_may_write(statement: str) -> bool:
    match = _FIRST_WORD.match(statement)
    return match is None or match[1].lower() not in _READS


def _statements(statement: str) -> list[str]:
    """The statements of ``statement``: cut at each ``;`` outside quotes and comments, less
    the empty ones (a trailing ``;``)."""
    pieces, start = [], 0
    for match in _QUOTED_OR_END.finditer(statement):
        if match[0] == ";":
            pieces.append(statement[start : match.start()])
            start = match.end()
    pieces.append(statement[start:])
    return [piece for piece in pieces if not _NOTHING.match(piece)] or pieces


def _writes_cdc(write: Any) -> bool:
    """Whether the INSERT, UPDATE or DELETE construct ``write`` writes a CDC table, itself
    or through a foreign key's ``ON DELETE``/``ON UPDATE`` action (``cascades``)."""
    table = written_table(write)
    if table is None:
        table = _plain_table(write)
    if table is None:
        return True  # a target this module cannot name (``sa.table(...)``): send the row
    operations = operations_of(write) or frozenset({"UPDATE", "DELETE"})  # unknown: may both
    return _is_cdc_table(table) or reaches_cdc(table, operations)


def _plain_table(write: Any) -> Table | None:
    """The table a write without audit options names (reflected, or not audited)."""
    table = getattr(write, "table", None)
    while isinstance(table, Alias):
        table = table.element
    return table if isinstance(table, Table) else None


def _is_cdc_table(table: Table) -> bool:
    """The table's own spec says; without one (or with one copied from another table), its
    name against the declared CDC tables' names."""
    spec = table.info.get(SPEC_KEY)
    if isinstance(spec, AuditSpec) and (spec.table, spec.schema) == (table.name, table.schema):
        return spec.cdc
    return table.name in cdc_table_names()
