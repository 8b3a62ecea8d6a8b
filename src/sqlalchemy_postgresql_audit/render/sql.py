"""Quoting, literals and the pieces every template shares.

Identifiers go through SQLAlchemy's PostgreSQL identifier preparer and every literal through the
dialect's own literal renderer; nothing here formats a user-supplied name or value into SQL by
hand.  Text is rendered for a ``named``-paramstyle dialect, so ``%`` is never doubled here: the
executing layer (``..install.ddl``) escapes it for drivers that need it.

Every statement is safe to run through ``sqlalchemy.text()`` (and so Alembic's ``op.execute``)
as well as through psql: no ``:name`` bind pattern occurs anywhere.  JSON uses ``": "`` and
escapes ``:`` inside strings as ``\u003a``; an identifier or literal holding ``:`` is written
in PostgreSQL's ``U&"..."`` / ``U&'...'`` form with the colon as ``\003a``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from sqlalchemy import String
from sqlalchemy.dialects import postgresql

from ..declare.spec import (
    AuditSpec,
)

COMMENT_MARKER = "sqlalchemy-postgresql-audit:"

#: Transition-table names used by statement-level triggers.
OLD_ROWS = "audit_old_rows"
NEW_ROWS = "audit_new_rows"

_DIALECT = postgresql.dialect(paramstyle="named")  # type: ignore[no-untyped-call]
_PREPARER = _DIALECT.identifier_preparer
_LITERAL = String().literal_processor(_DIALECT)  # type: ignore[no-untyped-call]

#: What ``sqlalchemy.text()`` takes for a bind parameter (``:name``), with margin: any colon
#: followed by a word character is escaped, whatever precedes it.
_BIND_LIKE = re.compile(r":\w")
#: The schema a spec without one is installed in when no connection resolved it.
FALLBACK_SCHEMA = "public"
#: The function's pinned ``search_path``: nothing a writer creates can shadow a name it uses
#: (pg_temp listed last, so temporary relations are never found first; functions and
#: operators are never looked up in pg_temp).
SEARCH_PATH = "pg_catalog, pg_temp"
#: Who wrote, inside a SECURITY DEFINER function: the role set with SET ROLE, else the session
#: user.  Differs from ``current_user`` only when the write itself runs inside another SECURITY
#: DEFINER function: then the writer shows as that session's SET ROLE or session user, not as
#: the other function's owner.
WRITER = (
    "CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user "
    "ELSE pg_catalog.current_setting('role') END"
)
#: The function body's block label: every variable is written ``audit_trigger.<name>``, so no
#: source column name (``setting_0``, ``audited_rows``, ...) can be mistaken for a variable.
LABEL = "audit_trigger"


def _unicode_escaped(quoted: str) -> str:
    """``"..."`` or ``'...'`` in PostgreSQL's U& form when it holds a bind-like colon."""
    if not _BIND_LIKE.search(quoted):
        return quoted
    return "U&" + quoted.replace("\\", "\\\\").replace(":", "\\003a")


def quote(name: str) -> str:
    """Quote one identifier (only when PostgreSQL needs it), doubling embedded quotes."""
    return _unicode_escaped(_PREPARER.quote(name))


def qualified(schema: str | None, name: str) -> str:
    return f"{quote(schema)}.{quote(name)}" if schema else quote(name)


def always_quote(name: str) -> str:
    """Quote unconditionally: inside PL/pgSQL more words are reserved (``if``, ``loop``, ...)
    than SQLAlchemy's list of PostgreSQL keywords knows, so the function body quotes every name."""
    return _unicode_escaped(_PREPARER.quote_identifier(name))


def always_qualified(schema: str | None, name: str) -> str:
    return f"{always_quote(schema)}.{always_quote(name)}" if schema else always_quote(name)


def name_text(schema: str | None, name: str) -> str:
    """The quoted, qualified name as text for ``regclass``/``regprocedure`` input: an
    identifier's ``U&`` form is not valid inside a name string (the literal's is)."""
    quoted = _PREPARER.quote_identifier(name)
    return f"{_PREPARER.quote_identifier(schema)}.{quoted}" if schema else quoted


def regclass(schema: str | None, name: str) -> str:
    """A ``regclass`` constant naming a table."""
    return f"{literal(name_text(schema, name))}::pg_catalog.regclass"


def regprocedure(schema: str | None, name: str) -> str:
    """A ``regprocedure`` constant naming a function without arguments."""
    return f"{literal(name_text(schema, name) + '()')}::pg_catalog.regprocedure"


def literal(value: str) -> str:
    """A SQL string literal, rendered by the dialect."""
    assert _LITERAL is not None
    return _unicode_escaped(str(_LITERAL(value)))


@dataclass(frozen=True, slots=True)
class RenderedAudit:
    """The SQL statements that install and remove one table's auditing."""

    function_body: str
    install: tuple[str, ...]
    uninstall: tuple[str, ...]


def resolved(spec: AuditSpec, default_schema: str = FALLBACK_SCHEMA) -> AuditSpec:
    """``spec`` with an explicit schema: its own, else ``default_schema``."""
    return spec if spec.schema else replace(spec, schema=default_schema)


def function_signature(spec: AuditSpec) -> str:
    return f"{qualified(resolved(spec).schema, spec.function)}()"


def function_comment(spec: AuditSpec) -> str:
    return COMMENT_MARKER + resolved(spec).to_json()


def dollar_quote(body: str) -> str:
    """Dollar-quote ``body`` with a tag that does not occur in it."""
    tag, n = "$audit$", 0
    while tag in body:
        n += 1
        tag = f"$audit{n}$"
    return f"{tag}{body}{tag}"


def drop_trigger(schema: str | None, table: str, trigger: str) -> str:
    return (
        f"DROP TRIGGER IF EXISTS {quote(trigger)} ON {qualified(schema or FALLBACK_SCHEMA, table)}"
    )


def drop_function(schema: str | None, function: str) -> str:
    return f"DROP FUNCTION IF EXISTS {qualified(schema or FALLBACK_SCHEMA, function)}()"
