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
only says when the table was published.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.operations import Operations

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
