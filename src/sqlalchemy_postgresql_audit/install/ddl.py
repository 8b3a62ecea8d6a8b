"""Run rendered audit SQL: installing and removing functions and triggers.

``AuditDDL`` wraps one rendered statement so that it executes through SQLAlchemy (and
Alembic, online or offline) like any DDL: for ``format``/``pyformat`` drivers such as psycopg2
its ``%`` signs are escaped exactly as SQLAlchemy escapes its own DDL text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table, inspect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.ddl import ExecutableDDLElement

from ..declare.audit_table import AUDIT_TABLE_KEY, SPEC_KEY
from ..declare.declaration import declare_metadata
from ..declare.spec import AuditSpec
from ..render import render
from . import leaving, publication
from .catalog import default_schema
from .leftovers import leftover_statements
from .resolve import check_audit_tables, resolve_specs
from .translated import refuse_translated


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
    """The audited tables of ``metadata`` with their specs, in a stable order.

    Declares what is still undeclared first (``..declare.declaration.declare_metadata``), so every
    caller sees every table whose ``info`` asks for auditing.
    """
    declare_metadata(metadata)
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
    return resolve_specs(bind, [spec])[0]


def install_statements(specs: Iterable[AuditSpec]) -> list[str]:
    return [sql for spec in specs for sql in render(spec).install]


def uninstall_statements(specs: Iterable[AuditSpec]) -> list[str]:
    return [sql for spec in specs for sql in render(spec).uninstall]


def execute_statements(bind: Connection | Engine, statements: Iterable[str]) -> None:
    """Run ``statements`` in one transaction (the caller's, when ``bind`` is a Connection)."""
    with _connection(bind) as connection:
        for sql in statements:
            connection.execute(AuditDDL(sql))


@contextmanager
def _connection(bind: Connection | Engine) -> Iterator[Connection]:
    """``bind`` itself (the caller's transaction), or one transaction on the Engine."""
    if isinstance(bind, Engine):
        with bind.begin() as connection:
            yield connection
    else:
        yield bind


def as_script(statements: Iterable[str]) -> str:
    return "".join(f"{sql};\n\n" for sql in statements)


def install_audit_triggers(
    metadata: MetaData, bind: Connection | Engine | None = None
) -> str | None:
    """Install (or replace) the function and triggers of every audited table of ``metadata``.

    Idempotent.  Raises ``AuditConfigurationError``, before installing anything, when an
    audit table is missing or lacks a column the function would write.  Without ``bind``,
    returns the SQL script instead of running it.
    """
    pairs = list(audited_tables(metadata))
    if bind is None:
        return as_script(
            [
                *publication.slot_statements(pairs),
                *install_statements(spec for _, spec in pairs),
                *publication.install_statements(pairs),
            ]
        )
    with _connection(bind) as connection:
        install(connection, pairs)
    return None


def install(connection: Connection, pairs: Sequence[tuple[Table, AuditSpec]]) -> None:
    """Resolve, check and install the specs of ``pairs`` on ``connection``, replacing the
    audit triggers that would be left beside them (``.leftovers``: 0.5.x, older declarations).
    A CDC table published here for the first time gets the baseline of the rows it holds
    (``publication.baseline_statements``), as the CLI's ``install`` and a migration record; a
    table that left CDC leaves its publication (``.leaving``), and a publication another
    metadata shares is refused before anything is written."""
    if not pairs:
        return
    refuse_translated(connection, pairs)  # before anything is written
    leaving.refuse_shared_publication(connection, pairs)  # before the slot is made
    publication.prepare(connection, pairs)  # the CDC slot, before anything is written
    resolved = resolve_specs(connection, [spec for _, spec in pairs])
    check_audit_tables(connection, resolved)
    resolved_pairs = [(table, spec) for (table, _), spec in zip(pairs, resolved, strict=True)]
    leftovers = leftover_statements(connection, resolved_pairs, default_schema(connection))
    # read before publishing: which CDC tables this installation publishes first
    baselines = publication.baseline_statements(connection, resolved_pairs)
    execute_statements(
        connection,
        [
            *leftovers,
            *install_statements(resolved),
            *publication.install_statements(resolved_pairs),
        ],
    )
    # before the baselines write to the joins table: not a table another role made first
    publication.refuse_planted(connection, resolved_pairs)
    execute_statements(
        connection,
        [
            *baselines,
            # after the triggers: a table leaving CDC keeps one trail, then leaves
            *leaving.leaving_statements(connection, resolved_pairs),
        ],
    )


def uninstall_audit_triggers(
    metadata: MetaData, bind: Connection | Engine | None = None
) -> str | None:
    """Remove the triggers and functions of every audited table; audit tables are kept.

    Idempotent.  Without ``bind``, returns the SQL script instead of running it.
    """
    pairs = list(audited_tables(metadata))
    specs = [spec for _, spec in pairs]
    if bind is None:
        return as_script([*uninstall_statements(specs), *publication.uninstall_statements(pairs)])
    with _connection(bind) as connection:
        resolved = resolve_specs(connection, specs)
        resolved_pairs = [(table, spec) for (table, _), spec in zip(pairs, resolved, strict=True)]
        execute_statements(
            connection,
            [*uninstall_statements(resolved), *publication.uninstall_statements(resolved_pairs)],
        )
    return None


def before_metadata_create(
    metadata: MetaData, connection: Connection, tables: list[Table] | None = None, **kw: Any
) -> None:
    """``create_all``, before it creates tables: declare what is undeclared, and create the
    audit tables ``create_all`` will not.

    SQLAlchemy computed its list of tables before this hook, so an audit table declared now,
    or left out by ``create_all(tables=[source])``, is created here (if missing) for each
    audited table that is being created or already exists.  Such audit tables are appended to
    ``tables`` (the list the ``after_create`` hook receives too), as tables this run created.
    """
    if tables is None:
        return
    audited = list(audited_tables(metadata))
    refuse_translated(connection, audited)
    leaving.refuse_shared_publication(connection, audited)
    publication.prepare(connection, audited)
    creating = set(tables)
    pairs = [
        (source, source.info[AUDIT_TABLE_KEY])
        for source, _ in audited_tables(metadata)
        if source.info[AUDIT_TABLE_KEY] not in creating
    ]
    existing = _existing(connection, [table for pair in pairs for table in pair])
    for source, audit_table in pairs:
        if audit_table not in existing and (source in creating or source in existing):
            audit_table.create(connection)
            tables.append(audit_table)


def _existing(connection: Connection, tables: Sequence[Table]) -> set[Table]:
    """Which of ``tables`` exist, with one catalog query per schema (translated, as
    ``create_all`` sees them)."""
    if not tables:
        return set()
    inspector = inspect(connection)
    names: dict[str | None, set[str]] = {}
    found: set[Table] = set()
    for table in tables:
        schema = connection.schema_for_object(table)
        if schema not in names:
            names[schema] = set(inspector.get_table_names(schema=schema))
        if table.name in names[schema]:
            found.add(table)
    return found


def after_metadata_create(
    metadata: MetaData, connection: Connection, tables: Iterable[Table] = (), **kw: Any
) -> None:
    """``create_all``: install auditing for each audited pair it created a table of."""
    created = set(tables)
    pairs = [
        (source, spec)
        for source, spec in audited_tables(metadata)
        if source in created or source.info.get(AUDIT_TABLE_KEY) in created
    ]
    install(connection, pairs)


def before_metadata_drop(
    metadata: MetaData, connection: Connection, tables: Iterable[Table] = (), **kw: Any
) -> None:
    """``drop_all``: remove triggers and functions of the audited tables it drops.

    Dropping only an audit table leaves the triggers in place, so writes then fail instead of
    going unaudited.
    """
    dropped = set(tables)
    specs = [spec for source, spec in audited_tables(metadata) if source in dropped]
    execute_statements(connection, uninstall_statements(resolve_specs(connection, specs)))
