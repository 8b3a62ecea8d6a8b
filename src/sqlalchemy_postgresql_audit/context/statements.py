"""Which statements may change rows: the ones a CDC context row must ride in front of.

A compiled INSERT, UPDATE or DELETE (also nested in a common table expression) may; a compiled
SELECT or DDL does not.  Textual and driver SQL is not parsed: it may write unless its first
word makes it a plain read or transaction control (``SELECT``, ``SHOW``, ``SET``, ``BEGIN``,
...).  A SELECT calling a function that writes a CDC table is taken for a read, so such a
write gets no context row from the listener: ``set_session_vars`` sends one explicitly.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.sql.elements import TextClause

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


def may_write(statement: str, context: Any) -> bool:
    """Whether ``statement`` (as sent, with its execution context) may change rows."""
    compiled = getattr(context, "compiled", None)
    if compiled is not None and not isinstance(getattr(compiled, "statement", None), TextClause):
        if getattr(context, "isddl", False):
            return False
        if compiled.isinsert or compiled.isupdate or compiled.isdelete:
            return True
        ctes: Any = getattr(compiled, "ctes", None) or ()
        return any(getattr(getattr(cte, "element", None), "is_dml", False) for cte in list(ctes))
    match = _FIRST_WORD.match(statement)
    return match is None or match[1].lower() not in _READS
