"""Render the audit operations as readable Python in a migration script.

A replace is what reviewers read most (every column change makes one), so it says what changed:
a comment line above it (``# audit orders: columns +total``), the new spec in full, and
``previous=`` holding only the arguments the installed spec had differently.  Each distinct spec
is written once in the upgrade and once in the downgrade, and the migration stays exact.
"""

from __future__ import annotations

import pprint
from dataclasses import asdict
from typing import Any

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext

from ..install.legacy import LEGACY_TEMPLATE
from .ops import (
    CreateAuditTriggerOp,
    DropAuditTriggerOp,
    KeepAuditBaselineOp,
    KeepAuditTableOp,
    PartitionAuditTableOp,
    RecordAuditBaselineOp,
    ReplaceAuditTriggerOp,
    _AuditOperation,
    previous_arguments,
    spec_arguments,
)

#: The one import a revision needs for every ``op.*`` this package registers (one line, however
#: many kinds of operation the revision holds).
IMPORT = "import sqlalchemy_postgresql_audit.alembic  # noqa: F401  (registers the audit op.*)"


def _call(
    autogen_context: AutogenContext,
    operation: _AuditOperation,
    comment: str | None = None,
    **extra: Any,
) -> str:
    autogen_context.imports.add(IMPORT)
    arguments = {**spec_arguments(operation.spec), **extra}
    lines = [] if comment is None else [comment]
    lines += [f"op.{operation.name}(", f"    {operation.spec.table!r},"]
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


@renderers.dispatch_for(RecordAuditBaselineOp)
def _render_baseline(autogen_context: AutogenContext, operation: RecordAuditBaselineOp) -> str:
    comment = (
        f"# audit {operation.spec.table}: the table may already hold rows; record them as its "
        "baseline (B versions)"
    )
    return _call(autogen_context, operation, comment)


@renderers.dispatch_for(KeepAuditBaselineOp)
def _render_keep_baseline(autogen_context: AutogenContext, operation: KeepAuditBaselineOp) -> str:
    return f"# audit {operation.spec.table}: its baseline versions are history and are kept"


@renderers.dispatch_for(KeepAuditTableOp)
def _render_keep_table(autogen_context: AutogenContext, operation: KeepAuditTableOp) -> str:
    name = operation.table_name
    if operation.schema:
        name = f"{operation.schema}.{name}"
    return (
        f"# audit: {name} holds the recorded history and is kept "
        f"(op.drop_table({operation.table_name!r}) deletes it, if that is what you want)"
    )


@renderers.dispatch_for(CreateAuditTriggerOp)
def _render_create(autogen_context: AutogenContext, operation: CreateAuditTriggerOp) -> str:
    return _call(autogen_context, operation)


@renderers.dispatch_for(PartitionAuditTableOp)
def _render_partition(autogen_context: AutogenContext, operation: PartitionAuditTableOp) -> str:
    """Also renders ``UnpartitionAuditTableOp``, a subclass (Alembic dispatches by MRO)."""
    comment = (
        f"# audit {operation.spec.table}: its audit table holds history; convert it without "
        "copying rows (the downgrade keeps every row)"
    )
    return _call(autogen_context, operation, comment, interval=operation.interval)


@renderers.dispatch_for(DropAuditTriggerOp)
def _render_drop(autogen_context: AutogenContext, operation: DropAuditTriggerOp) -> str:
    return _call(autogen_context, operation)


@renderers.dispatch_for(ReplaceAuditTriggerOp)
def _render_replace(autogen_context: AutogenContext, operation: ReplaceAuditTriggerOp) -> str:
    previous = previous_arguments(operation.spec, operation.previous)
    comment = f"# audit {operation.spec.table}: {summary(operation)}"
    return _call(autogen_context, operation, comment, previous=previous)


def summary(operation: ReplaceAuditTriggerOp) -> str:
    """What a replace changes, in words: ``columns +total -code; mode 'row' -> 'statement'``."""
    # Every field: the arguments leave out later fields that are unset (append_only, redacted).
    new = asdict(operation.spec)
    changed = previous_arguments(operation.spec, operation.previous)
    parts = [_difference(key, old, new[key]) for key, old in changed.items() if key != "table"]
    if "table" in changed:
        parts.insert(0, f"table {changed['table']!r} -> {operation.spec.table!r}")
    if operation.previous.template == LEGACY_TEMPLATE:
        parts.insert(0, "replace the 0.5.x function and trigger")
    elif operation.spec.template == LEGACY_TEMPLATE:
        parts.insert(0, "reinstall the 0.5.x function and trigger")
    return "; ".join(parts) or "reinstall as declared (the installed objects differ)"


def _difference(key: str, old: Any, new: Any) -> str:
    if isinstance(old, tuple) and all(isinstance(v, str) for v in (*old, *new)):
        added = [f"+{v}" for v in new if v not in old]
        removed = [f"-{v}" for v in old if v not in new]
        return " ".join([key, *added, *removed]) if added or removed else f"{key} reordered"
    if isinstance(old, tuple):  # settings and triggers: dicts with a name
        was, now = _by_name(old), _by_name(new)
        words = [f"+{n}" for n in now if n not in was] + [f"-{n}" for n in was if n not in now]
        words += [f"~{n}" for n in now if n in was and now[n] != was[n]]
        return " ".join([key, *words]) if words else f"{key} reordered"
    return f"{key} {old!r} -> {new!r}"


def _by_name(items: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}
