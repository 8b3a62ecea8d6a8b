"""Declare auditing for every audited table of a MetaData, whenever it is asked for.

Entry points (``create_all``, ``install_audit_triggers``, the Alembic comparator, the command
line) call :func:`declare_metadata` first, so a table whose ``info`` says it is audited is
declared however and whenever it was defined.  Idempotent.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from .audit_table import AUDIT_TABLE_KEY, IS_AUDIT_TABLE_KEY


def declare_metadata(metadata: MetaData) -> None:
    """Declare the audit table and spec of every audited, not yet declared table."""
    from .listeners import _on_table_attached

    for table in list(metadata.tables.values()):
        if IS_AUDIT_TABLE_KEY in table.info or AUDIT_TABLE_KEY in table.info:
            continue
        _on_table_attached(table, metadata)
