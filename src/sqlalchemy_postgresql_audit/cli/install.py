"""``ddl``, ``install`` and ``uninstall``: the audit SQL of a MetaData, as a script or run.

``ddl`` is for teams that migrate with plain SQL files: by default it also creates the audit
tables (``CREATE TABLE IF NOT EXISTS``), so the script makes a database that has the source
tables audited; ``--no-tables`` leaves only functions and triggers.  ``install`` runs the same
in one transaction, table by table so that hundreds of tables show progress.  For a CDC table
(``mode="cdc"``) it installs what ``install_audit_triggers`` does: the slot first (PostgreSQL
makes one only before the transaction writes), then the publication, replica identity and
context table, and the baseline ``install_audit_triggers`` records: for a table published for
the first time, every row and its join (``publication.join_statements``).
"""

from __future__ import annotations

import argparse
from typing import Any

import sqlalchemy as sa

from ..declare.audit_table import AUDIT_TABLE_KEY
from ..declare.cdc import cdc_names
from ..declare.spec import AuditSpec
from ..history import record_install_baseline
from ..install import leaving, publication
from ..install.catalog import default_schema
from ..install.ddl import (
    AuditDDL,
    as_script,
    execute_statements,
    install_statements,
    resolve_spec,
    uninstall_statements,
)
from ..install.leftovers import leftover_statements
from ..install.translated import refuse_translated
from .base import (
    EXIT_OK,
    CliError,
    Command,
    add_table_argument,
    add_target_argument,
    add_url_argument,
)
from .database import begin, create_engine
from .script import tables_script
from .target import audited, load_metadata
from .ui import UI


def audit_table_script(pairs: list[tuple[sa.Table, AuditSpec]]) -> str:
    """``CREATE TABLE IF NOT EXISTS`` and comments of the audit tables of ``pairs``."""
    return tables_script([source.info[AUDIT_TABLE_KEY] for source, _ in pairs], if_not_exists=True)


def _ddl_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    add_table_argument(parser)
    parser.add_argument(
        "--no-tables",
        action="store_true",
        help="only functions and triggers, not the CREATE TABLE of the audit tables",
    )


def _ddl(args: argparse.Namespace, ui: UI) -> int:
    pairs = audited(load_metadata(args.target), args.target, args.table)
    script = "" if args.no_tables else audit_table_script(pairs)
    script += as_script(
        [
            *publication.slot_statements(pairs),
            *install_statements(spec for _, spec in pairs),
            *publication.install_statements(pairs),
        ]
    )
    if ui.json:
        ui.emit_json({"tables": [_name(spec) for _, spec in pairs], "script": script})
    else:
        ui.out.write(script)
    return EXIT_OK


def _install_arguments(parser: argparse.ArgumentParser) -> None:
    _ddl_arguments(parser)
    add_url_argument(parser)


def _install(args: argparse.Namespace, ui: UI) -> int:
    pairs = audited(load_metadata(args.target), args.target, args.table)
    engine = create_engine(args.url)
    try:
        with begin(engine) as connection:
            default = default_schema(connection)
            inspector = sa.inspect(connection)
            absent = [
                _name(spec, default)
                for _, spec in pairs
                if not inspector.has_table(spec.table, spec.schema)
            ]
            if absent:
                raise CliError(
                    f"not in the database: {', '.join(absent)} "
                    "(create the tables first; install audits existing tables)"
                )
            refuse_translated(connection, pairs)
            leaving.refuse_shared_publication(connection, pairs)
            # the CDC slot first: PostgreSQL makes it only before the transaction writes
            publication.prepare(connection, pairs)
            created = []
            without_trail: set[sa.Table] = set()
            given_trail: set[sa.Table] = set()
            for source, spec in pairs:
                audit_table: sa.Table = source.info[AUDIT_TABLE_KEY]
                if inspector.has_table(audit_table.name, audit_table.schema):
                    continue
                name = _name(spec, default, audit_table.name)
                if args.no_tables:
                    without_trail.add(source)
                    failing = "the consumer fails" if spec.cdc else f"writes to {spec.table} fail"
                    ui.warn(f"{name} does not exist: {failing} until it does")
                else:
                    audit_table.create(connection)
                    created.append(name)
                    given_trail.add(source)
            captured = []
            for done, (source, spec) in enumerate(pairs, 1):
                resolved = resolve_spec(connection, spec)
                # 0.5.x triggers, an older declaration's: replaced, never left to audit twice
                leftovers = leftover_statements(connection, [(source, resolved)], default)
                execute_statements(connection, [*leftovers, *install_statements([resolved])])
                if resolved.cdc:
                    captured.append((source, resolved))
                ui.progress(done, len(pairs), "installed")
            # the publication, replica identity and context table of the CDC tables; rows
            # older than the trail get a baseline in the same transaction (the table is locked
            # until it commits), or the decoder could not rebuild their old values.  A table
            # first published gets what install_audit_triggers records: every row and its join
            # (design 1's target holds its subscription there until the replica is seeded).
            # A table whose audit table was just created, or switched from FULL to DEFAULT
            # (the trail may have lost versions meanwhile), gets the rows the trail lacks.
            first = {source for source, _ in publication.first_published(connection, captured)}
            switched = {s for s, _ in publication.switched_to_default(connection, captured)}
            execute_statements(connection, publication.install_statements(captured))
            publication.refuse_planted(connection, captured)  # before the joins are written
            baselines = {
                _name(spec, default): (
                    _record_join(connection, source, spec)
                    if source in first and spec.key_columns
                    else record_install_baseline(connection, source)
                )
                for source, spec in captured
                if source not in without_trail
                and (source in first or source in switched or source in given_trail)
            }
            execute_statements(connection, leaving.declared_statements(connection, pairs))
    finally:
        engine.dispose()
    installed = [_name(spec, default) for _, spec in pairs]
    cdc = _captured(captured, default, baselines)
    if ui.json:
        ui.emit_json({"installed": installed, "created_audit_tables": created, "cdc": cdc})
        return EXIT_OK
    ui.line(f"installed auditing on {_count(installed, 'table')}", "ok")
    if created:
        ui.line(f"created {_count(created, 'audit table')}: {', '.join(created)}")
    for capture in cdc:
        ui.line(
            f"change-data-capture of {', '.join(capture['tables'])}: publication "
            f"{capture['publication']}, slot {capture['slot']}, {capture['baseline_rows']} "
            "existing rows recorded as baseline (the trail is written by 'cdc run')"
        )
    return EXIT_OK


def _record_join(connection: sa.Connection, source: sa.Table, spec: AuditSpec) -> int:
    """The statements ``install_audit_triggers`` runs for a CDC table published for the first
    time (``publication.join_statements``); how many ``B`` versions they recorded."""
    names = cdc_names(source.metadata)
    statements = publication.join_statements(names.context_schema, names.context_table, spec)
    *lock, rows = statements.baseline
    execute_statements(connection, lock)
    count = connection.execute(AuditDDL(rows)).rowcount
    execute_statements(connection, [statements.join])
    return count


def _captured(
    pairs: list[tuple[sa.Table, AuditSpec]], default: str | None, baselines: dict[str, int]
) -> list[dict[str, Any]]:
    """Per slot: the CDC tables ``install`` published, for the report."""
    tables: dict[tuple[str, str], list[str]] = {}
    for source, spec in pairs:
        names = cdc_names(source.metadata)
        tables.setdefault((names.slot, names.publication), []).append(_name(spec, default))
    return [
        {
            "slot": slot,
            "publication": publication_name,
            "tables": names,
            "baseline_rows": sum(baselines.get(name, 0) for name in names),
        }
        for (slot, publication_name), names in tables.items()
    ]


def _uninstall_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    add_table_argument(parser)
    add_url_argument(parser)


def _uninstall(args: argparse.Namespace, ui: UI) -> int:
    pairs = audited(load_metadata(args.target), args.target, args.table)
    engine = create_engine(args.url)
    try:
        with begin(engine) as connection:
            default = default_schema(connection)
            for done, (source, spec) in enumerate(pairs, 1):
                resolved = resolve_spec(connection, spec)
                statements = [
                    *uninstall_statements([resolved]),
                    *publication.uninstall_statements([(source, resolved)]),
                ]
                execute_statements(connection, statements)
                ui.progress(done, len(pairs), "uninstalled")
    finally:
        engine.dispose()
    removed = [_name(spec, default) for _, spec in pairs]
    if ui.json:
        ui.emit_json({"uninstalled": removed})
    else:
        ui.line(f"removed auditing from {_count(removed, 'table')}; audit tables are kept")
    return EXIT_OK


def _name(spec: AuditSpec, default: str | None = None, table: str | None = None) -> str:
    schema = spec.schema or default
    name = table or spec.table
    return f"{schema}.{name}" if schema else name


def _count(items: list[str], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


DDL = Command(
    name="ddl",
    help="print the SQL that audits MODULE:METADATA (for plain-SQL migrations)",
    add_arguments=_ddl_arguments,
    run=_ddl,
)
INSTALL = Command(
    name="install",
    help="create missing audit tables and install functions and triggers (CDC tables: "
    "publication, slot and context table)",
    add_arguments=_install_arguments,
    run=_install,
)
UNINSTALL = Command(
    name="uninstall",
    help="remove functions and triggers; audit tables and their history are kept",
    add_arguments=_uninstall_arguments,
    run=_uninstall,
)
