"""Stage 3 of declaring: the companion audit table of an audited source table, as ``Table``
objects made from its complete ``AuditSpec`` (``.specify``).

The audit table lives in the source table's MetaData and schema, so ``create_all`` and Alembic
see it as an ordinary table.  It holds the fixed audit columns, one column per session setting,
then a typed, nullable, constraint-free copy of every source column.  A table declared before
is brought up to date (columns added since), and one the MetaData already holds under the audit
table's name (reflected from a database) is adopted.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import conv
from sqlalchemy.sql.type_api import to_instance
from sqlalchemy.types import TypeEngine

from ..errors import AuditConfigurationError
from . import naming
from .options import AuditOptions, PartitionInterval
from .spec import (
    AUDIT_CURRENT_USER,
    AUDIT_ID,
    AUDIT_OPERATION,
    AUDIT_TIMESTAMP,
    AuditSpec,
    capture_column,
)

#: ``Table.info`` keys this library writes.  The user's own ``info`` dict is never modified: the
#: table gets a copy holding these keys.
SPEC_KEY = "audit.spec"
AUDIT_TABLE_KEY = "audit.table"
CREATE_DDL_KEY = "audit.create_ddl"
DROP_DDL_KEY = "audit.drop_ddl"
#: Marks an audit table (in its ``info``) and names its source as ``schema.table``.
IS_AUDIT_TABLE_KEY = "audit.is_audit_table"
#: How a partitioned audit table is partitioned (``postgresql_partition_by``).
PARTITION_BY = f"RANGE ({AUDIT_TIMESTAMP})"
#: In a partitioned audit table's ``info``: its ``Partitioning``, which ``maintain`` follows.
PARTITIONING_KEY = "audit.partitioning"


@dataclass(frozen=True, slots=True, kw_only=True)
class Partitioning:
    """How an audit table is partitioned and how long ``maintain`` keeps its history."""

    interval: PartitionInterval
    retention: datetime.timedelta | None
    #: Retention keeps the partitions it detaches (for archiving) instead of dropping them.
    keep: bool = False


def partitioning_of(options: AuditOptions) -> Partitioning | None:
    if options.partition is None:
        return None
    return Partitioning(
        interval=options.partition, retention=options.retention, keep=options.retention_keep
    )


#: Audit tables carry this comment suffix, so that tools can recognise them in a database
#: (Alembic autogenerate never drops a table that has it: history is not lost silently).
AUDIT_TABLE_COMMENT_SUFFIX = " (sqlalchemy-postgresql-audit)"


def is_audit_table_comment(comment: str | None) -> bool:
    return bool(comment) and str(comment).endswith(AUDIT_TABLE_COMMENT_SUFFIX)


def declared_audit_table(source: Table) -> Table | None:
    """The audit table declared for ``source`` itself, or ``None``.

    ``info`` can hold another table's declaration: ``to_metadata`` copies ``info`` whole, so a
    copy (in another MetaData or schema) would install for the original.  Such a table is
    declared afresh.
    """
    spec = source.info.get(SPEC_KEY)
    audit_table = source.info.get(AUDIT_TABLE_KEY)
    if not isinstance(spec, AuditSpec) or not isinstance(audit_table, Table):
        return None
    if (spec.table, spec.schema) != (source.name, source.schema):
        return None
    if source.metadata.tables.get(audit_table.key) is not audit_table:
        return None
    return audit_table


def new_audit_table(source: Table, options: AuditOptions, spec: AuditSpec) -> Table:
    """Declare the audit table, or adopt the one the MetaData already holds under its name
    (reflected from the database, or declared for this table before its ``info`` was
    replaced)."""
    key = f"{source.schema}.{spec.audit_table}" if source.schema else spec.audit_table
    existing = source.metadata.tables.get(key)
    if existing is None:
        return declare_audit_table(source, options, spec, source.metadata)
    owner = existing.info.get(IS_AUDIT_TABLE_KEY)
    # A copy made with to_metadata(schema=...) still names the original's schema.
    if not is_audit_table(existing) or (
        owner is not None and str(owner).rpartition(".")[2] != source.name
    ):
        raise AuditConfigurationError(
            source.name,
            "audit.table",
            f"names {key!r} for the audit table, but the MetaData already has a table of that "
            "name that is not this table's audit table (change the 'audit.table' naming "
            "convention)",
        )
    existing.info = {**existing.info, IS_AUDIT_TABLE_KEY: source_name(source)}
    partitioning = partitioning_of(options)
    if partitioning is not None:
        existing.info[PARTITIONING_KEY] = partitioning
    complete_audit_table(source, options, spec, existing)
    return existing


def complete_audit_table(
    source: Table, options: AuditOptions, spec: AuditSpec, audit_table: Table
) -> None:
    """Add the columns (and index) ``audit_table`` lacks: ones added to the source since it was
    declared, or that a reflected audit table does not have yet (installing then checks the
    database has them)."""
    for column in audit_columns(source, options, spec):
        if column.name not in audit_table.c:
            audit_table.append_column(column)
    add_history_index(source, options, spec, audit_table)


def audit_columns(source: Table, options: AuditOptions, spec: AuditSpec) -> list[Column[Any]]:
    """The columns the audit table of ``source`` needs, in order (fresh objects)."""
    fixed: list[Column[Any]] = [
        Column(AUDIT_ID, BigInteger, Identity(), nullable=False),
        Column(AUDIT_OPERATION, String(1), nullable=False),
        Column(
            AUDIT_TIMESTAMP,
            DateTime(timezone=not options.legacy_timestamp),
            nullable=False,
        ),
        # Nullable, although the trigger always fills it: rows written before this column
        # existed (by 0.5.x, which did not record it) honestly have no known writer.
        Column(AUDIT_CURRENT_USER, String(64), nullable=True),
        *(_capture_column(capture, options) for capture in spec.captures),
    ]
    # Session-setting columns stay nullable: rows written before a setting existed have no
    # value, and a required setting is enforced by the trigger instead (see render/).
    settings = [
        Column(setting_spec.column, setting.type, nullable=True)
        for setting_spec, setting in zip(spec.settings, options.session_settings, strict=True)
    ]
    recorded = set(spec.columns)  # without excluded and omitted columns
    mirrored = [
        Column(column.name, LargeBinary, nullable=True)
        if spec.redaction(column.name) == "hash"
        else mirror_column(column)
        for column in source.columns
        if column.name in recorded
    ]
    return [*fixed, *settings, *mirrored]


def declare_audit_table(
    source: Table, options: AuditOptions, spec: AuditSpec, metadata: MetaData
) -> Table:
    """Add the audit table for ``source`` to ``metadata`` and return it.

    With ``partition`` it is range-partitioned on ``audit_operation_timestamp`` (where template
    2 records the write time); its DEFAULT partition comes from ``partitions_ddl``, whatever
    creates the table (``create_all``, Alembic's ``op.create_table``).
    """
    partitioning = partitioning_of(options)
    info: dict[str, Any] = {IS_AUDIT_TABLE_KEY: source_name(source)}
    table_options: dict[str, Any] = {}
    if partitioning is not None:
        info[PARTITIONING_KEY] = partitioning
        table_options["postgresql_partition_by"] = PARTITION_BY
    audit_table = Table(
        spec.audit_table,
        metadata,
        *audit_columns(source, options, spec),
        schema=source.schema,
        info=info,
        comment=f"Audit history of {source.fullname}{AUDIT_TABLE_COMMENT_SUFFIX}",
        **table_options,
    )
    add_history_index(source, options, spec, audit_table)
    return audit_table


def source_name(source: Table) -> str:
    """How an audit table's ``info`` names its source: ``schema.table`` or ``table``."""
    return f"{source.schema}.{source.name}" if source.schema else source.name


def is_audit_table(table: Table) -> bool:
    """Whether ``table`` is an audit table: declared by this library, or reflected from a
    database (recognised by its comment)."""
    return IS_AUDIT_TABLE_KEY in table.info or is_audit_table_comment(table.comment)


def add_history_index(
    source: Table, options: AuditOptions, spec: AuditSpec, audit_table: Table
) -> None:
    """Index the audit table on (source key..., ``audit_id``): one row's history, in order.

    An ordinary ``Index`` of the audit table, so that ``create_all`` creates it and Alembic
    migrates it like any index.  None without a primary key, or with ``history_index=False``.
    """
    if not options.history_index or not spec.key_columns:
        return
    tokens = {"table_name": source.name, "schema": source.schema or "public"}
    name = naming.apply_convention(
        source.metadata.naming_convention,
        naming.INDEX_KEY,
        naming.DEFAULT_AUDIT_INDEX_NAMING_CONVENTION,
        tokens,
    )
    if any(index.name == name for index in audit_table.indexes):
        return
    columns = [*spec.key_columns, AUDIT_ID]
    if all(column in audit_table.c for column in columns):
        # conv(): the name is final; a MetaData "ix" convention must not rename it.
        Index(conv(name), *(audit_table.c[column] for column in columns))


def _capture_column(capture: str, options: AuditOptions) -> Column[Any]:
    types: dict[str, TypeEngine[Any]] = {
        "transaction_id": BigInteger(),
        "statement_timestamp": DateTime(timezone=not options.legacy_timestamp),
        "clock_timestamp": DateTime(timezone=not options.legacy_timestamp),
        "session_user": String(64),
        "application_name": Text(),
        "client_addr": postgresql.INET(),
        "changed_columns": postgresql.ARRAY(Text()),
    }
    return Column(capture_column(capture), types[capture], nullable=True)


def mirror_column(column: Column[Any]) -> Column[Any]:
    """A nullable, constraint-free copy of ``column`` with the same name and type."""
    return Column(column.name, nullable_type(column.type), nullable=True)


def nullable_type(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    """``type_`` without the constraints a domain carries (``NOT NULL``, ``CHECK``).

    The audit table must accept NULL in every mirrored column (a TRUNCATE marker row, a column
    added to an audit table that has rows), so a domain is mirrored as its base type, also
    inside an array.  Enums and every other type are kept as they are.
    """
    if isinstance(type_, postgresql.DOMAIN):
        return nullable_type(to_instance(type_.data_type))
    if isinstance(type_, postgresql.ARRAY):
        item = nullable_type(to_instance(type_.item_type))
        if item is not type_.item_type:
            return postgresql.ARRAY(
                item,
                as_tuple=type_.as_tuple,
                dimensions=type_.dimensions,
                zero_indexes=type_.zero_indexes,
            )
    return type_
