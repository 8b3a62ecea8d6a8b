"""Retyping a key column of a statement-mode audited table: the key trigger goes around it.

PostgreSQL refuses ``ALTER COLUMN <key> TYPE`` while the key trigger's condition uses the
column ("cannot alter type of a column used in a trigger definition", ``render.key_retype``).
Autogenerate puts ``op.drop_audit_key_trigger(...)`` before the table's key retypes and
``op.create_audit_key_trigger(...)`` after them, inside the same ``ModifyTableOps``, so the
downgrade (Alembic reverses the list and each op) drops and re-creates it around the retype
back.  All of it runs in the migration's transaction: no UPDATE goes unrecorded in between.
A hand-written ``op.alter_column`` can call the two operations the same way (docs/alembic.md).
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.operations import MigrateOperation, Operations, ops

from ..declare.spec import AuditSpec, TriggerSpec
from ..install.ddl import AuditDDL
from ..render.key_retype import create_key_triggers, drop_key_triggers
from .ops import _resolved
from .render import IMPORT


def key_spec(
    table_name: str,
    *,
    schema: str | None,
    function: str,
    update_trigger: str,
    key_columns: list[str] | tuple[str, ...],
) -> AuditSpec:
    """The parts of a table's spec that name and define its key trigger."""
    return AuditSpec(
        schema=schema,
        table=table_name,
        audit_table="",
        function=function,
        triggers=(TriggerSpec(name=update_trigger, operation="UPDATE"),),
        columns=(),
        key_columns=tuple(key_columns),
    )


class _KeyTriggerOperation(MigrateOperation):
    name = ""

    def __init__(self, spec: AuditSpec) -> None:
        if spec.key_trigger is None:
            raise ValueError(f"table {spec.table!r}: its audit spec has no key trigger")
        self.spec = spec

    def arguments(self) -> dict[str, Any]:
        update = self.spec.update_trigger
        assert update is not None  # a spec with a key trigger has one
        return {
            "schema": self.spec.schema,
            "function": self.spec.function,
            "update_trigger": update.name,
            "key_columns": list(self.spec.key_columns),
        }

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return (self.name, self.spec.schema, self.spec.table)


@Operations.register_operation("drop_audit_key_trigger")
class DropAuditKeyTriggerOp(_KeyTriggerOperation):
    """Drop a table's key trigger (and its inheritance children's) before a key retype."""

    name = "drop_audit_key_trigger"

    @classmethod
    def drop_audit_key_trigger(
        cls, operations: Operations, table_name: str, **arguments: Any
    ) -> None:
        operations.invoke(cls(key_spec(table_name, **arguments)))

    def reverse(self) -> CreateAuditKeyTriggerOp:
        return CreateAuditKeyTriggerOp(self.spec)


@Operations.register_operation("create_audit_key_trigger")
class CreateAuditKeyTriggerOp(_KeyTriggerOperation):
    """Create a table's key trigger (and its inheritance children's) after a key retype."""

    name = "create_audit_key_trigger"

    @classmethod
    def create_audit_key_trigger(
        cls, operations: Operations, table_name: str, **arguments: Any
    ) -> None:
        operations.invoke(cls(key_spec(table_name, **arguments)))

    def reverse(self) -> DropAuditKeyTriggerOp:
        return DropAuditKeyTriggerOp(self.spec)


@Operations.implementation_for(DropAuditKeyTriggerOp)
def _drop(operations: Operations, operation: DropAuditKeyTriggerOp) -> None:
    for sql in drop_key_triggers(_resolved(operations, operation.spec)):
        operations.execute(AuditDDL(sql))


@Operations.implementation_for(CreateAuditKeyTriggerOp)
def _create(operations: Operations, operation: CreateAuditKeyTriggerOp) -> None:
    for sql in create_key_triggers(_resolved(operations, operation.spec)):
        operations.execute(AuditDDL(sql))


@renderers.dispatch_for(DropAuditKeyTriggerOp)
@renderers.dispatch_for(CreateAuditKeyTriggerOp)
def _render(autogen_context: AutogenContext, operation: _KeyTriggerOperation) -> str:
    autogen_context.imports.add(IMPORT)
    lines = [f"op.{operation.name}(", f"    {operation.spec.table!r},"]
    lines += [f"    {key}={value!r}," for key, value in operation.arguments().items()]
    return "\n".join([*lines, ")"])


def wrap_key_retypes(
    upgrade_ops: ops.UpgradeOps, specs: dict[tuple[str, str], AuditSpec], default: str
) -> None:
    """Put the key trigger's drop before and its creation after the key retypes of each table
    in ``specs`` (by (schema, table), as installed) that has one."""
    for table_ops in upgrade_ops.ops:
        if not isinstance(table_ops, ops.ModifyTableOps):
            continue
        spec = specs.get((table_ops.schema or default, table_ops.table_name))
        if spec is None or spec.key_trigger is None:
            continue
        retypes = [
            position
            for position, operation in enumerate(table_ops.ops)
            if isinstance(operation, ops.AlterColumnOp)
            and operation.modify_type is not None
            and operation.column_name in spec.key_columns
        ]
        if retypes:
            table_ops.ops.insert(retypes[-1] + 1, CreateAuditKeyTriggerOp(spec))
            table_ops.ops.insert(retypes[0], DropAuditKeyTriggerOp(spec))
