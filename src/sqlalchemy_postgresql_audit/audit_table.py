"""Declare the companion audit table of an audited source table, and its ``AuditSpec``.

The audit table lives in the source table's MetaData and schema, so ``create_all`` and Alembic
see it as an ordinary table.  It holds the fixed audit columns, one column per session setting,
then a typed, nullable, constraint-free copy of every source column.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import conv
from sqlalchemy.sql.type_api import to_instance
from sqlalchemy.types import TypeEngine

from . import naming
from .errors import AuditConfigurationError
from .options import AuditOptions, CaptureMode, PartitionInterval
from .spec import (
    AUDIT_CURRENT_USER,
    AUDIT_ID,
    AUDIT_OPERATION,
    AUDIT_TIMESTAMP,
    FIXED_AUDIT_COLUMNS,
    AuditSpec,
    SettingSpec,
    TriggerSpec,
    VirtualColumnSpec,
    capture_column,
    check_expression,
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


def partitioning_of(options: AuditOptions) -> Partitioning | None:
    if options.partition is None:
        return None
    return Partitioning(interval=options.partition, retention=options.retention)


_TYPE_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]

#: Audit tables carry this comment suffix, so that tools can recognise them in a database
#: (Alembic autogenerate never drops a table that has it: history is not lost silently).
AUDIT_TABLE_COMMENT_SUFFIX = " (sqlalchemy-postgresql-audit)"


def is_audit_table_comment(comment: str | None) -> bool:
    return bool(comment) and str(comment).endswith(AUDIT_TABLE_COMMENT_SUFFIX)


def capture_mode(source: Table, options: AuditOptions) -> CaptureMode:
    """The mode the triggers use: the declared one, else statement level except on a
    partitioned table.

    A statement-level trigger on a partitioned table sees only statements addressed to that
    table, not writes addressed to a partition directly; row-level triggers are cloned onto
    every partition, present and future, so nothing goes unaudited.
    """
    options_of = source.dialect_options["postgresql"]
    partitioned = options_of.get("partition_by") or options_of.get("inherits")
    if partitioned and options.mode == "statement":
        raise AuditConfigurationError(source.name, "mode", STATEMENT_MODE_ON_PARTITIONS)
    if options.mode is not None:
        return options.mode
    return "row" if partitioned else "statement"


#: Why partitioned tables, partitions and inheritance children cannot be audited in statement
#: mode: a statement trigger fires only for the table a statement names.
STATEMENT_MODE_ON_PARTITIONS = (
    "is 'statement' on a partitioned table, a partition or an inheritance child: statement-level "
    "triggers fire only for the table a statement names, so rows written to a partition "
    "directly, or changed through a parent table, would go unaudited; use mode='row' (the "
    "default for partitioned and inheriting tables)"
)


#: A name SQLAlchemy leaves unquoted although it ends with a newline: its check for legal
#: characters ends in ``$``, which also matches before a final newline, so PostgreSQL reads the
#: name without it and creates another table or column than the one declared.
_MISQUOTED = re.compile(r"[a-z_][a-z0-9_$]*\n", re.DOTALL)


def _check_quotable(source: Table) -> None:
    names = [("schema", source.schema), ("table", source.name)]
    names += [(column.name, column.name) for column in source.columns]
    for key, name in names:
        if name is not None and _MISQUOTED.fullmatch(name):
            raise AuditConfigurationError(
                source.name,
                key,
                f"{name!r} ends with a newline, which SQLAlchemy does not quote, so PostgreSQL "
                "would create a name without it; rename it",
            )


def build_spec(source: Table, options: AuditOptions) -> AuditSpec:
    """Compute names and columns for ``source``; raises on collisions with audit columns."""
    _check_quotable(source)
    conventions: Mapping[Any, Any] = source.metadata.naming_convention
    tokens = {"table_name": source.name, "schema": source.schema or "public"}
    settings = tuple(
        SettingSpec(
            name=setting.name,
            column=naming.apply_convention(
                conventions,
                naming.COLUMN_KEY,
                naming.DEFAULT_AUDIT_COLUMN_NAMING_CONVENTION,
                {"column_name": setting.name},
            ),
            sql_type=setting.type.compile(dialect=_TYPE_DIALECT),
            required=setting.required,
        )
        for setting in options.session_settings
    )
    excluded = _check_excluded(source, options)
    columns = tuple(column.name for column in source.columns if column.name not in excluded)
    _check_collisions(source.name, settings, options.capture, columns)
    trigger_base = naming.apply_convention(
        conventions, naming.TRIGGER_KEY, naming.DEFAULT_AUDIT_TABLE_TRIGGER_CONVENTION, tokens
    )
    spec = AuditSpec(
        schema=source.schema,
        table=source.name,
        audit_table=naming.apply_convention(
            conventions, naming.TABLE_KEY, naming.DEFAULT_AUDIT_TABLE_NAMING_CONVENTION, tokens
        ),
        function=naming.apply_convention(
            conventions,
            naming.FUNCTION_KEY,
            naming.DEFAULT_AUDIT_TABLE_FUNCTION_NAMING_CONVENTION,
            tokens,
        ),
        triggers=tuple(
            TriggerSpec(
                name=naming.fit_identifier(f"{trigger_base}_{operation.lower()}"),
                operation=operation,
            )
            for operation in options.operations
        ),
        columns=columns,
        settings=settings,
        mode=capture_mode(source, options),
        exclude_columns=options.exclude_columns,
        skip_unchanged=options.skip_unchanged,
        key_columns=tuple(column.name for column in source.primary_key.columns),
        captures=options.capture,
        truncate_rows=options.truncate_rows,
        virtual_columns=_virtual_columns(source),
        append_only=options.append_only,
        cdc=options.cdc,
    )
    if spec.pairs_updates and not spec.key_columns:
        raise AuditConfigurationError(
            source.name,
            "exclude_columns"
            if options.exclude_columns
            else "skip_unchanged"
            if options.skip_unchanged
            else "capture",
            "needs a primary key in mode 'statement' (old and new rows of an UPDATE are "
            "paired on it, never on row order); add a primary key or use mode='row'",
        )
    return spec


def _virtual_columns(source: Table) -> tuple[VirtualColumnSpec, ...]:
    """Computed columns not declared ``persisted=True``: VIRTUAL on PostgreSQL 18 (on older
    servers SQLAlchemy stores them, and recomputing the expression gives the stored value)."""
    found = []
    for column in source.columns:
        computed = column.computed
        if computed is None or computed.persisted is True:
            continue
        expression = str(
            computed.sqltext.compile(
                dialect=_TYPE_DIALECT,
                compile_kwargs={"literal_binds": True, "include_table": False},
            )
        )
        try:
            check_expression(column.name, expression)
        except ValueError as error:
            raise AuditConfigurationError(source.name, column.name, str(error)) from None
        found.append(VirtualColumnSpec(name=column.name, expression=expression))
    return tuple(found)


def _check_excluded(source: Table, options: AuditOptions) -> frozenset[str]:
    excluded = frozenset(options.exclude_columns)
    names = {column.name for column in source.columns}
    unknown = [name for name in options.exclude_columns if name not in names]
    if unknown:
        raise AuditConfigurationError(
            source.name,
            "exclude_columns",
            f"names {', '.join(map(repr, unknown))}, not a column of the table",
        )
    keys = [column.name for column in source.primary_key.columns if column.name in excluded]
    if keys:
        raise AuditConfigurationError(
            source.name,
            "exclude_columns",
            f"names primary key column {keys[0]!r}: audit rows must identify their row",
        )
    if excluded and all(column.name in excluded for column in source.columns):
        raise AuditConfigurationError(
            source.name, "exclude_columns", "excludes every column (use enabled=False)"
        )
    return excluded


def _check_collisions(
    table_name: str,
    settings: tuple[SettingSpec, ...],
    captures: tuple[str, ...],
    columns: tuple[str, ...],
) -> None:
    taken = {name: "an audit column" for name in FIXED_AUDIT_COLUMNS}
    taken.update({capture_column(c): f"the {c} capture column" for c in captures})
    for setting in settings:
        if setting.column in taken:
            raise AuditConfigurationError(
                table_name,
                "session_settings",
                f"setting {setting.name!r} maps to audit column {setting.column!r}, "
                f"which is already {taken[setting.column]}",
            )
        taken[setting.column] = f"the column of setting {setting.name!r}"
    for column in columns:
        if column in taken:
            raise AuditConfigurationError(
                table_name,
                column,
                f"source column collides with {taken[column]} of the audit table; "
                "rename it or change the 'audit.column' naming convention",
            )


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
    # value, and a required setting is enforced by the trigger instead (see render.py).
    settings = [
        Column(setting_spec.column, setting.type, nullable=True)
        for setting_spec, setting in zip(spec.settings, options.session_settings, strict=True)
    ]
    mirrored = [
        mirror_column(column)
        for column in source.columns
        if column.name not in options.exclude_columns
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
