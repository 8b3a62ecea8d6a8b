"""The statements that keep a history query prepared on the server (``context/prepared.py``).

``EXECUTE`` is text for psycopg2's ``pyformat`` paramstyle, sent with the statement's own
parameters: its arguments are the driver's placeholders, so the values stay bound parameters,
quoted by the driver as they would have been into the statement.  ``PREPARE`` is sent without
parameters (the body has ``$1``, ``$2``, ... and plain ``%``), in a savepoint where a transaction
is open, so that a PREPARE the server refuses leaves the transaction as it was.  Statement names
are quoted as identifiers, although the library only makes names of hex digits.
"""

from __future__ import annotations

from collections.abc import Sequence

from .sql import always_quote

#: The statements this session prepared with ``PREPARE`` (not the driver protocol's).
HELD_STATEMENTS = "SELECT name FROM pg_catalog.pg_prepared_statements WHERE from_sql"


def prepare(name: str, types: Sequence[str], body: str) -> str:
    """``PREPARE name (types) AS body``: ``types`` declares ``$1``, ``$2``, ... in order."""
    declared = f" ({', '.join(types)})" if types else ""
    return f"PREPARE {always_quote(name)}{declared} AS {body}"


def execute(name: str, placeholders: Sequence[str]) -> str:
    """``EXECUTE name (arguments)``, the arguments as the driver's placeholders."""
    arguments = f"({', '.join(placeholders)})" if placeholders else ""
    return f"EXECUTE {always_quote(name)}{arguments}"


def deallocate(name: str) -> str:
    return f"DEALLOCATE {always_quote(name)}"


#: The savepoint a PREPARE is sent in, inside an open transaction.
SAVEPOINT = always_quote("audit_prepare")


def savepoint() -> str:
    return f"SAVEPOINT {SAVEPOINT}"


def release() -> str:
    return f"RELEASE SAVEPOINT {SAVEPOINT}"


def undo_savepoint() -> str:
    """After a statement in the savepoint failed: back to before it, the savepoint gone."""
    return f"ROLLBACK TO SAVEPOINT {SAVEPOINT};\n{release()}"
