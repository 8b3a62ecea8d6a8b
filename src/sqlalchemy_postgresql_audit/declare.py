"""Declare auditing for every audited table of a MetaData, whenever it is asked for.

Entry points (``create_all``, ``install_audit_triggers``, the Alembic comparator, the command
line) call :func:`declare_metadata` first, so a table whose ``info`` says it is audited is
declared however and whenever it was defined.  Idempotent.
"""

from __future__ import annotations

import weakref

from sqlalchemy import MetaData, Table

from .audit_table import AUDIT_TABLE_KEY, IS_AUDIT_TABLE_KEY, SPEC_KEY
from .spec import AuditSpec


def declare_metadata(metadata: MetaData) -> None:
    """Declare the audit table and spec of every audited, not yet declared table."""
    from .listeners import _on_table_attached

    for table in list(metadata.tables.values()):
        if IS_AUDIT_TABLE_KEY in table.info or AUDIT_TABLE_KEY in table.info:
            continue
        _on_table_attached(table, metadata)


def declared_specs() -> list[AuditSpec]:
    """The specs of every audited table declared in this process and still alive.

    Used to validate session settings by name and type (a keyword no audited table declares
    is a typo, not a setting).
    """
    specs = (table.info.get(SPEC_KEY) for table in list(_DECLARED))
    return [spec for spec in specs if isinstance(spec, AuditSpec)]


def remember(table: Table) -> None:
    """Record ``table`` as declared (weakly: a dropped MetaData is forgotten)."""
    _DECLARED.add(table)


_DECLARED: weakref.WeakSet[Table] = weakref.WeakSet()
