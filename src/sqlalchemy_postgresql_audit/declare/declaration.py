"""Declare auditing for audited tables: the one place that turns ``info`` into an audit table.

The rule: a table whose ``info`` says it is audited is audited, or declaring it raises
``AuditConfigurationError`` naming the table.  Declaration is eager when the listeners are
enabled (a table joining a MetaData) and lazy everywhere else: every entry point
(``create_all``, ``install_audit_triggers``, the Alembic comparator, ``audit``) calls
``declare_metadata`` first, which declares tables whose options were set late, tables
reflected or extended after the fact, and ``to_metadata`` copies (audited as themselves), and
brings declared tables up to date with columns added since.  Idempotent.
"""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import MetaData, Table

from ..errors import AuditConfigurationError
from ..render import render
from .audit_table import (
    AUDIT_TABLE_KEY,
    CREATE_DDL_KEY,
    DROP_DDL_KEY,
    IS_AUDIT_TABLE_KEY,
    PARTITIONING_KEY,
    SPEC_KEY,
    add_history_index,
    audit_columns,
    build_spec,
    declare_audit_table,
    is_audit_table,
    partitioning_of,
    source_name,
)
from .options import OPTIONS_KEY, AuditOptions, parse_options
from .spec import FIXED_AUDIT_COLUMNS, AuditSpec

#: PostgreSQL's limit on the columns of a table.
MAX_COLUMNS = 1600


def declare_metadata(metadata: MetaData) -> None:
    """Declare (or bring up to date) every audited table of ``metadata``.

    Raises for an audited table that cannot be audited, including one that still has no
    columns (a ``DeferredReflection`` class whose ``prepare()`` has not run).
    """
    for table in list(metadata.tables.values()):
        declare_table(table, strict=True)


def declare_table(table: Table, *, strict: bool = False) -> Table | None:
    """Declare ``table``'s audit table if its ``info`` asks for one; return the audit table.

    Without ``strict`` (a table just joining its MetaData), a table without columns yet is left
    for later: reflection fills it in, and the checks that need its columns (primary key,
    ``exclude_columns``) would fail before that.
    """
    options = parse_options(table.name, table.info)
    if is_audit_table(table):
        if options is not None and options.enabled:
            raise AuditConfigurationError(
                table.name,
                OPTIONS_KEY,
                "enables auditing of an audit table (audit tables record history and are not "
                "audited themselves; skip tables for which is_audit_table(table) is true)",
            )
        return None
    if options is None or not options.enabled:
        return None
    if not table.columns:
        if strict:
            raise AuditConfigurationError(
                table.name,
                OPTIONS_KEY,
                "enables auditing of a table that has no columns (reflect it first, e.g. "
                "DeferredReflection.prepare())",
            )
        return None
    spec = build_spec(table, options)
    _check_width(table, spec)
    audit_table = _declared_audit_table(table)
    if audit_table is None:
        audit_table = _audit_table_for(table, options, spec)
        # A copy: the user's info dict may be shared between tables and must stay untouched.
        table.info = {**table.info, AUDIT_TABLE_KEY: audit_table}
    else:
        _complete(table, options, spec, audit_table)
    if table.info.get(SPEC_KEY) != spec:
        _store_spec(table, spec)
    remember(table)
    return audit_table


def audit(table: Table, **options: Any) -> Table:
    """Audit ``table`` without editing its definition; returns its audit table.

    For tables you do not own (third-party models, a reflected legacy schema): ``options`` are
    the ``info["audit.options"]`` keys (``enabled`` defaults to True) and replace any declared
    there.  ``table.info`` is replaced by a copy, so a dict shared with other tables is not
    modified.  ``create_all`` then creates its audit table and installs its triggers
    (``install_audit_triggers`` installs triggers only, once the audit table exists).
    """
    table.info = {**table.info, OPTIONS_KEY: {"enabled": True, **options}}
    audit_table = declare_table(table, strict=True)
    if audit_table is None:
        raise AuditConfigurationError(table.name, "enabled", "is False: nothing to audit")
    return audit_table


def on_column_attached(table: Table) -> None:
    """A column joined ``table``: a declared audit table and spec follow it."""
    if _declared_audit_table(table) is not None:
        declare_table(table)


def _declared_audit_table(table: Table) -> Table | None:
    """The audit table declared for ``table`` itself, or ``None``.

    ``info`` can hold another table's declaration: ``to_metadata`` copies ``info`` whole, so a
    copy (in another MetaData or schema) would install for the original.  Such a table is
    declared afresh.
    """
    spec = table.info.get(SPEC_KEY)
    audit_table = table.info.get(AUDIT_TABLE_KEY)
    if not isinstance(spec, AuditSpec) or not isinstance(audit_table, Table):
        return None
    if (spec.table, spec.schema) != (table.name, table.schema):
        return None
    if table.metadata.tables.get(audit_table.key) is not audit_table:
        return None
    return audit_table


def _audit_table_for(table: Table, options: AuditOptions, spec: AuditSpec) -> Table:
    """Declare the audit table, or adopt the one the MetaData already holds under its name
    (reflected from the database, or declared for this table before its ``info`` was
    replaced)."""
    key = f"{table.schema}.{spec.audit_table}" if table.schema else spec.audit_table
    existing = table.metadata.tables.get(key)
    if existing is None:
        return declare_audit_table(table, options, spec, table.metadata)
    owner = existing.info.get(IS_AUDIT_TABLE_KEY)
    # A copy made with to_metadata(schema=...) still names the original's schema.
    if not is_audit_table(existing) or (
        owner is not None and str(owner).rpartition(".")[2] != table.name
    ):
        raise AuditConfigurationError(
            table.name,
            "audit.table",
            f"names {key!r} for the audit table, but the MetaData already has a table of that "
            "name that is not this table's audit table (change the 'audit.table' naming "
            "convention)",
        )
    existing.info = {**existing.info, IS_AUDIT_TABLE_KEY: source_name(table)}
    partitioning = partitioning_of(options)
    if partitioning is not None:
        existing.info[PARTITIONING_KEY] = partitioning
    _complete(table, options, spec, existing)
    return existing


def _complete(table: Table, options: AuditOptions, spec: AuditSpec, audit_table: Table) -> None:
    """Add the columns (and index) ``audit_table`` lacks: ones added to the source since it was
    declared, or that a reflected audit table does not have yet (installing then checks the
    database has them)."""
    for column in audit_columns(table, options, spec):
        if column.name not in audit_table.c:
            audit_table.append_column(column)
    add_history_index(table, options, spec, audit_table)


def _check_width(table: Table, spec: AuditSpec) -> None:
    width = len(FIXED_AUDIT_COLUMNS) + len(spec.captures) + len(spec.settings) + len(spec.columns)
    if width > MAX_COLUMNS:
        raise AuditConfigurationError(
            table.name,
            "columns",
            f"are too many to audit: audit table {spec.audit_table!r} would have {width} "
            f"columns, more than PostgreSQL's limit of {MAX_COLUMNS}; leave some out with "
            "'exclude_columns'",
        )


def _store_spec(table: Table, spec: AuditSpec) -> None:
    global _SPECS_STORED
    _SPECS_STORED += 1
    rendered = render(spec)
    table.info[SPEC_KEY] = spec
    table.info[CREATE_DDL_KEY] = list(rendered.install)
    table.info[DROP_DDL_KEY] = list(rendered.uninstall)


def declared_specs() -> list[AuditSpec]:
    """The specs of every audited table declared in this process and still alive.

    Used to validate session settings by name and type (a keyword no audited table declares
    is a typo, not a setting).
    """
    specs = (table.info.get(SPEC_KEY) for table in declared_tables())
    return [spec for spec in specs if isinstance(spec, AuditSpec)]


def declared_tables() -> list[Table]:
    """Every audited table declared in this process and still alive (its spec in ``info``)."""
    return [table for table in list(_DECLARED) if isinstance(table.info.get(SPEC_KEY), AuditSpec)]


def specs_stored() -> int:
    """How many times a spec was stored: a cache of what is declared is stale once it grows."""
    return _SPECS_STORED


_SPECS_STORED = 0


def remember(table: Table) -> None:
    """Record ``table`` as declared (weakly: a dropped MetaData is forgotten)."""
    _DECLARED.add(table)


_DECLARED: weakref.WeakSet[Table] = weakref.WeakSet()
