"""Retention holds: ``hold`` pauses retention of one table's history (for litigation, an
investigation), ``release`` lets it run again.

Holds are rows of a small table next to the audit tables, created by the first ``hold``, owned
by the audit table's owner and granted to nobody, so that writers, who cannot touch it, cannot
lift a hold.  A holds table that is not the library's (someone else owns it, or it has a
trigger, a policy, a rule, another column, or another role may change it) is refused by every
call that would read or write it, naming it: a writer could otherwise plant one whose trigger
runs as whoever places a hold, or lift holds at will (``install.adoption``).

``maintain``'s retention reads the holds (``held_reason``) after taking its locks, and keeps a
shared lock of the table's holds until it commits; ``hold`` takes that lock exclusively first.
So a hold placed while retention is in flight waits for it to finish, and returns only when
nothing the hold covers can still be dropped; a retention starting after it sees the hold.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from ..declare.audit_table import AUDIT_TABLE_KEY, SPEC_KEY
from ..declare.spec import AuditSpec
from ..errors import AuditError
from ..install.adoption import refuse_foreign_holds_table
from ..install.ddl import AuditDDL, _connection, resolve_spec
from ..render.partitioning import (
    HOLDS_TABLE,
    OTHER_GRANTEES,
    align_owner,
    create_holds_table,
    revoke_everything,
)
from ..render.sql import name_text

#: First key of the advisory locks between ``hold`` and retention (the second is the table's).
_LOCK_CLASS = 0x484F_4C44  # "HOLD"

_OWNER = sa.text(
    "SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_catalog.pg_class "
    "WHERE oid = CAST(:t AS regclass)"
)

_MAY_ACT_FOR = sa.text("SELECT pg_catalog.pg_has_role(:owner, 'MEMBER')")


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
    """Pause retention of ``table``'s history until ``release``; ``reason`` is recorded.

    Run it as the audit table's owner, or a role that may act for it (the holds table is
    the owner's).  A retention of the table in flight is waited for: once this returns, no
    ``maintain`` drops or detaches what is left of the table's history."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"reason must say why history of {table.fullname!r} is held")
    with _connection(bind) as connection:
        spec = _spec(connection, table)
        _lock(connection, spec.schema, spec.audit_table, shared=False)
        owner = _owner(connection, spec)
        if not _holds_exist(connection, spec.schema):
            _create(connection, spec, owner)
        refuse_foreign_holds_table(connection, spec.schema, owner, grants=False)
        where = {"t": name_text(spec.schema, HOLDS_TABLE)}
        for grantee in list(connection.execute(sa.text(OTHER_GRANTEES), where).scalars()):
            connection.execute(AuditDDL(revoke_everything(spec.schema, HOLDS_TABLE, grantee)))
        refuse_foreign_holds_table(connection, spec.schema, owner)
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
        refuse_foreign_holds_table(connection, spec.schema, _owner(connection, spec))
        holds = _holds(spec.schema)
        lifted = connection.execute(sa.delete(holds).where(holds.c.audit_table == spec.audit_table))
        return bool(lifted.rowcount)


def held_reason(connection: sa.Connection, schema: str | None, audit_table: str) -> str | None:
    """The reason of the hold on ``audit_table``, or ``None``; called by retention once it has
    its locks, it keeps ``hold`` of the table waiting until the transaction ends.  Raises,
    naming the holds table, when that table is not the library's."""
    _lock(connection, schema, audit_table, shared=True)
    if not _holds_exist(connection, schema):
        return None
    owner = connection.execute(_OWNER, {"t": name_text(schema, audit_table)}).scalar_one()
    refuse_foreign_holds_table(connection, schema, owner)
    holds = _holds(schema)
    found = connection.execute(
        sa.select(holds.c.reason).where(holds.c.audit_table == audit_table)
    ).scalar()
    return None if found is None else str(found)


def _create(connection: sa.Connection, spec: AuditSpec, owner: str) -> None:
    """The holds table, given to the audit table's owner."""
    if not connection.execute(_MAY_ACT_FOR, {"owner": owner}).scalar_one():
        raise AuditError(
            f"hold: the holds table of {spec.audit_table!r} would be made by a role that "
            f"cannot act for {owner!r}, the audit table's owner; run hold as that role"
        )
    connection.execute(AuditDDL(create_holds_table(spec.schema)))
    connection.execute(AuditDDL(align_owner(spec.schema, HOLDS_TABLE, owner)))


def _owner(connection: sa.Connection, spec: AuditSpec) -> str:
    found = connection.execute(_OWNER, {"t": name_text(spec.schema, spec.audit_table)})
    return str(found.scalar_one())


def _lock(
    connection: sa.Connection, schema: str | None, audit_table: str, *, shared: bool
) -> None:
    """Retention of the table (shared) and ``hold`` of it (exclusive) exclude each other until
    their transactions end."""
    name = f"{schema}.{audit_table}"
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)
    take = sa.func.pg_advisory_xact_lock_shared if shared else sa.func.pg_advisory_xact_lock
    connection.execute(sa.select(take(_LOCK_CLASS, key)))


def _holds_exist(connection: sa.Connection, schema: str | None) -> bool:
    found = connection.execute(
        sa.select(sa.func.to_regclass(name_text(schema, HOLDS_TABLE)))
    ).scalar()
    return found is not None
