"""Alembic for change-data-capture: a CDC table's publication membership and replica identity.

``op.publish_audit_table`` adds a table to its publication (creating the publications and the
context table when missing) with the replica identity it needs; ``op.unpublish_audit_table``
takes it out.  Each reverses the other, so downgrades undo exactly.  The comparator emits them
where the publication differs from the declared CDC tables (drift), and after publishing a
table for the first time ``op.record_cdc_join`` (``.cdc_join``: its rows and its join).  The
logical slot is not made in a migration (PostgreSQL creates one only in a transaction that
has not written): ``install_audit_triggers``, ``create_all`` or ``cdc.create_slot`` make it,
and until then the runtime check refuses writes to CDC tables and ``check`` reports them missing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.operations import MigrateOperation, Operations, ops
from sqlalchemy import ARRAY, Connection, MetaData, Text, bindparam, text

from ..declare.cdc import CdcNames, cdc_names, replica_identity
from ..declare.naming import fit_identifier
from ..errors import AuditConfigurationError
from ..install.compare import compare_publication
from ..install.ddl import AuditDDL, audited_tables
from ..install.planted import planted
from ..install.publication import CONTEXT_COMMENT, JOINS_COMMENT, context_drifts, option_drifts
from ..install.translated import refuse_translated_table
from ..render import cdc as sql
from ..render import cdc_joins as joins
from ..render import cdc_truncate as truncate
from ..render.cdc import REPLICA_IDENTITIES
from .cdc_join import KeepCdcJoinOp, RecordCdcJoinOp, UnjoinedCdcOp
from .ops import KeepAuditBaselineOp, RecordAuditBaselineOp
from .render import IMPORT

_IDENTITIES = text(sql.REPLICA_IDENTITY_OF).bindparams(
    bindparam("schemas", type_=ARRAY(Text())), bindparam("tables", type_=ARRAY(Text()))
)
_CODES = {code: name for name, code in REPLICA_IDENTITIES.items()}


class _PublicationOperation(MigrateOperation):
    name = ""

    def __init__(
        self,
        table_name: str,
        *,
        schema: str | None,
        publication: str,
        context_schema: str | None,
        context_table: str,
        replica_identity: str,
    ) -> None:
        self.table_name = table_name
        self.schema = schema
        self.publication = publication
        self.context_schema = context_schema
        self.context_table = context_table
        self.replica_identity = replica_identity

    def arguments(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "publication": self.publication,
            "context_schema": self.context_schema,
            "context_table": self.context_table,
            "replica_identity": self.replica_identity,
        }

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return (self.name, self.schema, self.table_name, self.publication)

    def names(self) -> CdcNames:
        return CdcNames(
            publication=self.publication,
            context_publication=fit_identifier(f"{self.publication}_context"),
            slot="",
            context_schema=self.context_schema,
            context_table=self.context_table,
        )


@Operations.register_operation("publish_audit_table")
class PublishAuditTableOp(_PublicationOperation):
    """Add a CDC table to its publication, with the replica identity it needs.

    ``replaces_identity``: the table is published already, with that identity, which this
    operation changes (the ``replica_identity`` option changed): its reverse puts that identity
    back instead of taking the table out of the publication.
    """

    name = "publish_audit_table"

    def __init__(self, table_name: str, *, replaces_identity: str | None = None, **kw: Any) -> None:
        super().__init__(table_name, **kw)
        self.replaces_identity = replaces_identity

    def arguments(self) -> dict[str, Any]:
        arguments = super().arguments()
        if self.replaces_identity is not None:
            arguments["replaces_identity"] = self.replaces_identity
        return arguments

    @classmethod
    def publish_audit_table(cls, operations: Operations, table_name: str, **kw: Any) -> None:
        operations.invoke(cls(table_name, **kw))

    def reverse(self) -> UnpublishAuditTableOp | PublishAuditTableOp:
        arguments = super().arguments()
        if self.replaces_identity is None:
            return UnpublishAuditTableOp(self.table_name, **arguments)
        arguments["replica_identity"] = self.replaces_identity
        return PublishAuditTableOp(
            self.table_name, replaces_identity=self.replica_identity, **arguments
        )


@Operations.register_operation("unpublish_audit_table")
class UnpublishAuditTableOp(_PublicationOperation):
    """Take a table out of the CDC publication (its replica identity stays)."""

    name = "unpublish_audit_table"

    @classmethod
    def unpublish_audit_table(cls, operations: Operations, table_name: str, **kw: Any) -> None:
        operations.invoke(cls(table_name, **kw))

    def reverse(self) -> PublishAuditTableOp:
        return PublishAuditTableOp(self.table_name, **self.arguments())


@Operations.implementation_for(PublishAuditTableOp)
def _publish(operations: Operations, operation: PublishAuditTableOp) -> None:
    names = operation.names()
    if not operations.get_context().as_sql:  # offline, no connection translates the schema
        refuse_translated_table(operations.get_bind(), operation.table_name, operation.schema)
    statements = [
        sql.create_context_table(names.context_schema, names.context_table, CONTEXT_COMMENT),
        sql.create_context_publication(
            names.context_publication, names.context_schema, names.context_table
        ),
        joins.create_joins_table(names.context_schema, names.context_table, JOINS_COMMENT),
        joins.publish_joins_table(
            names.context_publication, names.context_schema, names.context_table
        ),
        sql.create_publication(names.publication),
        sql.set_publication_options(names.publication),
        sql.replica_identity(operation.schema, operation.table_name, operation.replica_identity),
        sql.add_table(names.publication, operation.schema, operation.table_name),
        truncate.guard_function(operation.schema),
        truncate.install_guard(operation.schema, operation.table_name),
    ]
    for statement in statements:
        operations.execute(AuditDDL(statement))
    # Before ``op.record_cdc_join`` writes to the joins table (online: offline, no database
    # answers): not a table another role made first under the name (``install.planted``).
    if not operations.get_context().as_sql:
        problem = planted(operations.get_bind(), names)
        if problem is not None:
            raise AuditConfigurationError(operation.table_name, "mode", problem)


@Operations.implementation_for(UnpublishAuditTableOp)
def _unpublish(operations: Operations, operation: UnpublishAuditTableOp) -> None:
    operations.execute(
        AuditDDL(sql.drop_table(operation.publication, operation.schema, operation.table_name))
    )
    operations.execute(AuditDDL(truncate.drop_guard(operation.schema, operation.table_name)))


@renderers.dispatch_for(PublishAuditTableOp)
@renderers.dispatch_for(UnpublishAuditTableOp)
def _render(autogen_context: AutogenContext, operation: _PublicationOperation) -> str:
    autogen_context.imports.add(IMPORT)
    lines = [f"op.{operation.name}(", f"    {operation.table_name!r},"]
    lines += [f"    {key}={value!r}," for key, value in operation.arguments().items()]
    lines.append(")")
    return "\n".join(lines)


def _replaced(
    key: tuple[str, str],
    identity: str,
    published: list[tuple[str, str]],
    identities: dict[tuple[str, str], str],
) -> str | None:
    """The identity a published table has and the declaration changes (None when it is not
    published, or keeps its identity, or has one installing never sets)."""
    current = identities.get(key)
    if key in published and current != identity and current in REPLICA_IDENTITIES:
        return current
    return None


def publication_operations(
    connection: Connection, metadata: MetaData, default: str
) -> list[ops.MigrateOperation]:
    """The operations bringing ``metadata``'s CDC publication to its declared tables."""
    names = cdc_names(metadata)
    declared = {
        (spec.schema or default, spec.table): replica_identity(spec)
        for table, spec in audited_tables(metadata)
        if spec.cdc
    }
    published = [
        (row.schema, row.table)
        for row in connection.execute(
            text(sql.PUBLICATION_TABLES), {"publication": names.publication}
        )
    ]
    if not declared and not published:
        return []
    keys = list(declared)
    identities = {
        (row.schema, row.table): _CODES.get(row.identity, row.identity)
        for row in connection.execute(
            _IDENTITIES, {"schemas": [k[0] for k in keys], "tables": [k[1] for k in keys]}
        )
    }
    # The context publication changed by hand too: publishing puts it back.
    drifted = (
        [*option_drifts(connection, names.publication), *context_drifts(connection, names)]
        if declared
        else []
    )
    changes = compare_publication(declared, published, identities, drifted)

    def arguments(key: tuple[str, str], identity: str) -> dict[str, Any]:
        return {
            "schema": None if key[0] == default else key[0],
            "publication": names.publication,
            "context_schema": names.context_schema,
            "context_table": names.context_table,
            "replica_identity": identity,
        }

    audited = {(spec.schema or default, spec.table): spec for _, spec in audited_tables(metadata)}
    specs = {key: spec for key, spec in audited.items() if spec.cdc}
    operations: list[ops.MigrateOperation] = []
    for key in changes.unpublish:
        # Its downgrade publishes it again: its rows and its join then, as when it was first
        # published (``cdc_join``), after the publish, that is before the unpublish here.
        left = audited.get(key)
        if left is None:
            operations.append(UnjoinedCdcOp(key[1], arguments(key, "default")["schema"]))
        elif left.key_columns:
            operations.append(
                KeepCdcJoinOp(
                    replace(left, cdc=True),
                    context_schema=names.context_schema,
                    context_table=names.context_table,
                )
            )
        identity = identities.get(key, "default")
        operations.append(UnpublishAuditTableOp(key[1], **arguments(key, identity)))
    for key in changes.publish:
        replaced = _replaced(key, declared[key], published, identities)
        operations.append(
            PublishAuditTableOp(key[1], replaces_identity=replaced, **arguments(key, declared[key]))
        )
        # Published for the first time: its rows and its join, in the publishing transaction
        # (``cdc_join``), whether the migration creates the table or it holds rows already.
        if key not in published and key in specs and specs[key].key_columns:
            operations.append(
                RecordCdcJoinOp(
                    specs[key],
                    context_schema=names.context_schema,
                    context_table=names.context_table,
                )
            )
        # Leaving FULL, the decoder rebuilds old rows from the trail, which may have lost
        # versions meanwhile (a purge): the rows it lacks get a baseline, in whichever
        # direction of the migration leaves FULL (the reverse of a kept baseline records one).
        if replaced == "full" and key in specs and specs[key].key_columns:
            operations.append(RecordAuditBaselineOp(specs[key]))
        elif replaced == "default" and key in specs and specs[key].key_columns:
            operations.append(KeepAuditBaselineOp(specs[key]))
    return operations
