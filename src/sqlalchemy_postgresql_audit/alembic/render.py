"""Render the audit operations as readable Python in a migration script."""

from __future__ import annotations

import pprint
from typing import Any

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext

from .ops import (
    CreateAuditTriggerOp,
    DropAuditTriggerOp,
    ReplaceAuditTriggerOp,
    _AuditOperation,
    spec_arguments,
)

IMPORT = "import sqlalchemy_postgresql_audit.alembic  # noqa: F401  (registers op.*_audit_trigger)"


def _call(autogen_context: AutogenContext, operation: _AuditOperation, **extra: Any) -> str:
    autogen_context.imports.add(IMPORT)
    arguments = {**spec_arguments(operation.spec), **extra}
    lines = [f"op.{operation.name}(", f"    {operation.spec.table!r},"]
    lines += [f"    {key}={_literal(value)}," for key, value in arguments.items()]
    lines.append(")")
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _literal(value: Any) -> str:
    """A Python literal of plain data, wrapped and indented to read well inside the call."""
    text = pprint.pformat(_plain(value), width=88, sort_dicts=False)
    return text.replace("\n", "\n    ")


@renderers.dispatch_for(CreateAuditTriggerOp)
def _render_create(autogen_context: AutogenContext, operation: CreateAuditTriggerOp) -> str:
    return _call(autogen_context, operation)


@renderers.dispatch_for(DropAuditTriggerOp)
def _render_drop(autogen_context: AutogenContext, operation: DropAuditTriggerOp) -> str:
    return _call(autogen_context, operation)


@renderers.dispatch_for(ReplaceAuditTriggerOp)
def _render_replace(autogen_context: AutogenContext, operation: ReplaceAuditTriggerOp) -> str:
    previous = {"table": operation.previous.table, **spec_arguments(operation.previous)}
    return _call(autogen_context, operation, previous=previous)
