"""Declare auditing for audited tables: the one place that turns ``info`` into an audit table.

The rule: a table whose ``info`` says it is audited is audited, or declaring it raises
``AuditConfigurationError`` naming the table.  Declaration is eager when the listeners are
enabled (a table joining a MetaData) and lazy everywhere else: every entry point
(``create_all``, ``install_audit_triggers``, the Alembic comparator, ``audit``) calls
``declare_metadata`` first, which declares tables whose options were set late, tables
reflected or extended after the fact, and ``to_metadata`` copies (audited as themselves), and
brings declared tables up to date with columns added since.  Idempotent.

One pass, one stage per module: ``.options`` validates ``info`` into frozen ``AuditOptions``,
``.specify`` completes the ``AuditSpec`` against the table, ``.audit_table`` makes the
``Table`` objects; this module records the result in the table's ``info``.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from sqlalchemy import MetaData, Table

from ..errors import AuditConfigurationError, AuditError
from ..render import render
from .audit_table import (
    AUDIT_TABLE_KEY,
    CREATE_DDL_KEY,
    DROP_DDL_KEY,
    SPEC_KEY,
    complete_audit_table,
    declared_audit_table,
    is_audit_table,
    new_audit_table,
)
from .options import OPTIONS_KEY, AuditOptions, parse_options
from .spec import AuditSpec
from .specify import build_spec


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
    options = _options_to_declare(table, strict=strict)
    if options is None:
        return None
    spec = build_spec(table, options)
    audit_table = declared_audit_table(table)
    if audit_table is None:
        audit_table = new_audit_table(table, options, spec)
        # A copy: the user's info dict may be shared between tables and must stay untouched.
        table.info = {**table.info, AUDIT_TABLE_KEY: audit_table}
    else:
        complete_audit_table(table, options, spec, audit_table)
    if table.info.get(SPEC_KEY) != spec:
        _store_spec(table, spec)
    remember(table)
    return audit_table


def declared_audit(table: Table) -> tuple[AuditSpec, Table]:
    """``table``'s spec and audit table, declaring it first: the per-table APIs (purge, holds,
    seals, archive, maintenance) see a model defined before ``enable()`` as audited, as the
    entry points do.  Raises ``AuditError`` naming the table when its ``info`` does not ask for
    auditing."""
    declare_table(table, strict=True)
    spec = table.info.get(SPEC_KEY)
    audit_table = table.info.get(AUDIT_TABLE_KEY)
    if not isinstance(spec, AuditSpec) or not isinstance(audit_table, Table):
        raise AuditError(
            f"table {table.fullname!r} is not audited (no 'audit.options' with enabled=True)"
        )
    return spec, audit_table


def _options_to_declare(table: Table, *, strict: bool) -> AuditOptions | None:
    """The validated options of ``table`` if it is to be declared now, else ``None``; raises
    where its ``info`` asks for what cannot be (auditing an audit table, or, when ``strict``,
    a table without columns)."""
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
    return options


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
    if declared_audit_table(table) is not None:
        declare_table(table)


def _store_spec(table: Table, spec: AuditSpec) -> None:
    global _SPECS_STORED
    _SPECS_STORED += 1
    rendered = render(spec)
    table.info[SPEC_KEY] = spec
    table.info[CREATE_DDL_KEY] = list(rendered.install)
    table.info[DROP_DDL_KEY] = list(rendered.uninstall)


def declared_specs() -> list[AuditSpec]:
    """The specs of every audited table declared in this process and still alive."""
    specs = (table.info.get(SPEC_KEY) for table in declared_tables())
    return [spec for spec in specs if isinstance(spec, AuditSpec)]


def declared_tables() -> list[Table]:
    """Every audited table declared in this process and still alive (its spec in ``info``).

    Read on the write path (the context listener) while another thread may be declaring:
    copied under the lock, since a set growing during the copy fails it."""
    with _DECLARING:
        tables = list(_DECLARED)
    return [table for table in tables if isinstance(table.info.get(SPEC_KEY), AuditSpec)]


def specs_stored() -> int:
    """How many times a spec was stored: a cache of what is declared is stale once it grows."""
    return _SPECS_STORED


_SPECS_STORED = 0


def remember(table: Table) -> None:
    """Record ``table`` as declared (weakly: a dropped MetaData is forgotten)."""
    with _DECLARING:
        _DECLARED.add(table)


_DECLARED: weakref.WeakSet[Table] = weakref.WeakSet()
_DECLARING = threading.Lock()
