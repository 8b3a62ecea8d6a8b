"""Retention holds: ``hold`` pauses retention of one table's history (for litigation, an
investigation), ``release`` lets it run again.

Holds are rows of a small table next to the audit tables, created by the first ``hold`` and
granted to nobody, so that writers, who cannot touch it, cannot lift a hold.  ``maintain``
reads it before dropping anything.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..declare.audit_table import AUDIT_TABLE_KEY, SPEC_KEY
from ..declare.spec import AuditSpec
from ..errors import AuditError
from ..install.ddl import AuditDDL, _connection, resolve_spec
from ..render.partitioning import HOLDS_TABLE, create_holds_table, revoke_holds_table
from ..render.sql import name_text


def _holds(schema: str | None) -> sa.TableClause:
    return sa.table(
        HOLDS_TABLE,
        sa.column("audit_table"),
        sa.column("reason"),
        sa.column("held_by"),
        sa.column("held_at"),
        schema=schema,
    )


def _spec(connection: sa.Connection, table: sa.Table) -> AuditSpec:
    spec = table.info.get(SPEC_KEY)
    if not isinstance(spec, AuditSpec) or AUDIT_TABLE_KEY not in table.info:
        raise AuditError(f"table {table.fullname!r} is not audited")
    return resolve_spec(connection, spec)


def hold(bind: sa.Engine | sa.Connection, table: sa.Table, reason: str) -> None:
    """Pause retention of ``table``'s history until ``release``; ``reason`` is recorded."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"reason must say why history of {table.fullname!r} is held")
    with _connection(bind) as connection:
        spec = _spec(connection, table)
        connection.execute(AuditDDL(create_holds_table(spec.schema)))
        connection.execute(AuditDDL(revoke_holds_table(spec.schema)))
        holds = _holds(spec.schema)
        connection.execute(sa.delete(holds).where(holds.c.audit_table == spec.audit_table))
        connection.execute(
            sa.insert(holds).values(audit_table=spec.audit_table, reason=reason.strip())
        )


def release(bind: sa.Engine | sa.Connection, table: sa.Table) -> bool:
    """Let retention of ``table``'s history run again; whether a hold was lifted."""
    with _connection(bind) as connection:
        spec = _spec(connection, table)
        if not _holds_exist(connection, spec.schema):
            return False
        holds = _holds(spec.schema)
        lifted = connection.execute(sa.delete(holds).where(holds.c.audit_table == spec.audit_table))
        return bool(lifted.rowcount)


def held_reason(connection: sa.Connection, schema: str | None, audit_table: str) -> str | None:
    """The reason of the hold on ``audit_table``, or ``None``."""
    if not _holds_exist(connection, schema):
        return None
    holds = _holds(schema)
    found = connection.execute(
        sa.select(holds.c.reason).where(holds.c.audit_table == audit_table)
    ).scalar()
    return None if found is None else str(found)


def _holds_exist(connection: sa.Connection, schema: str | None) -> bool:
    found = connection.execute(
        sa.select(sa.func.to_regclass(name_text(schema, HOLDS_TABLE)))
    ).scalar()
    return found is not None
