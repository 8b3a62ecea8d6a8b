"""Run rendered audit SQL: installing and removing functions and triggers.

:class:`AuditDDL` wraps one rendered statement so that it executes through SQLAlchemy (and
Alembic, online or offline) like any DDL: for ``format``/``pyformat`` drivers such as psycopg2
its ``%`` signs are escaped exactly as SQLAlchemy escapes its own DDL text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.ddl import ExecutableDDLElement

from .audit_table import AUDIT_TABLE_KEY, SPEC_KEY
from .render import render
from .spec import AuditSpec


class AuditDDL(ExecutableDDLElement):
    """One statement of rendered audit SQL."""

    inherit_cache = False

    def __init__(self, sql: str) -> None:
        self.sql = sql


@compiles(AuditDDL)
def _compile_audit_ddl(element: AuditDDL, compiler: DDLCompiler, **kw: Any) -> str:
    escaped: str = compiler.sql_compiler.post_process_text(element.sql)  # type: ignore[no-untyped-call]
    return escaped


def audited_tables(metadata: MetaData) -> Iterator[tuple[Table, AuditSpec]]:
    """The audited tables of ``metadata`` with their specs, in a stable order."""
    for table in metadata.sorted_tables:
        spec = table.info.get(SPEC_KEY)
        if isinstance(spec, AuditSpec):
            yield table, spec


def resolve_spec(bind: Connection | None, spec: AuditSpec) -> AuditSpec:
    """``spec`` with the schema its table really lives in, as the installed form names it.

    Contract for the other modules: every statement that installs, replaces or drops auditing is
    rendered from a resolved spec.  Without a connection (scripts, offline migrations) the schema
    stays as declared.
    """
    return spec


def install_statements(specs: Iterable[AuditSpec]) -> list[str]:
    return [sql for spec in specs for sql in render(spec).install]


def uninstall_statements(specs: Iterable[AuditSpec]) -> list[str]:
    return [sql for spec in specs for sql in render(spec).uninstall]


def execute_statements(bind: Connection | Engine, statements: Iterable[str]) -> None:
    """Run ``statements`` in one transaction (the caller's, when ``bind`` is a Connection)."""
    if isinstance(bind, Engine):
        with bind.begin() as connection:
            execute_statements(connection, statements)
        return
    for sql in statements:
        bind.execute(AuditDDL(sql))


def as_script(statements: Iterable[str]) -> str:
    return "".join(f"{sql};\n\n" for sql in statements)


def install_audit_triggers(
    metadata: MetaData, bind: Connection | Engine | None = None
) -> str | None:
    """Install (or replace) the function and triggers of every audited table of ``metadata``.

    Idempotent.  Without ``bind``, returns the SQL script instead of running it.
    """
    statements = install_statements(spec for _, spec in audited_tables(metadata))
    if bind is None:
        return as_script(statements)
    execute_statements(bind, statements)
    return None


def uninstall_audit_triggers(
    metadata: MetaData, bind: Connection | Engine | None = None
) -> str | None:
    """Remove the triggers and functions of every audited table; audit tables are kept.

    Idempotent.  Without ``bind``, returns the SQL script instead of running it.
    """
    statements = uninstall_statements(spec for _, spec in audited_tables(metadata))
    if bind is None:
        return as_script(statements)
    execute_statements(bind, statements)
    return None


def after_metadata_create(
    metadata: MetaData, connection: Connection, tables: Iterable[Table] = (), **kw: Any
) -> None:
    """``create_all``: install auditing for each audited pair it created a table of."""
    created = set(tables)
    specs = [
        spec
        for source, spec in audited_tables(metadata)
        if source in created or source.info.get(AUDIT_TABLE_KEY) in created
    ]
    execute_statements(connection, install_statements(specs))


def before_metadata_drop(
    metadata: MetaData, connection: Connection, tables: Iterable[Table] = (), **kw: Any
) -> None:
    """``drop_all``: remove triggers and functions of the audited tables it drops.

    Dropping only an audit table leaves the triggers in place, so writes then fail instead of
    going unaudited.
    """
    dropped = set(tables)
    specs = [spec for source, spec in audited_tables(metadata) if source in dropped]
    execute_statements(connection, uninstall_statements(specs))
