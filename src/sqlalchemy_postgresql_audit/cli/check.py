"""``check``: is the database audited as the models declare?  For CI pipelines.

It runs the pure comparison Alembic's autogenerate runs (``..install.compare.compare`` of the
declared specs with ``..install.catalog.installed_audits``), reports each audited table as ``ok``,
``missing`` (not installed), ``outdated`` (installed, not as declared), ``disabled`` (a trigger
does not fire), ``no-audit-table`` (writes to it fail) or ``extra`` (installed, not declared),
and exits 1 on any of them.

Besides the function and triggers it watches every other object the library installs or
governs: the append-only guard, the audit table's indexes (the history index), its owners,
rules and row-level security, source columns neither mirrored nor excluded, and once
``grant`` ran, the privileges of the roles it named; for a partitioned audit table, how far
ahead partitions exist and the rows waiting in its DEFAULT partition (``gap`` when the next
write has no partition), and any table made to look like one of its kept partitions
(``unexpected``); for a ``redact: hash`` column, recorded values that are not digests of
a key version the key table holds; for a CDC table, its publication and slot, the
publication's options, its replica identity, its source columns and its partitions' TRUNCATE
guards, and a slot left behind by a metadata that no longer declares a CDC table (it
holds WAL for ever: ``..cdc.status.leftover_slot``).  On design 1's target of
change-data-capture (a subscription named after the metadata's slot reads its publication), a
CDC table is checked as the consumer installs it there: the replica's row-level capture, whose
triggers must fire ``ALWAYS`` (``..install.cdc_target``), and a trigger-mode table of the same
metadata that is not there is ``on-source`` (audited on the source; not drift).  ``--json``
lists each object with its state, so an operator sees what is watched.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import asdict, dataclass, replace

import sqlalchemy as sa

from ..cdc.status import leftover_slot
from ..declare.audit_table import AUDIT_TABLE_KEY, PARTITIONING_KEY, Partitioning
from ..declare.cdc import cdc_names
from ..declare.spec import AuditSpec
from ..install import leaving
from ..install.catalog import (
    IndexState,
    InstalledAudit,
    default_schema,
    grants_record,
    installed_audits,
    privileges,
    table_indexes,
)
from ..install.cdc_target import not_always, not_applied, subscriptions
from ..install.compare import (
    DISABLED,
    OUTDATED,
    DropAudit,
    InstallAudit,
    Watched,
    compare,
    not_installed,
    watched,
)
from ..install.ddl import resolve_spec
from ..install.exposure import exposure, replica_setters
from ..install.publication import captured_states, context_state, unpublished
from ..install.watch import exposure_states, index_states, privilege_states, replica_states
from ..lifecycle.coverage import GAP, coverage, coverage_watched, registration_watched
from ..lifecycle.holds import holds_watched
from ..lifecycle.partition_catalog import look_alikes_watched
from ..lifecycle.recorded_digests import digest_states
from ..render.sql import name_text
from .base import EXIT_DRIFT, EXIT_OK, Command, add_target_argument, add_url_argument
from .database import begin, create_engine, owner_rights
from .target import audit_table_name, audited, load_metadata
from .ui import UI

OK = "ok"
#: A trigger-mode table not on design 1's target: only the CDC tables are copied there, so it
#: is audited on the source and not checked here (not drift).
ON_SOURCE = "on-source"


@dataclass(frozen=True, slots=True, kw_only=True)
class TableState:
    schema: str
    table: str
    audit_table: str
    status: str
    details: tuple[str, ...] = ()
    objects: tuple[Watched, ...] = ()


def table_states(
    connection: sa.Connection, pairs: list[tuple[sa.Table, AuditSpec]]
) -> list[TableState]:
    """One state per declared audited table, then one per installed but undeclared table."""
    default = default_schema(connection)
    applied_here = _applied_here(connection, pairs)
    target_of = {source.metadata for source in applied_here}
    declared = [
        resolve_spec(connection, spec.capture_spec if source in applied_here else spec)
        for source, spec in pairs
    ]
    schemas = {spec.schema or default for spec in declared} | {default}
    installed = installed_audits(connection, schemas)
    changes = compare(declared, installed, default)
    missing = {(c.spec.schema, c.spec.table) for c in changes if isinstance(c, InstallAudit)}
    inspector = sa.inspect(connection)
    tables = {(s, name) for s in schemas for name in inspector.get_table_names(schema=s)}
    states = []
    for (source, _), spec in zip(pairs, declared, strict=True):
        schema = spec.schema or default
        if spec.cdc:
            states.append(_captured(connection, source, spec, schema))
            continue
        if source.metadata in target_of and (schema, spec.table) not in tables:
            states.append(_on_source(spec, schema))
            continue
        objects: list[Watched] = []
        if spec.key in missing:
            objects = not_installed(spec, default)
        elif (schema, spec.table) in tables:
            objects = watched(spec, _find(spec, installed, default), default)
            objects += _double_capture(connection, source, schema, spec.table)
        if (schema, spec.audit_table) in tables:
            objects += _governed(connection, source, spec, schema)
        if (schema, spec.table) not in tables:
            status, details = "missing", ["table not in the database"]
        elif spec.key in missing:
            status, details = "missing", ["no audit function or triggers"]
        else:
            status, details = _status(objects)
        if (schema, spec.audit_table) not in tables:
            details.append(f"audit table {spec.audit_table} not in the database")
            if status != "missing":  # triggers that fire into nothing: every write fails
                status = "no-audit-table"
        if source in applied_here:
            status, details, objects = _as_target(
                connection, spec, schema, applied_here[source], status, details, objects
            )
        states.append(
            TableState(
                schema=schema,
                table=spec.table,
                audit_table=spec.audit_table,
                status=status,
                details=tuple(details),
                objects=tuple(objects),
            )
        )
    for change in changes:
        if isinstance(change, DropAudit):
            states.append(
                TableState(
                    schema=change.spec.schema or default,
                    table=change.spec.table,
                    audit_table=change.spec.audit_table,
                    status="extra",
                    details=(f"installed (function {change.spec.function}) but not declared",),
                )
            )
    return states


def _on_source(spec: AuditSpec, schema: str) -> TableState:
    """A trigger-mode table of a metadata this database is design 1's target for, absent here
    as it should be: its trail is written on the source by its triggers."""
    return TableState(
        schema=schema,
        table=spec.table,
        audit_table=spec.audit_table,
        status=ON_SOURCE,
        details=(
            "not on this target: trigger mode, audited on the source (check the source "
            "database); only CDC tables are copied to design 1's target",
        ),
    )


def _applied_here(
    connection: sa.Connection, pairs: list[tuple[sa.Table, AuditSpec]]
) -> dict[sa.Table, str]:
    """The CDC tables this database is design 1's target for: ``{table: subscription}``, where
    a subscription named after the metadata's slot reads its CDC publication."""
    found = subscriptions(connection)
    here = {}
    for source, spec in pairs:
        if not spec.cdc:
            continue
        names = cdc_names(source.metadata)
        if names.publication in found.get(names.slot, ()):
            here[source] = names.slot
    return here


def _as_target(
    connection: sa.Connection,
    capture: AuditSpec,
    schema: str,
    subscription: str,
    status: str,
    details: list[str],
    objects: list[Watched],
) -> tuple[str, list[str], list[Watched]]:
    """A CDC table's replica on design 1's target, checked as the consumer installs it: its
    capture triggers must also fire ``ALWAYS``, for the changes the subscription applies."""
    if status == "missing":
        return status, [*details, "the CDC consumer creates it on its next run (cdc run)"], objects
    qualified = name_text(schema, capture.table)
    reasons = not_applied(connection, subscription, qualified)
    reasons += not_always(connection, capture, qualified)
    state = Watched("capture", f"capture of {capture.table}", OUTDATED if reasons else OK)
    objects = [*objects, replace(state, reasons=tuple(reasons))]
    if reasons:
        return ("outdated" if status == OK else status), [*details, *reasons], objects
    if status != OK:
        return status, details, objects
    target = (
        f"CDC target: subscription {subscription!r} applies this table's changes here and its "
        "ALWAYS triggers write the trail (check the source database with check, and this "
        "subscription with cdc status)"
    )
    return status, [target, *details], objects


def _captured(
    connection: sa.Connection, source: sa.Table, spec: AuditSpec, schema: str
) -> TableState:
    """A CDC table is audited when it is in its publication and the slot holds its changes,
    and is current when nothing else lets a change go uncaptured (``captured_states``)."""
    names = cdc_names(source.metadata)
    missing = unpublished(connection, names.publication, names.slot, [replace(spec, schema=schema)])
    objects: list[Watched] = []
    if missing:
        status, details = (
            "missing",
            [
                f"not captured: not in publication {names.publication!r}, or slot {names.slot!r} "
                "is missing or lost (install again; see cdc status)"
            ],
        )
    else:
        objects = captured_states(connection, names.publication, source, spec, schema)
        objects.append(context_state(connection, names))
        status, details = _status(objects)
        if status == OK:
            details = [f"captured by change-data-capture (publication {names.publication!r})"]
    return TableState(
        schema=schema,
        table=spec.table,
        audit_table=spec.audit_table,
        status=status,
        details=tuple(details),
        objects=tuple(objects),
    )


def _double_capture(
    connection: sa.Connection, source: sa.Table, schema: str, table: str
) -> list[Watched]:
    """A trigger-mode table still in its metadata's CDC publication (``install.leaving``)."""
    reason = leaving.double_captures(connection, source.metadata).get((schema, table))
    return [Watched("capture", f"capture of {table}", OUTDATED, (reason,))] if reason else []


def _find(spec: AuditSpec, installed: list[InstalledAudit], default: str) -> InstalledAudit:
    """The installation ``compare`` matched to ``spec``: by function name, else by table."""
    schema = spec.schema or default
    for item in installed:
        if (item.schema, item.function) == (schema, spec.function):
            return item
    return next(
        item
        for item in installed
        if item.spec is not None
        and (item.spec.schema or default, item.spec.table) == (schema, spec.table)
    )


def _governed(
    connection: sa.Connection, source: sa.Table, spec: AuditSpec, schema: str
) -> list[Watched]:
    """The audit table's declared indexes, its owners, rules and row-level security, the
    source's undeclared columns, and the privileges the grant step set, if it ran."""
    audit_table = source.info[AUDIT_TABLE_KEY]
    expected = {
        str(index.name): IndexState(
            name=str(index.name),
            columns=tuple(column.name for column in index.columns),
            unique=bool(index.unique),
        )
        for index in audit_table.indexes
    }
    spec = spec if spec.schema else replace(spec, schema=schema)
    record = grants_record(connection, spec)
    roles = (*record.writers, *record.readers) if record else ()
    observed = {role: privileges(connection, spec, role) for role in roles}
    partitioned = isinstance(audit_table.info.get(PARTITIONING_KEY), Partitioning)
    found = coverage(connection, schema, spec.audit_table) if partitioned else None
    return [
        *index_states(expected, table_indexes(connection, schema, spec.audit_table)),
        *privilege_states(spec, record, observed),
        *replica_states(replica_setters(connection, record.writers) if record else ()),
        *exposure_states(spec, exposure(connection, spec)),
        *([coverage_watched(spec.audit_table, found)] if found else []),
        *([holds_watched(connection, schema, spec.audit_table)] if found else []),
        *(look_alikes_watched(connection, schema, spec.audit_table) if found else []),
        *registration_watched(connection, schema, spec.audit_table),
        *digest_states(connection, spec, schema),
    ]


def _status(objects: list[Watched]) -> tuple[str, list[str]]:
    drifted = [item for item in objects if item.state != OK]
    # How far ahead partitions exist, and the holds, are worth reading even when nothing is
    # wrong; a hold, even when something is.
    held = [r for i in objects if i.kind == "holds" and i.state == OK for r in i.reasons]
    if not drifted:
        ahead = [r for item in objects if item.kind == "partitions" for r in item.reasons]
        return OK, ahead + held
    states = {item.state for item in drifted}
    status = states.pop() if states in ({DISABLED}, {GAP}) else "outdated"
    return status, [reason for item in drifted for reason in item.reasons] + held


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    add_url_argument(parser)


def _check(args: argparse.Namespace, ui: UI) -> int:
    # No audited table at all is an error, not a pass: it usually means the module holding the
    # base class does not import the modules that define the models.
    metadata = load_metadata(args.target)
    pairs = audited(metadata, args.target)
    engine = create_engine(args.url)
    audit_tables = [audit_table_name(table) for table, _ in pairs]
    try:
        with owner_rights(engine, "check", audit_tables), begin(engine) as connection:
            states = table_states(connection, pairs)
            leftover = leftover_slot(connection, metadata)
            unaudited = leaving.unaudited_captures(connection, metadata)
    finally:
        engine.dispose()
    counts = Counter(state.status for state in states)
    problems = [leftover, *unaudited] if leftover else unaudited
    in_sync = set(counts) <= {OK, ON_SOURCE} and not problems
    if ui.json:
        ui.emit_json(
            {
                "in_sync": in_sync,
                "summary": dict(sorted(counts.items())),
                "tables": [asdict(state) for state in states],
                "problems": problems,
            }
        )
        return EXIT_OK if in_sync else EXIT_DRIFT
    ui.table(
        ("table", "audit table", "status", "details"),
        [
            (f"{s.schema}.{s.table}", f"{s.schema}.{s.audit_table}", s.status, "; ".join(s.details))
            for s in states
        ],
        styles=["ok" if s.status in (OK, ON_SOURCE) else "drift" for s in states],
    )
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    ui.line(f"{len(states)} tables: {summary}", "ok" if in_sync else "drift")
    for problem in problems:
        ui.warn(problem)
    return EXIT_OK if in_sync else EXIT_DRIFT


COMMAND = Command(
    name="check",
    help="compare declared auditing with the database; exit 1 on drift (for CI)",
    add_arguments=_arguments,
    run=_check,
)
