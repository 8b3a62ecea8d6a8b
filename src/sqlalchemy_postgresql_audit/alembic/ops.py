"""Alembic operations that install, replace and drop one table's audit function and triggers.

Each operation carries the full ``AuditSpec`` (names, columns, settings, mode and template
version) as plain arguments, so a migration is readable and frozen: it renders the same SQL after a
library upgrade, because released template versions never change.  Every operation reverses
exactly; a replace carries the spec the database had before, written as the arguments in which
it differs from the new one (``previous={'columns': [...]}``), so a reviewer sees the change.
A ``previous`` holding every argument (as older migrations have it) means the same.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from alembic.operations import MigrateOperation, Operations, ops

from ..declare.options import PartitionInterval
from ..declare.spec import AuditSpec, TriggerSpec
from ..errors import AuditError
from ..install.ddl import AuditDDL, resolve_spec
from ..install.legacy import LEGACY_TEMPLATE
from ..lifecycle import conversion
from ..render import (
    drop_function,
    drop_partition_triggers,
    drop_trigger,
    render,
    render_baseline,
)
from ..render.restart import render_restart_marker


def spec_arguments(spec: AuditSpec) -> dict[str, Any]:
    """The spec as plain keyword arguments (``table`` excluded)."""
    data = spec.as_dict()
    del data["table"]
    return data


def spec_from_arguments(table_name: str, arguments: dict[str, Any]) -> AuditSpec:
    return AuditSpec.from_dict({"table": table_name, **arguments})


def previous_arguments(spec: AuditSpec, previous: AuditSpec) -> dict[str, Any]:
    """The arguments (``table`` included) in which ``previous`` differs from ``spec``."""
    new, old = asdict(spec), asdict(previous)
    return {key: value for key, value in old.items() if new[key] != value}


def previous_from_arguments(spec: AuditSpec, changed: dict[str, Any]) -> AuditSpec:
    """The previous spec: ``spec`` with the ``changed`` arguments."""
    return AuditSpec.from_dict({**asdict(spec), **changed})


class _AuditOperation(MigrateOperation):
    name = ""

    def __init__(self, spec: AuditSpec) -> None:
        self.spec = spec

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return (self.name, self.spec.schema, self.spec.table)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.schema!r}, {self.spec.table!r})"


@Operations.register_operation("create_audit_trigger")
class CreateAuditTriggerOp(_AuditOperation):
    """Install the audit function and triggers of one table."""

    name = "create_audit_trigger"

    @classmethod
    def create_audit_trigger(cls, operations: Operations, table_name: str, **spec: Any) -> None:
        operations.invoke(cls(spec_from_arguments(table_name, spec)))

    def reverse(self) -> DropAuditTriggerOp:
        return DropAuditTriggerOp(self.spec)


class CreateAuditTableOp(ops.CreateTableOp):
    """``op.create_table`` of an audit table whose downgrade keeps the table.

    The audit table holds every change recorded since the upgrade; reversing its creation would
    delete that history, so the downgrade keeps it (rendered as a comment saying so) and the
    creation is ``if_not_exists``, so upgrading again finds the kept table.
    """

    @classmethod
    def keeping_history(cls, operation: ops.CreateTableOp) -> CreateAuditTableOp:
        created = cls(
            operation.table_name,
            operation.columns,
            schema=operation.schema,
            if_not_exists=True,
            _namespace_metadata=operation._namespace_metadata,
            _constraints_included=operation._constraints_included,
            info=operation.info,
            comment=operation.comment,
            prefixes=operation.prefixes,
            **operation.kw,
        )
        return created

    def reverse(self) -> KeepAuditTableOp:  # type: ignore[override]
        return KeepAuditTableOp(self.table_name, self.schema)


class KeepAuditTableOp(MigrateOperation):
    """The downgrade of an audit table's creation: nothing, the history stays."""

    def __init__(self, table_name: str, schema: str | None) -> None:
        self.table_name = table_name
        self.schema = schema

    def reverse(self) -> KeepAuditTableOp:
        return self

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("keep_audit_table", self.schema, self.table_name)


@Operations.implementation_for(KeepAuditTableOp)
def _keep_table(operations: Operations, operation: KeepAuditTableOp) -> None:
    """Nothing to do: the audit table and its rows stay."""


@Operations.register_operation("record_audit_baseline")
class RecordAuditBaselineOp(_AuditOperation):
    """Record the current rows of a table that already held rows when auditing began, as ``B``
    versions (rows whose key has no version yet), so their first change has a "before"."""

    name = "record_audit_baseline"

    @classmethod
    def record_audit_baseline(cls, operations: Operations, table_name: str, **spec: Any) -> None:
        operations.invoke(cls(spec_from_arguments(table_name, spec)))

    def reverse(self) -> KeepAuditBaselineOp:
        return KeepAuditBaselineOp(self.spec)


class KeepAuditBaselineOp(_AuditOperation):
    """The downgrade of a baseline: nothing.  Baseline versions are history, and no migration
    the library writes deletes history."""

    name = "keep_audit_baseline"

    def reverse(self) -> RecordAuditBaselineOp:
        return RecordAuditBaselineOp(self.spec)


@Operations.register_operation("drop_audit_trigger")
class DropAuditTriggerOp(_AuditOperation):
    """Remove the audit triggers and function of one table; the audit table is kept."""

    name = "drop_audit_trigger"

    @classmethod
    def drop_audit_trigger(cls, operations: Operations, table_name: str, **spec: Any) -> None:
        operations.invoke(cls(spec_from_arguments(table_name, spec)))

    def reverse(self) -> CreateAuditTriggerOp:
        return CreateAuditTriggerOp(self.spec)


@Operations.register_operation("replace_audit_trigger")
class ReplaceAuditTriggerOp(_AuditOperation):
    """Move one table's auditing from the ``previous`` spec to a new one."""

    name = "replace_audit_trigger"

    def __init__(self, spec: AuditSpec, previous: AuditSpec) -> None:
        super().__init__(spec)
        self.previous = previous

    @classmethod
    def replace_audit_trigger(
        cls,
        operations: Operations,
        table_name: str,
        *,
        previous: dict[str, Any],
        **spec: Any,
    ) -> None:
        new = spec_from_arguments(table_name, spec)
        operations.invoke(cls(new, previous_from_arguments(new, previous)))

    def reverse(self) -> ReplaceAuditTriggerOp:
        return ReplaceAuditTriggerOp(self.previous, self.spec)


@Operations.register_operation("partition_audit_table")
class PartitionAuditTableOp(_AuditOperation):
    """Convert a table's unpartitioned audit table, history and all, to a partitioned one
    without copying its rows (``lifecycle.conversion``); the downgrade reverses it, keeping
    every row."""

    name = "partition_audit_table"

    def __init__(self, spec: AuditSpec, interval: PartitionInterval) -> None:
        super().__init__(spec)
        self.interval: PartitionInterval = interval

    @classmethod
    def partition_audit_table(
        cls, operations: Operations, table_name: str, *, interval: PartitionInterval, **spec: Any
    ) -> None:
        operations.invoke(cls(spec_from_arguments(table_name, spec), interval))

    def reverse(self) -> UnpartitionAuditTableOp:
        return UnpartitionAuditTableOp(self.spec, self.interval)


@Operations.register_operation("unpartition_audit_table")
class UnpartitionAuditTableOp(PartitionAuditTableOp):
    """The first partition becomes the audit table again; the rows written since the
    conversion are copied into it, so no row is lost."""

    name = "unpartition_audit_table"

    @classmethod
    def unpartition_audit_table(
        cls, operations: Operations, table_name: str, *, interval: PartitionInterval, **spec: Any
    ) -> None:
        operations.invoke(cls(spec_from_arguments(table_name, spec), interval))

    def reverse(self) -> PartitionAuditTableOp:  # type: ignore[override]
        return PartitionAuditTableOp(self.spec, self.interval)


def _online(operations: Operations, operation: _AuditOperation) -> None:
    if operations.get_context().as_sql:
        raise AuditError(
            f"op.{operation.name}({operation.spec.table!r}) needs an online migration: it reads "
            "the audit table's indexes, owner and rights from the database"
        )


@Operations.implementation_for(PartitionAuditTableOp)
def _partition(operations: Operations, operation: PartitionAuditTableOp) -> None:
    """The check is added and validated outside the migration's transaction (each step
    commits at once), so that writers do not wait for the validating scan; the swap runs in
    the migration's transaction."""
    _online(operations, operation)
    spec = _resolved(operations, operation.spec)
    with conversion.turn_held(operations.get_bind().engine, spec):
        with operations.get_context().autocommit_block():
            until = conversion.prepare(operations.get_bind(), spec, operation.interval)
            conversion.validate(operations.get_bind(), spec)
        conversion.finish(operations.get_bind(), spec, until)


@Operations.implementation_for(UnpartitionAuditTableOp)
def _unpartition(operations: Operations, operation: UnpartitionAuditTableOp) -> None:
    _online(operations, operation)
    conversion.unpartition(operations.get_bind(), _resolved(operations, operation.spec))


def _execute(operations: Operations, statements: tuple[str, ...] | list[str]) -> None:
    for sql in statements:
        operations.execute(AuditDDL(sql))


def _resolved(operations: Operations, spec: AuditSpec) -> AuditSpec:
    """``spec`` with its real schema online; as written offline, where no database is asked."""
    bind = None if operations.get_context().as_sql else operations.get_bind()
    return resolve_spec(bind, spec)


@Operations.implementation_for(CreateAuditTriggerOp)
def _create(operations: Operations, operation: CreateAuditTriggerOp) -> None:
    """Install; over an audit table kept from an earlier life of the table (a downgrade that
    dropped it, then this upgrade), first mark where the trail restarts (``render.restart``)."""
    spec = _resolved(operations, operation.spec)
    _execute(operations, [render_restart_marker(spec), *render(spec).install])


@Operations.implementation_for(RecordAuditBaselineOp)
def _baseline(operations: Operations, operation: RecordAuditBaselineOp) -> None:
    _execute(operations, render_baseline(_resolved(operations, operation.spec)))


@Operations.implementation_for(DropAuditTriggerOp)
def _drop(operations: Operations, operation: DropAuditTriggerOp) -> None:
    _execute(operations, render(_resolved(operations, operation.spec)).uninstall)


def _different_function(old: AuditSpec, new: AuditSpec) -> bool:
    """Whether the previous function is another object than the new one.

    A schema of None means the default schema, which an offline migration cannot resolve; with
    the same function name, None and an explicit schema are taken to be the same function (a
    stale one left behind is found and dropped by the next autogenerate).
    """
    if old.function != new.function:
        return True
    return old.schema is not None and new.schema is not None and old.schema != new.schema


def _shape(spec: AuditSpec, trigger: TriggerSpec) -> tuple[str, str]:
    """A trigger's timing and level, which ``CREATE OR REPLACE TRIGGER`` may not change in place.

    On a partitioned table a row trigger has a clone on every partition; replacing it with a
    statement trigger would leave the clones calling a function that now expects transition
    tables.  Dropping the parent trigger drops its clones.
    """
    truncate = trigger.operation == "TRUNCATE"
    timing = "BEFORE" if truncate and spec.truncate_rows else "AFTER"
    level = "ROW" if spec.mode == "row" and not truncate else "STATEMENT"
    return (timing, level)


@Operations.implementation_for(ReplaceAuditTriggerOp)
def _replace(operations: Operations, operation: ReplaceAuditTriggerOp) -> None:
    new = _resolved(operations, operation.spec)
    old = _resolved(operations, operation.previous)
    if LEGACY_TEMPLATE in (old.template, new.template):
        # 0.5.x objects name their function unqualified: remove one installation completely
        # before creating the other, so neither statement can find the other's function.
        _execute(operations, [*render(old).uninstall, *render(new).install])
        return
    kept = {(t.name, _shape(new, t)) for t in new.triggers} if old.key == new.key else set()
    obsolete = [
        drop_trigger(old.schema, old.table, t.name)
        for t in old.triggers
        if (t.name, _shape(old, t)) not in kept
    ]
    if old.key_trigger is not None and (
        old.key != new.key or new.key_trigger is None or new.key_trigger != old.key_trigger
    ):
        obsolete.append(drop_trigger(old.schema, old.table, old.key_trigger.name))
    statements = [*obsolete, *render(new).install]
    if old.template >= 2 and (new.template < 2 or _different_function(old, new)):
        # The previous function's TRUNCATE triggers on partitions: nothing else removes them.
        statements.insert(0, drop_partition_triggers(old))
    if _different_function(old, new):
        statements.append(drop_function(old.schema, old.function))
    _execute(operations, statements)
