"""SQLAlchemy event hooks: thin adapters onto ``.declare.declaration`` and ``.install.ddl``.

``create_all`` / ``drop_all`` hooks are registered on the MetaData *class* when the package is
imported, so they fire for every MetaData, also ones created before (models imported first, an
engine plugin loaded later); the create hook declares whatever is still undeclared, so the
order of imports does not matter.  ``enable`` adds, once per process, a Table listener
declaring audit tables as audited tables join a MetaData, and a Column listener keeping declared
audit tables up to date.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, MetaData, Table, event

from .context.required import register_required_check
from .declare.declaration import declare_table, on_column_attached
from .install.ddl import after_metadata_create, before_metadata_create, before_metadata_drop
from .install.runtime_check import register_runtime_check
from .lifecycle.maintenance import on_table_created
from .lifecycle.partman import on_table_dropping


def enable() -> None:
    """Start auditing tables whose ``info`` asks for it.  Safe to call repeatedly.

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
    register_metadata_hooks()


def register_metadata_hooks() -> None:
    """Install auditing from every ``create_all`` and remove it in ``drop_all``, and refuse
    writes to audited tables whose triggers are not installed, and writes to CDC tables
    without their required settings.  Idempotent."""
    if not event.contains(MetaData, "before_create", before_metadata_create):
        event.listen(MetaData, "before_create", before_metadata_create)
        event.listen(MetaData, "after_create", after_metadata_create)
        event.listen(MetaData, "before_drop", before_metadata_drop)
    if not event.contains(Table, "after_create", on_table_created):
        event.listen(Table, "after_create", on_table_created)
    if not event.contains(Table, "before_drop", on_table_dropping):
        event.listen(Table, "before_drop", on_table_dropping)
    register_runtime_check()
    register_required_check()


def _on_table_attached(table: Table, metadata: Any) -> None:
    if isinstance(metadata, MetaData):
        declare_table(table)


def _on_column_attached(column: Column[Any], table: Any) -> None:
    if isinstance(table, Table):
        on_column_attached(table)
