"""Retention holds: ``hold`` pauses retention of one table's history (for litigation, an
investigation), ``release`` lifts one hold.

Holds stack, as litigation holds do: each is a row with its own reason, role and time, and
retention waits while any is left.  A hold is named by its reason (the table's and the reason
are the key): it is what whoever placed it knows and wrote down, it reads the same in a
listing, on another machine and years later, and the caller keeps nothing a generated id would
need kept.  ``release`` lifts the hold of one reason and no other; a reason with no hold is an
error naming it and the holds there are.  A holds table made before holds stacked (keyed by
the table alone) is read as it is and given the wider key by the next ``hold``.

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
Both read at READ COMMITTED (``lifecycle.isolation``): at a higher level the holds would be
read with a snapshot taken before the lock was granted.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from ..declare.declaration import declared_audit
from ..declare.spec import AuditSpec
from ..errors import AuditError
from ..install.adoption import refuse_foreign_holds_table
from ..install.compare import OK, OUTDATED, Watched
from ..install.ddl import AuditDDL, _connection, resolve_spec
from ..render.partitioning import (
    HOLDS_TABLE,
    OTHER_GRANTEES,
    align_owner,
    create_holds_table,
    lock_holds_table,
    revoke_everything,
    widen_holds_key,
)
from ..render.sql import name_text
from .isolation import read_committed

#: First key of the advisory locks between ``hold`` and retention (the second is the table's).
_LOCK_CLASS = 0x484F_4C44  # "HOLD"
#: First key of the lock around the creation of a schema's holds table.
_SCHEMA_LOCK_CLASS = 0x484F_4C53  # "HOLS"

_OWNER = sa.text(
    "SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_catalog.pg_class "
    "WHERE oid = CAST(:t AS regclass)"
)

_MAY_ACT_FOR = sa.text("SELECT pg_catalog.pg_has_role(:owner, 'MEMBER')")

#: The name of a holds table's primary key when it is the audit table's name alone.
_TABLE_KEY = sa.text(
    "SELECT c.conname FROM pg_catalog.pg_constraint AS c "
    "JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
    "WHERE c.conrelid = CAST(:t AS regclass) AND c.contype = 'p' "
    "AND pg_catalog.cardinality(c.conkey) = 1 AND a.attname = 'audit_table'"
)


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
    spec, _ = declared_audit(table)
    return resolve_spec(connection, spec)


@dataclass(frozen=True)
class Hold:
    """One hold on a table's history: why, by which role, since when."""

    reason: str
    held_by: str
    held_at: datetime.datetime


#: No holds.
_NONE: tuple[Hold, ...] = ()


def hold(bind: sa.Engine | sa.Connection, table: sa.Table, reason: str) -> None:
    """Pause retention of ``table``'s history until ``release(bind, table, reason)``.

    Holds stack: each is its own row, and retention waits while any is left.  ``reason``
    names the hold (a table cannot have two with the same reason).  Run it as the audit
    table's owner, or a role that may act for it (the holds table is the owner's).  A
    retention of the table in flight is waited for: once this returns, no ``maintain`` drops
    or detaches what is left of the table's history."""
    reason = _reason(table, reason)
    with read_committed(bind, "hold") as connection:
        spec = _spec(connection, table)
        with _rights(connection, "hold", spec, _OWNER_NEEDED):
            _hold(connection, table, spec, reason)


def _hold(connection: sa.Connection, table: sa.Table, spec: AuditSpec, reason: str) -> None:
    """``hold``'s work, once it runs at READ COMMITTED."""
    _lock(connection, spec.schema, spec.audit_table, shared=False)
    owner = _owner(connection, spec)
    if not _holds_exist(connection, spec.schema):
        _lock_schema(connection, spec.schema)  # two first holds of one schema at once
        if not _holds_exist(connection, spec.schema):
            _create(connection, spec, owner)
    refuse_foreign_holds_table(connection, spec.schema, owner, grants=False)
    where = {"t": name_text(spec.schema, HOLDS_TABLE)}
    for grantee in list(connection.execute(sa.text(OTHER_GRANTEES), where).scalars()):
        connection.execute(AuditDDL(revoke_everything(spec.schema, HOLDS_TABLE, grantee)))
    refuse_foreign_holds_table(connection, spec.schema, owner)
    _widen_key(connection, spec.schema)
    for placed in _read(connection, spec.schema, spec.audit_table):
        if placed.reason == reason:
            raise AuditError(
                f"hold: retention of {table.fullname!r} is already held for {reason!r} "
                f"(by {placed.held_by} since {placed.held_at.isoformat()}); give another "
                "reason for another hold"
            )
    holds = _holds(spec.schema)
    connection.execute(sa.insert(holds).values(audit_table=spec.audit_table, reason=reason))


def release(bind: sa.Engine | sa.Connection, table: sa.Table, reason: str) -> None:
    """Lift the hold of ``table`` placed for ``reason``, and only that one: retention runs
    again once no other hold is left.  ``AuditError``, naming the table, the reason and the
    holds there are, when the table has no hold for ``reason``."""
    reason = _reason(table, reason)
    with read_committed(bind, "release") as connection:
        spec = _spec(connection, table)
        lifted, left = 0, _NONE
        if _holds_exist(connection, spec.schema):
            with _rights(connection, "release", spec, _OWNER_NEEDED):
                refuse_foreign_holds_table(connection, spec.schema, _owner(connection, spec))
                holds = _holds(spec.schema)
                lifted = connection.execute(
                    sa.delete(holds).where(
                        holds.c.audit_table == spec.audit_table, holds.c.reason == reason
                    )
                ).rowcount
                left = _read(connection, spec.schema, spec.audit_table)
        if not lifted:
            there = ", ".join(repr(h.reason) for h in left) or "none"
            raise AuditError(
                f"release: {table.fullname!r} has no hold for {reason!r} (its holds: {there})"
            )


def holds_of(bind: sa.Engine | sa.Connection, table: sa.Table) -> tuple[Hold, ...]:
    """The holds on ``table``'s history, oldest first (none: retention applies)."""
    with _connection(bind) as connection:
        spec = _spec(connection, table)
        if not _holds_exist(connection, spec.schema):
            return ()
        with _rights(connection, "holds_of", spec, _READER_NEEDED):
            refuse_foreign_holds_table(connection, spec.schema, _owner(connection, spec))
            return _read(connection, spec.schema, spec.audit_table)


def held_reason(connection: sa.Connection, schema: str | None, audit_table: str) -> str | None:
    """The reasons of the holds on ``audit_table`` (``"; "`` between them), or ``None``;
    called by retention once it has its locks, it keeps ``hold`` of the table waiting until
    the transaction ends.  Raises, naming the holds table, when that table is not the
    library's."""
    _lock(connection, schema, audit_table, shared=True)
    if not _holds_exist(connection, schema):
        return None
    owner = connection.execute(_OWNER, {"t": name_text(schema, audit_table)}).scalar_one()
    refuse_foreign_holds_table(connection, schema, owner)
    found = _read(connection, schema, audit_table)
    return "; ".join(h.reason for h in found) if found else None


def holds_watched(connection: sa.Connection, schema: str | None, audit_table: str) -> Watched:
    """``check``'s view of the table's holds: ``ok`` with each hold (retention paused while
    any is left), or ``outdated`` when the holds table is not the library's, with why."""
    try:
        with connection.begin_nested():
            found = _NONE
            if _holds_exist(connection, schema):
                owner = connection.execute(_OWNER, {"t": name_text(schema, audit_table)})
                refuse_foreign_holds_table(connection, schema, owner.scalar_one())
                found = _read(connection, schema, audit_table)
    except sa.exc.DBAPIError as refused:
        return Watched("holds", audit_table, OUTDATED, (str(refused.orig).splitlines()[0],))
    held = ", ".join(f"{h.reason!r} (by {h.held_by} since {h.held_at.isoformat()})" for h in found)
    return Watched("holds", audit_table, OK, (f"retention held: {held}",) if found else ())


def _reason(table: sa.Table, reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"reason must say why history of {table.fullname!r} is held")
    return reason.strip()


def _read(connection: sa.Connection, schema: str | None, audit_table: str) -> tuple[Hold, ...]:
    """Both shapes of the holds table are read alike: before holds stacked, a table had one."""
    holds = _holds(schema)
    rows = connection.execute(
        sa.select(holds.c.reason, holds.c.held_by, holds.c.held_at)
        .where(holds.c.audit_table == audit_table)
        .order_by(holds.c.held_at, holds.c.reason)
    )
    return tuple(Hold(str(r.reason), str(r.held_by), r.held_at) for r in rows)


def _widen_key(connection: sa.Connection, schema: str | None) -> None:
    """Give a holds table keyed by audit table alone (made before holds stacked) the key of
    audit table and reason, in place; looked at again under the table's lock, so that two
    ``hold`` calls of different tables do not both change it."""
    where = {"t": name_text(schema, HOLDS_TABLE)}
    if connection.execute(_TABLE_KEY, where).scalar() is None:
        return
    connection.execute(AuditDDL(lock_holds_table(schema)))
    constraint = connection.execute(_TABLE_KEY, where).scalar()
    if constraint is not None:
        connection.execute(AuditDDL(widen_holds_key(schema, str(constraint))))


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


def _lock(connection: sa.Connection, schema: str | None, audit_table: str, *, shared: bool) -> None:
    """Retention of the table (shared) and ``hold`` of it (exclusive) exclude each other until
    their transactions end."""
    name = f"{schema}.{audit_table}"
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)
    take = sa.func.pg_advisory_xact_lock_shared if shared else sa.func.pg_advisory_xact_lock
    connection.execute(sa.select(take(_LOCK_CLASS, key)))


_OWNER_NEEDED = "run it as {owner!r}, the audit table's owner, or a role that is a member of it"
_READER_NEEDED = (
    "reading them needs SELECT on it, which {owner!r}, the audit table's owner, may grant, "
    "or membership in {owner!r}"
)


@contextlib.contextmanager
def _rights(connection: sa.Connection, what: str, spec: AuditSpec, needs: str) -> Iterator[None]:
    """A refusal of the holds table's rights as an error naming the role and what it needs
    (the holds table is the owner's alone, granted to nobody)."""
    role = connection.execute(sa.select(sa.func.current_user())).scalar_one()
    owner = _owner(connection, spec)  # read now: after a refusal the transaction is aborted
    try:
        yield
    except sa.exc.DBAPIError as error:
        state = getattr(error.orig, "pgcode", None) or getattr(error.orig, "sqlstate", None)
        if state != "42501":  # insufficient_privilege
            raise
        raise AuditError(
            f"{what}: role {role!r} may not use the holds table "
            f"{name_text(spec.schema, HOLDS_TABLE)} of {spec.audit_table!r}: "
            + needs.format(owner=owner)
        ) from error


def _lock_schema(connection: sa.Connection, schema: str | None) -> None:
    """Until the transaction ends: the holds table of ``schema`` is created by one ``hold`` at
    a time (the table locks are per audit table); the next one finds it made."""
    name = f"{schema}.{HOLDS_TABLE}"
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)
    connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_CLASS, key)))


def _holds_exist(connection: sa.Connection, schema: str | None) -> bool:
    found = connection.execute(
        sa.select(sa.func.to_regclass(name_text(schema, HOLDS_TABLE)))
    ).scalar()
    return found is not None
