"""The autogenerate comparators: adapters from Alembic to ``..install.compare.compare``.

Two functions are registered on Alembic's ``schema`` comparison:

- ``prepare_audit`` runs *before* Alembic's table comparison.  It declares the audit tables
  of every target MetaData (models imported before ``enable`` was called are declared only
  now), so audit tables are compared like any table, and it installs a filter that keeps audit
  history out of the comparison: an audit table whose source is gone or no longer audited, and
  an audit column whose source column was dropped, are kept, and not reported (nor logged by
  Alembic) as removed on every later autogenerate.
- ``compare_audit`` runs *after* it, so it can (1) put trigger drops before and trigger
  installs after the table operations they depend on and (2) keep ``op.create_table`` free of
  this library's ``info`` entries (Column objects that would not even import).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from alembic.autogenerate import comparators
from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from sqlalchemy import Connection, Dialect, LargeBinary, MetaData, Table, text
from sqlalchemy.types import UserDefinedType

from ..declare.audit_table import (
    AUDIT_TABLE_KEY,
    PARTITIONING_KEY,
    Partitioning,
    is_audit_table_comment,
)
from ..declare.declaration import declare_metadata
from ..declare.spec import AuditSpec, capture_column
from ..errors import AuditError
from ..install.catalog import InstalledAudit, default_schema, installed_audits
from ..install.compare import Change, DropAudit, InstallAudit, ReplaceAudit, compare
from ..install.ddl import audited_tables
from ..install.legacy import is_legacy_audit_table, legacy_audits
from ..render.sql import name_text
from .cdc import PublishAuditTableOp, publication_operations
from .key_retype import wrap_key_retypes
from .legacy import convert_timestamps, upgrade_legacy
from .ops import (
    CreateAuditTableOp,
    CreateAuditTriggerOp,
    DropAuditTriggerOp,
    PartitionAuditTableOp,
    RecordAuditBaselineOp,
    ReplaceAuditTriggerOp,
)

log = logging.getLogger(__name__)

_INFO_PREFIX = "audit."


def prepare_audit(
    autogen_context: AutogenContext, upgrade_ops: ops.UpgradeOps, schemas: Iterable[str | None]
) -> None:
    """Before Alembic compares tables: declare audit tables, and keep audit history out."""
    for metadata in _metadatas(autogen_context.metadata):
        declare_metadata(metadata)
    if autogen_context.connection is not None:
        know_pg_lsn(autogen_context.connection.dialect)
    # Alembic has no public way to add an object filter after env.py configured the context;
    # AutogenContext keeps include_object and friends in this list on every Alembic >= 1.13.
    filters: list[Any] = autogen_context._object_filters
    if keep_audit_history not in filters:
        filters.append(keep_audit_history)


class PgLsn(UserDefinedType[str]):
    """PostgreSQL's ``pg_lsn`` (the CDC progress table's positions), which SQLAlchemy does not
    know: reflecting that table would warn at every autogenerate."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "pg_lsn"


def know_pg_lsn(dialect: Dialect) -> None:
    """Teach this engine's dialect (not every PostgreSQL dialect) to reflect ``pg_lsn``."""
    names: dict[str, Any] = getattr(dialect, "ischema_names", {})
    if "pg_lsn" not in names:
        dialect.ischema_names = {**names, "pg_lsn": PgLsn}  # type: ignore[attr-defined]


def keep_audit_history(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """An ``include_object`` filter: never compare what exists only as kept audit history.

    A reflected table or column with nothing to compare it to is one Alembic would drop.  When
    it is an audit table (or a column of one), recognised by the table comment this library
    writes or by the shape of a 0.5.x audit table (which has none), it is kept history, not
    drift: dropping it is an explicit, hand-written choice (``op.drop_table`` /
    ``op.drop_column``).
    """
    if not reflected or compare_to is not None or type_ not in ("table", "column"):
        return True
    table = obj if type_ == "table" else obj.table
    if not is_audit_table_comment(getattr(table, "comment", None)) and not is_legacy_audit_table(
        table
    ):
        return True
    log.debug("Keeping audit history %s %s", type_, name)
    return False


def compare_audit(
    autogen_context: AutogenContext, upgrade_ops: ops.UpgradeOps, schemas: Iterable[str | None]
) -> None:
    connection = autogen_context.connection
    if connection is None:  # pragma: no cover - autogenerate always has one
        return
    default = default_schema(connection)
    wanted = {schema or default for schema in schemas}
    declared_pairs = [
        (table, spec)
        for metadata in _metadatas(autogen_context.metadata)
        for table, spec in audited_tables(metadata)
        if (spec.schema or default) in wanted
        and autogen_context.run_object_filters(table, table.name, "table", False, None)
    ]
    declared = [spec for _, spec in declared_pairs]
    declared_tables = {
        (table.schema or default, table.name): table
        for metadata in _metadatas(autogen_context.metadata)
        for table in metadata.tables.values()
    }
    installed = [
        item
        for item in installed_audits(connection, wanted)
        if item.spec is None
        or _installed_included(autogen_context, item.spec, declared_tables, default)
    ]
    _clean_table_ops(upgrade_ops)
    wrap_key_retypes(upgrade_ops, _key_trigger_specs(declared, installed, default), default)
    _refuse_retyping_recorded_values_to_hash(upgrade_ops, declared, default)
    convert_timestamps(autogen_context, upgrade_ops, declared_tables, default)
    changes = upgrade_legacy(
        compare(declared, installed, default),
        legacy_audits(connection, declared_pairs, default),
        default,
    )
    for change in changes:
        if isinstance(change, ReplaceAudit):
            _log_kept_columns(change)
    drops = [_operation(c) for c in changes if isinstance(c, DropAudit)]
    others = [_operation(c) for c in changes if not isinstance(c, DropAudit)]
    others += _baselines(changes, upgrade_ops)
    others += _conversions(connection, declared_pairs)
    others += [
        operation
        for metadata in _metadatas(autogen_context.metadata)
        for operation in publication_operations(connection, metadata, default)
    ]
    upgrade_ops.ops[:0] = _published_before_dropped(drops, others, default)
    upgrade_ops.ops.extend(others)


def _published_before_dropped(
    drops: list[ops.MigrateOperation], others: list[ops.MigrateOperation], default: str
) -> list[ops.MigrateOperation]:
    """``drops`` with each table switched to CDC published (taken out of ``others``) just
    before its trigger is dropped.  The downgrade runs them in reverse: it installs the trigger
    while the table is still in the CDC publication, which is how installing tells a table
    leaving CDC (one continuous trail) from a trail that restarts (``R`` marker, baseline)."""
    publishing = {
        (operation.schema or default, operation.table_name): operation
        for operation in others
        if isinstance(operation, PublishAuditTableOp) and operation.replaces_identity is None
    }
    ordered: list[ops.MigrateOperation] = []
    for operation in drops:
        if isinstance(operation, DropAuditTriggerOp):
            published = publishing.get((operation.spec.schema or default, operation.spec.table))
            if published is not None:
                others.remove(published)
                ordered.append(published)
        ordered.append(operation)
    return ordered


def _key_trigger_specs(
    declared: list[AuditSpec], installed: list[InstalledAudit], default: str
) -> dict[tuple[str, str], AuditSpec]:
    """Per table, the spec naming the key trigger a key retype must go around: the installed
    one (the trigger that is there), in the form the table is declared in, else the declared."""
    found = {(spec.schema or default, spec.table): spec for spec in declared}
    for item in installed:
        spec = item.spec
        if spec is None or spec.key_trigger is None:
            continue
        key = (spec.schema or default, spec.table)
        as_declared = found.get(key)
        if as_declared is not None and as_declared.schema is None and spec.schema == default:
            spec = replace(spec, schema=None)
        found[key] = spec
    return found


def _refuse_retyping_recorded_values_to_hash(
    upgrade_ops: ops.UpgradeOps, declared: list[AuditSpec], default: str
) -> None:
    """Raise where Alembic would retype an audit column that holds recorded values to the
    ``bytea`` of ``redact: hash``: whatever ``USING`` the migration adds, the values recorded
    in plain text would stay (``email::bytea`` keeps them, readable as their bytes, and reads
    as a digest of a key version that does not exist), so no revision is better than that one.
    """
    hashed = {(spec.schema or default, spec.audit_table): spec for spec in declared if spec.hashes}
    for table_ops in upgrade_ops.ops:
        if not isinstance(table_ops, ops.ModifyTableOps):
            continue
        spec = hashed.get((table_ops.schema or default, table_ops.table_name))
        if spec is None:
            continue
        for operation in table_ops.ops:
            if (
                isinstance(operation, ops.AlterColumnOp)
                and operation.modify_type is not None
                and spec.redaction(operation.column_name) == "hash"
                and not isinstance(operation.existing_type, LargeBinary)
            ):
                raise AuditError(
                    f"table {spec.table!r}: redact makes column {operation.column_name!r} "
                    f"'hash', and audit table {spec.audit_table!r} already records its values "
                    "as they were; autogenerate will not retype that column, since a USING "
                    "cast keeps the plain values. Write that step by hand in its own revision: "
                    "erase or hash the recorded values, then retype the column to bytea; or "
                    "redact the column with 'mask' or 'omit' instead (docs: Security, "
                    "redaction at write time)"
                )


def _installed_included(
    autogen_context: AutogenContext,
    spec: AuditSpec,
    declared_tables: dict[tuple[str, str], Table],
    default: str,
) -> bool:
    """Whether the user's include_name / include_object filters let us touch this table."""
    if not autogen_context.run_name_filters(spec.table, "table", {"schema_name": spec.schema}):
        return False
    declared = declared_tables.get((spec.schema or default, spec.table))
    if declared is not None:
        return autogen_context.run_object_filters(declared, spec.table, "table", False, None)
    reflected = Table(spec.table, MetaData(), schema=spec.schema)
    return autogen_context.run_object_filters(reflected, spec.table, "table", True, None)


def _metadatas(metadata: Any) -> list[MetaData]:
    if metadata is None:
        return []
    return list(metadata) if isinstance(metadata, (list, tuple)) else [metadata]


def _operation(change: Change) -> ops.MigrateOperation:
    if isinstance(change, InstallAudit):
        return CreateAuditTriggerOp(change.spec)
    if isinstance(change, ReplaceAudit):
        return ReplaceAuditTriggerOp(change.spec, change.previous)
    return DropAuditTriggerOp(change.spec)


def _baselines(changes: list[Change], upgrade_ops: ops.UpgradeOps) -> list[ops.MigrateOperation]:
    """A baseline for each table whose auditing starts in this migration but that is not
    created by it: it exists already, so it may hold rows that would have no first version."""
    created = {
        (operation.schema, operation.table_name)
        for operation in upgrade_ops.ops
        if isinstance(operation, ops.CreateTableOp)
    }
    return [
        RecordAuditBaselineOp(change.spec)
        for change in changes
        if isinstance(change, InstallAudit)
        and change.spec.key_columns
        and (change.spec.schema, change.spec.table) not in created
    ]


#: Which of the given audit tables exist unpartitioned (``relkind`` ``r``).
_UNPARTITIONED = text(
    "SELECT name FROM unnest(CAST(:names AS text[])) AS wanted(name) "
    "JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(wanted.name) "
    "WHERE c.relkind = 'r'"
)


def _conversions(
    connection: Connection, declared: list[tuple[Table, AuditSpec]]
) -> list[ops.MigrateOperation]:
    """A conversion for each audit table declared partitioned that exists unpartitioned."""
    wanted: dict[str, tuple[AuditSpec, Partitioning]] = {}
    for table, spec in declared:
        partitioning = table.info[AUDIT_TABLE_KEY].info.get(PARTITIONING_KEY)
        if isinstance(partitioning, Partitioning):
            wanted[name_text(spec.schema, spec.audit_table)] = (spec, partitioning)
    if not wanted:
        return []
    found = connection.execute(_UNPARTITIONED, {"names": sorted(wanted)}).scalars()
    return [
        PartitionAuditTableOp(wanted[name][0], wanted[name][1].interval) for name in sorted(found)
    ]


def _log_kept_columns(change: ReplaceAudit) -> None:
    """Say once, when a replace stops filling them, which audit columns keep their history."""
    filled = _filled_columns(change.spec)
    for column in _filled_columns(change.previous):
        if column not in filled and change.previous.audit_table == change.spec.audit_table:
            log.info(
                "Keeping column %r of audit table %r: no longer filled, its history is kept "
                "(write op.drop_column(%r, %r) by hand to drop it)",
                column,
                change.spec.audit_table,
                change.spec.audit_table,
                column,
            )


def _filled_columns(spec: AuditSpec) -> list[str]:
    """The audit table's columns that the trigger fills from the source or the session."""
    captures = [capture_column(capture) for capture in spec.captures]
    return [*captures, *(setting.column for setting in spec.settings), *spec.columns]


def _clean_table_ops(upgrade_ops: ops.UpgradeOps) -> None:
    """Drop this library's ``info`` from ``create_table``, and make creating an audit table one
    whose downgrade keeps it (and its history)."""
    for position, operation in enumerate(upgrade_ops.ops):
        if isinstance(operation, ops.CreateTableOp) and operation.info:
            operation.info = {
                k: v for k, v in operation.info.items() if not str(k).startswith(_INFO_PREFIX)
            }
        if isinstance(operation, ops.CreateTableOp) and is_audit_table_comment(operation.comment):
            upgrade_ops.ops[position] = CreateAuditTableOp.keeping_history(operation)


def register() -> None:
    """Register both comparators once: one before, one after Alembic's table comparison.

    Alembic >= 1.18 orders comparators by priority.  Older ones keep one list per target and
    run it in order; Alembic's own table comparison is in it from the import of
    ``alembic.autogenerate``, so appending runs last, and inserting at the front runs first.
    """
    try:
        from alembic.util import DispatchPriority
    except ImportError:
        comparators.dispatch_for("schema")(compare_audit)
        comparators._registry[("schema", "default")].insert(0, prepare_audit)
    else:
        comparators.dispatch_for("schema", priority=DispatchPriority.FIRST)(prepare_audit)
        comparators.dispatch_for("schema", priority=DispatchPriority.LAST)(compare_audit)


__all__ = ["compare_audit", "keep_audit_history", "prepare_audit", "register"]
