"""Stage 2 of declaring: the complete ``AuditSpec`` of an audited table, from its validated
options and its columns.

Every check that needs the table itself (its columns, primary key, partitioning, names) is made
here, so that a spec that leaves this module can be installed: errors name the table and the key.
Options come from ``.options`` (stage 1); the ``Table`` objects are made from the spec by
``.audit_table`` (stage 3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Integer,
    Interval,
    LargeBinary,
    Numeric,
    String,
    Table,
    Time,
    Uuid,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.type_api import to_instance
from sqlalchemy.types import Float, TypeDecorator, TypeEngine

from ..errors import AuditConfigurationError
from . import naming
from .options import AuditOptions, CaptureMode, ReplicaIdentity
from .spec import (
    FIXED_AUDIT_COLUMNS,
    AuditSpec,
    RedactedColumn,
    SettingSpec,
    TriggerSpec,
    VirtualColumnSpec,
    capture_column,
    check_expression,
)

#: PostgreSQL's limit on the columns of a table.
MAX_COLUMNS = 1600

_TYPE_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def build_spec(source: Table, options: AuditOptions) -> AuditSpec:
    """The complete spec of ``source``: names, columns, settings and triggers, checked.

    Raises ``AuditConfigurationError`` for whatever the table cannot be audited with: a name
    PostgreSQL would read differently, an excluded column that is not there or is a key, a
    column colliding with an audit column, statement mode where it would miss rows, an UPDATE
    pairing without a primary key, more columns than PostgreSQL allows.
    """
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
    redacted = _check_redacted(source, options)
    omitted = {r.name for r in redacted if r.form == "omit"}
    columns = tuple(
        column.name
        for column in source.columns
        if column.name not in excluded and column.name not in omitted
    )
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
        replica_identity_full=options.cdc and _replica_identity(source, options) == "full",
        redacted=redacted,
    )
    if spec.pairs_updates and not spec.key_columns:
        raise AuditConfigurationError(
            source.name,
            "exclude_columns"
            if options.exclude_columns
            else "skip_unchanged"
            if options.skip_unchanged
            else "redact"
            if options.redact
            else "capture",
            "needs a primary key in mode 'statement' (old and new rows of an UPDATE are "
            "paired on it, never on row order); add a primary key or use mode='row'",
        )
    _check_width(source, spec)
    return spec


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


def _replica_identity(source: Table, options: AuditOptions) -> ReplicaIdentity:
    """Where the decoder finds a CDC table's old rows: as declared, else from the trail
    (``default``) where that can work, else from the WAL (``full``).

    The trail can give them only when its rows are found by a key PostgreSQL logs (a primary key
    that is not deferrable: PostgreSQL takes only immediate ones as replica identity) and it
    holds each row's versions from its INSERT on: without INSERT among the operations the
    decoder would meet rows it never saw.
    """
    if not source.primary_key.columns:
        problem = "the table has no primary key"
    elif source.primary_key.deferrable:
        problem = "its primary key is deferrable, which PostgreSQL does not take as identity"
    elif "INSERT" not in options.operations:
        problem = (
            "INSERT is not among its operations, so the trail never holds the versions old "
            "rows are rebuilt from"
        )
    else:
        problem = ""
    if options.replica_identity == "default" and problem:
        raise AuditConfigurationError(
            source.name,
            "replica_identity",
            f"is 'default' (old rows rebuilt from the trail), which cannot work here: "
            f"{problem}; use 'full' (old rows from the WAL) or leave it out",
        )
    return options.replica_identity or ("full" if problem else "default")


def _check_redacted(source: Table, options: AuditOptions) -> tuple[RedactedColumn, ...]:
    """The redacted columns in the table's column order, after checking each: it exists, is
    not part of the primary key, and, to be hashed, has a text form that is the same in every
    session (see ``HASHABLE_TYPES``)."""
    forms = dict(options.redact)
    if options.redact and options.cdc:
        raise AuditConfigurationError(
            source.name,
            "redact",
            "is not supported with mode='cdc': the values travel through the WAL in clear, "
            "the decoder would record them as they are, and a replica on the target (design 1) "
            "would hold them too.  To redact, keep the table in a trigger mode "
            "(mode='statement' or 'row'); to keep a column out of the audit table of a CDC "
            "table, list it in 'exclude_columns' (design 1's replica still holds it)",
        )
    for name, form in options.redact:
        column = source.columns.get(name)
        if column is None:
            raise AuditConfigurationError(
                source.name, "redact", f"names {name!r}, not a column of the table"
            )
        if column.primary_key:
            raise AuditConfigurationError(
                source.name,
                "redact",
                f"names primary key column {name!r}: audit rows must identify their row",
            )
        if form == "hash" and not hashable_type(column.type):
            raise AuditConfigurationError(
                source.name,
                "redact",
                f"column {name!r}: 'hash' digests the value's text form, and the text form "
                f"of {column.type} {_unstable_text_reason(column.type)}, so equal values "
                "could hash apart; use 'mask' or 'omit'",
            )
    return tuple(
        RedactedColumn(name=column.name, form=forms[column.name])
        for column in source.columns
        if column.name in forms
    )


def _unstable_text_reason(type_: TypeEngine[Any]) -> str:
    """Why the text form of a type ``hash`` refuses is not one text per value."""
    if isinstance(type_, TypeDecorator):
        return _unstable_text_reason(type_.impl_instance)
    if isinstance(type_, postgresql.DOMAIN):
        return _unstable_text_reason(to_instance(type_.data_type))
    if isinstance(type_, Float):
        return "depends on the writer's extra_float_digits setting"
    if isinstance(type_, postgresql.JSONB):
        return "keeps each number as written (1.0 and 1.00 are equal values with two texts)"
    if isinstance(type_, JSON):
        return "is the text as the writer sent it (its spacing and key order)"
    if isinstance(type_, (Date, Time, DateTime, Interval)):
        return "depends on the writer's DateStyle, TimeZone or IntervalStyle setting"
    if isinstance(type_, postgresql.MONEY):
        return "depends on the writer's lc_monetary setting"
    if isinstance(type_, LargeBinary):
        return "depends on the writer's bytea_output setting"
    return "is not known to be one text per value in every session"


#: Types whose text output does not depend on session settings, so that ``hash`` digests the
#: same text for the same value in every session: strings (enums included), integers, exact
#: numerics, booleans, UUIDs and network addresses.  Dates and times (DateStyle, TimeZone),
#: intervals, floats, bytea, money and JSON are left out.
HASHABLE_TYPES: tuple[type[TypeEngine[Any]], ...] = (
    String,
    Integer,
    Numeric,
    Boolean,
    Uuid,
    postgresql.INET,
    postgresql.CIDR,
)


def hashable_type(type_: TypeEngine[Any]) -> bool:
    if isinstance(type_, TypeDecorator):
        return hashable_type(type_.impl_instance)
    if isinstance(type_, postgresql.DOMAIN):
        return hashable_type(to_instance(type_.data_type))
    if isinstance(type_, (Float, postgresql.MONEY)):
        return False
    return isinstance(type_, HASHABLE_TYPES)


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


def _check_width(source: Table, spec: AuditSpec) -> None:
    width = len(FIXED_AUDIT_COLUMNS) + len(spec.captures) + len(spec.settings) + len(spec.columns)
    if width > MAX_COLUMNS:
        raise AuditConfigurationError(
            source.name,
            "columns",
            f"are too many to audit: audit table {spec.audit_table!r} would have {width} "
            f"columns, more than PostgreSQL's limit of {MAX_COLUMNS}; leave some out with "
            "'exclude_columns'",
        )
