"""SQLAlchemy event hooks: declare audit tables as audited tables join a MetaData.

:func:`enable` registers two listeners, once: when a Table is attached to a MetaData its options
are parsed and its audit table declared; when a Column is appended to an audited table later, the
audit table and spec follow.  Each MetaData holding an audited table also gets ``create_all`` /
``drop_all`` hooks that install and remove the functions and triggers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, MetaData, Table, event

from .audit_table import (
    AUDIT_TABLE_KEY,
    CREATE_DDL_KEY,
    DROP_DDL_KEY,
    IS_AUDIT_TABLE_KEY,
    SPEC_KEY,
    build_spec,
    declare_audit_table,
    mirror_column,
)
from .ddl import after_metadata_create, before_metadata_drop
from .declare import remember
from .options import parse_options
from .render import render
from .spec import AuditSpec


def enable() -> None:
    """Start declaring audit tables for tables defined from now on.  Safe to call repeatedly.

    When Alembic is installed this also registers the Alembic integration.
    """
    try:
        import alembic  # noqa: F401
    except ImportError:
        pass
    else:
        from . import alembic as _alembic_integration  # noqa: F401
    if not event.contains(Table, "after_parent_attach", _on_table_attached):
        event.listen(Table, "after_parent_attach", _on_table_attached)
    if not event.contains(Column, "after_parent_attach", _on_column_attached):
        event.listen(Column, "after_parent_attach", _on_column_attached)


def _on_table_attached(table: Table, metadata: Any) -> None:
    if not isinstance(metadata, MetaData) or IS_AUDIT_TABLE_KEY in table.info:
        return
    options = parse_options(table.name, table.info)
    if options is None or not options.enabled:
        return
    spec = build_spec(table, options)
    audit_table = declare_audit_table(table, options, spec, metadata)
    # A copy: the user's info dict may be shared between tables and must stay untouched.
    table.info = {**table.info, AUDIT_TABLE_KEY: audit_table}
    _store_spec(table, spec)
    remember(table)
    if not event.contains(metadata, "after_create", after_metadata_create):
        event.listen(metadata, "after_create", after_metadata_create)
        event.listen(metadata, "before_drop", before_metadata_drop)


def _on_column_attached(column: Column[Any], table: Any) -> None:
    if not isinstance(table, Table):
        return
    spec = table.info.get(SPEC_KEY)
    audit_table = table.info.get(AUDIT_TABLE_KEY)
    if not isinstance(spec, AuditSpec) or not isinstance(audit_table, Table):
        return
    options = parse_options(table.name, table.info)
    assert options is not None
    new_spec = build_spec(table, options)  # re-checks collisions for the new column
    if column.name in new_spec.columns:
        audit_table.append_column(mirror_column(column))
    _store_spec(table, new_spec)


def _store_spec(table: Table, spec: AuditSpec) -> None:
    rendered = render(spec)
    table.info[SPEC_KEY] = spec
    table.info[CREATE_DDL_KEY] = list(rendered.install)
    table.info[DROP_DDL_KEY] = list(rendered.uninstall)
