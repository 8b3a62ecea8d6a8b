"""``op.record_cdc_join``: a CDC table published for the first time by a migration records the
rows it holds and its join, as ``install_audit_triggers`` does (``install.publication``).

Autogenerate writes it right after the ``op.publish_audit_table`` of a table not in the
publication yet that has a key, whether the migration creates the table or it exists already
(a table switched from trigger mode): a ``B`` version of every row, under a lock that keeps
writers waiting until the migration commits, and the table's row in the joins table naming the
migration's transaction.  Design 1's target holds its subscription at that transaction until
the consumer has seeded the table's replica from those versions, so no UPDATE or DELETE
committed between the migration and the consumer's next run is skipped (an empty new table
needs the hold too: its INSERTs would be).  Both go through the migration's transaction, online
or offline (``--sql``); they must be in the transaction that publishes the table.

The downgrade keeps them (``KeepCdcJoinOp``): baseline versions are history, and a join row
only says when the table was published.  A migration that takes a table out of CDC has the
same pair the other way round: its downgrade publishes the table again, and so records its rows
and its join after that ``op.publish_audit_table`` (a table the models no longer audit has no
declaration to write them from: the downgrade says so where the call belongs,
``UnjoinedCdcOp``).
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.operations import MigrateOperation, Operations

from ..declare.spec import AuditSpec
from ..install.publication import join_statements
from .ops import _AuditOperation, _execute, _resolved, spec_from_arguments
from .render import _call


class _JoinOperation(_AuditOperation):
    def __init__(self, spec: AuditSpec, *, context_schema: str | None, context_table: str) -> None:
        super().__init__(spec)
        self.context_schema = context_schema
        self.context_table = context_table

    def context(self) -> dict[str, Any]:
        return {"context_schema": self.context_schema, "context_table": self.context_table}


@Operations.register_operation("record_cdc_join")
class RecordCdcJoinOp(_JoinOperation):
    """Record a ``B`` version of every row of a CDC table and its joins row, in the migration's
    transaction, after the table's ``op.publish_audit_table``."""

    name = "record_cdc_join"

    @classmethod
    def record_cdc_join(
        cls,
        operations: Operations,
        table_name: str,
        *,
        context_schema: str | None,
        context_table: str,
        **spec: Any,
    ) -> None:
        operations.invoke(
            cls(
                spec_from_arguments(table_name, spec),
                context_schema=context_schema,
                context_table=context_table,
            )
        )

    def reverse(self) -> KeepCdcJoinOp:
        return KeepCdcJoinOp(self.spec, **self.context())


class KeepCdcJoinOp(_JoinOperation):
    """The downgrade of a join: nothing.  Its ``B`` versions are history."""

    name = "keep_cdc_join"

    def reverse(self) -> RecordCdcJoinOp:
        return RecordCdcJoinOp(self.spec, **self.context())


@Operations.implementation_for(RecordCdcJoinOp)
def _record_join(operations: Operations, operation: RecordCdcJoinOp) -> None:
    spec = _resolved(operations, operation.spec)
    statements = join_statements(operation.context_schema, operation.context_table, spec)
    _execute(operations, statements.all())


@Operations.implementation_for(KeepCdcJoinOp)
def _keep_join(operations: Operations, operation: KeepCdcJoinOp) -> None:
    """Nothing to do: the baseline versions and the joins row stay."""


@renderers.dispatch_for(RecordCdcJoinOp)
def _render_join(autogen_context: AutogenContext, operation: RecordCdcJoinOp) -> str:
    comment = (
        f"# audit {operation.spec.table}: first published; its rows (B versions) and join "
        "seed design 1's replica"
    )
    return _call(autogen_context, operation, comment, **operation.context())


@renderers.dispatch_for(KeepCdcJoinOp)
def _render_keep_join(autogen_context: AutogenContext, operation: KeepCdcJoinOp) -> str:
    return f"# audit {operation.spec.table}: its baseline versions and join are history, kept"


class UnjoinedCdcOp(MigrateOperation):
    """Before the ``op.unpublish_audit_table`` of a table the models no longer audit: nothing
    to do.  Its reverse, after the downgrade's ``op.publish_audit_table``, is where that
    table's ``op.record_cdc_join`` belongs, which only its declaration can write."""

    def __init__(self, table_name: str, schema: str | None, *, downgrade: bool = False) -> None:
        self.table_name = table_name
        self.schema = schema
        self.downgrade = downgrade

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("unjoined_cdc", self.schema, self.table_name)

    def reverse(self) -> UnjoinedCdcOp:
        return UnjoinedCdcOp(self.table_name, self.schema, downgrade=not self.downgrade)


@renderers.dispatch_for(UnjoinedCdcOp)
def _render_unjoined(autogen_context: AutogenContext, operation: UnjoinedCdcOp) -> str:
    if not operation.downgrade:
        return (
            f"# audit {operation.table_name}: leaves change-data-capture; its baseline "
            "versions and join are history, kept"
        )
    return "\n".join(
        (
            f"# audit {operation.table_name}: published again above, but these models no "
            "longer audit it, so its",
            "# op.record_cdc_join (its rows and its join) cannot be written here: copy it from "
            "the",
            "# migration that first published it, or design 1 skips the changes made before the",
            "# consumer's next run",
        )
    )
