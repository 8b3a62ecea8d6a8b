"""The autogenerate comparator: an adapter from Alembic to :func:`..compare.compare`.

It runs after Alembic's own table comparison, so it can (1) put trigger drops before and
trigger installs after the table operations they depend on, (2) keep ``op.create_table`` free of
this library's ``info`` entries (Column objects that would not even import), and (3) keep audit
tables whose source is gone or no longer audited: history is never dropped by autogenerate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from alembic.autogenerate import comparators
from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from sqlalchemy import MetaData, Table

from ..audit_table import is_audit_table_comment
from ..catalog import default_schema, installed_audits
from ..compare import Change, DropAudit, InstallAudit, ReplaceAudit, compare
from ..ddl import audited_tables
from ..spec import AuditSpec
from .ops import CreateAuditTriggerOp, DropAuditTriggerOp, ReplaceAuditTriggerOp

log = logging.getLogger(__name__)

_INFO_PREFIX = "audit."


def compare_audit(
    autogen_context: AutogenContext, upgrade_ops: ops.UpgradeOps, schemas: Iterable[str | None]
) -> None:
    connection = autogen_context.connection
    if connection is None:  # pragma: no cover - autogenerate always has one
        return
    default = default_schema(connection)
    wanted = {schema or default for schema in schemas}
    declared = [
        spec
        for metadata in _metadatas(autogen_context.metadata)
        for table, spec in audited_tables(metadata)
        if (spec.schema or default) in wanted
        and autogen_context.run_object_filters(table, table.name, "table", False, None)
    ]
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
    changes = compare(declared, installed, default)
    drops = [_operation(c) for c in changes if isinstance(c, DropAudit)]
    others = [_operation(c) for c in changes if not isinstance(c, DropAudit)]
    upgrade_ops.ops[:0] = drops
    upgrade_ops.ops.extend(others)


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


def _clean_table_ops(upgrade_ops: ops.UpgradeOps) -> None:
    kept: list[ops.MigrateOperation] = []
    for operation in upgrade_ops.ops:
        if isinstance(operation, ops.CreateTableOp) and operation.info:
            operation.info = {
                k: v for k, v in operation.info.items() if not str(k).startswith(_INFO_PREFIX)
            }
        if isinstance(operation, ops.DropTableOp) and is_audit_table_comment(
            getattr(operation, "comment", None)
        ):
            log.info(
                "Keeping audit table %s: autogenerate never drops audit history "
                "(write op.drop_table() by hand to drop it)",
                operation.table_name,
            )
            continue
        kept.append(operation)
    upgrade_ops.ops[:] = kept


def register() -> None:
    """Register the comparator once, after Alembic's table comparison, on every Alembic."""
    try:
        from alembic.util import DispatchPriority
    except ImportError:  # Alembic < 1.18: registration order already puts us last
        comparators.dispatch_for("schema")(compare_audit)
    else:
        comparators.dispatch_for("schema", priority=DispatchPriority.LAST)(compare_audit)


__all__ = ["compare_audit", "register"]
