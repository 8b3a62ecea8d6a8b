"""Convert an unpartitioned audit table that already holds history to a partitioned one,
without copying a row, and back.

The existing table becomes the first partition, holding everything until the end of the
period after tomorrow's start (so that writes keep fitting it while the conversion runs), in
three steps, each its own transaction on an Engine:

1. ``prepare``: a check constraint stating exactly that bound, ``NOT VALID``: ACCESS EXCLUSIVE
   on the audit table for a moment (no scan); writers' rows keep satisfying it.
2. ``validate``: ``VALIDATE CONSTRAINT`` scans the table under SHARE UPDATE EXCLUSIVE, which
   writers' ROW EXCLUSIVE does not conflict with: they keep writing during the scan.
3. ``finish``: ACCESS EXCLUSIVE on the audit table for catalog work only: it is renamed to the
   partition's name, the partitioned parent is created under the audit table's name with its
   columns, identity (restarted past the old one), indexes, owner, rights and comment, and the
   old table is attached; ``ATTACH`` finds its bound implied by the validated constraint and
   skips its scan, and adopts its indexes, which match the parent's.  The audit function
   names the audit table, so its next write goes through the parent.

On a Connection everything runs in the caller's transaction, so the validation scan happens
under the lock of step 1: writers wait for the whole conversion.

Step 1's bound is a moment that passes: a conversion that dies after it leaves a constraint
that will refuse every write once the bound is reached.  The three steps hold the audit table's
turn (``maintain``'s advisory lock); ``check`` reports such a leftover by name, ``maintain``
removes it (it cannot be a conversion still running: that would hold the turn) and says how to
finish, and running the conversion again finishes it (step 1 replaces the constraint).

``unpartition`` reverses it, keeping every row: the first partition is detached and becomes
the audit table again, and the rows written since (the only rows copied) are copied into it.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from ..declare.audit_table import PARTITIONING_KEY, Partitioning
from ..declare.declaration import declared_audit
from ..declare.options import PartitionInterval
from ..declare.spec import AUDIT_ID, AuditSpec
from ..errors import AuditError
from ..install.ddl import AuditDDL, _connection, resolve_spec
from ..render import conversion as sql
from ..render.guard import GUARD_TRIGGER, PURGE_MARKER_TRIGGER, render_append_only_guard
from ..render.partitioning import (
    align_owner,
    default_partition,
    detach_partition,
    guard_partition,
)
from ..render.sql import drop_trigger, name_text
from . import partman
from .drain import stored_columns
from .maintenance import give_default_partition, keep_to_owner
from .partition_catalog import partition_comment, range_partitions
from .periods import bound_text, moment_of, period_of
from .turns import turn_key


@dataclass(frozen=True, slots=True, kw_only=True)
class Converted:
    """What converting one audit table did."""

    audit_table: str
    #: The old table, now the partition holding everything until ``until``.
    partition: str
    until: datetime.datetime


def partition_audit_table(
    bind: sa.Engine | sa.Connection, table: sa.Table, *, at: datetime.datetime | None = None
) -> Converted:
    """Convert the existing, unpartitioned audit table of ``table`` (declared with
    ``partition``) to a partitioned one, keeping its rows where they are.  Run ``maintain``
    afterwards to create the partitions ahead."""
    spec, audit_table = declared_audit(table)
    partitioning = audit_table.info.get(PARTITIONING_KEY)
    if not isinstance(partitioning, Partitioning):
        raise AuditError(f"table {table.fullname!r} is not audited with the 'partition' option")
    with _connection(bind) as connection:
        spec = resolve_spec(connection, spec)
        _refuse_a_passed_bound(connection, spec, partitioning.interval, at)
    with turn_held(bind, spec):
        with _connection(bind) as connection:
            until = prepare(connection, spec, partitioning.interval, at)
        try:
            with _connection(bind) as connection:
                validate(connection, spec)
        except sa.exc.DBAPIError as error:
            raise _undo_prepare(bind, spec, until, error) from error
        with _connection(bind) as connection:
            return finish(connection, spec, until)


def _first_bound(at: datetime.datetime | None, interval: PartitionInterval) -> datetime.datetime:
    """The end of the period after ``at``'s next day: writes keep fitting the first partition
    while the conversion runs."""
    moment = moment_of(at, "partition_audit_table")
    return period_of(moment + datetime.timedelta(days=1), interval).upper


def _refuse_a_passed_bound(
    connection: sa.Connection,
    spec: AuditSpec,
    interval: PartitionInterval,
    at: datetime.datetime | None,
) -> None:
    """Before step 1: a bound the server's present has passed would refuse every write at
    once (and fail step 2 on the rows written since)."""
    until = _first_bound(at, interval)
    present = connection.execute(sa.select(sa.func.now())).scalar_one()
    if until <= present:
        raise AuditError(
            f"partition_audit_table: at={at.isoformat() if at else None} puts the first "
            f"partition's bound of audit table {name_text(spec.schema, spec.audit_table)!r} at "
            f"{bound_text(until)}, which the server's present has passed: writes made now "
            "would not fit it; pass a later `at`, or none"
        )


def _undo_prepare(
    bind: sa.Engine | sa.Connection,
    spec: AuditSpec,
    until: datetime.datetime,
    error: sa.exc.DBAPIError,
) -> AuditError:
    """Step 2 failed (a row recorded at or after the bound): step 1's check, committed on an
    Engine, would refuse every write once its bound passes, so it is dropped again; on a
    Connection the caller's rollback takes it away with the rest."""
    schema, name = spec.schema, spec.audit_table
    if isinstance(bind, sa.Engine):
        with _connection(bind) as connection:
            _run(connection, sql.drop_check(schema, name, sql.bound_check(name)))
    undone = "removed again" if isinstance(bind, sa.Engine) else "undone by your rollback"
    first = str(error.orig).splitlines()[0] if error.orig is not None else str(error)
    return AuditError(
        f"partition_audit_table: audit table {name_text(schema, name)!r} holds rows recorded at "
        f"or after the first partition's bound {bound_text(until)} ({first}); its check "
        f"constraint is {undone}: pass an `at` after those rows"
    )


@contextlib.contextmanager
def turn_held(bind: sa.Engine | sa.Connection, spec: AuditSpec) -> Iterator[None]:
    """Hold the audit table's turn (``maintain``'s advisory lock) across the three steps, so
    that ``maintain`` never takes a conversion in progress for one that stopped (and removes
    its constraint): on an Engine, a session lock on a connection of its own, released when
    the steps end or the process dies; on a Connection, until its transaction ends."""
    if not isinstance(bind, sa.Engine):
        bind.execute(sa.select(sa.func.pg_advisory_xact_lock(*turn_key(spec))))
        yield
        return
    with bind.connect() as holder:
        holder.execute(sa.select(sa.func.pg_advisory_lock(*turn_key(spec))))
        try:
            yield
        finally:
            holder.execute(sa.select(sa.func.pg_advisory_unlock(*turn_key(spec))))


def prepare(
    connection: sa.Connection,
    spec: AuditSpec,
    interval: PartitionInterval,
    at: datetime.datetime | None = None,
) -> datetime.datetime:
    """Step 1: the ``NOT VALID`` bound check; returns the bound."""
    schema, name = spec.schema, spec.audit_table
    kind = connection.execute(_KIND, {"t": name_text(schema, name)}).scalar()
    if kind != "r":
        state = "does not exist" if kind is None else "is partitioned already"
        raise AuditError(f"audit table {name_text(schema, name)!r} {state}: nothing to convert")
    until = _first_bound(at, interval)
    check = sql.bound_check(name)
    _run(connection, sql.drop_check(schema, name, check))
    _run(connection, sql.add_bound_check(schema, name, check, bound_text(until)))
    return until


def validate(connection: sa.Connection, spec: AuditSpec) -> None:
    """Step 2: the scan, which writers do not wait for."""
    _run(
        connection,
        sql.validate_check(spec.schema, spec.audit_table, sql.bound_check(spec.audit_table)),
    )


def finish(connection: sa.Connection, spec: AuditSpec, until: datetime.datetime) -> Converted:
    """Step 3: the swap, catalog work only."""
    schema, name = spec.schema, spec.audit_table
    partition = sql.first_partition(name, f"{until:%Y%m%d}")
    _run(connection, sql.lock_exclusive(schema, name))
    table = {"t": name_text(schema, name)}
    owner, comment = connection.execute(_OWNER_COMMENT, table).one()
    grants = [(row[0], row[1]) for row in connection.execute(_GRANTS, table)]
    indexes = connection.execute(_INDEXES, table).all()
    following = connection.execute(_NEXT_ID, table).scalar_one()
    _run(connection, sql.rename_table(schema, name, partition))
    for index in indexes:
        _run(
            connection, sql.rename_index(schema, index.name, sql.moved_index(partition, index.name))
        )
    for trigger in (GUARD_TRIGGER, PURGE_MARKER_TRIGGER):  # the parent's take their place
        _run(connection, drop_trigger(schema, partition, trigger))
    _run(connection, sql.create_parent(schema, name, partition))
    _run(connection, sql.drop_identity(schema, partition))
    _run(connection, sql.restart_identity(schema, name, following))
    for index in indexes:
        _run(connection, sql.create_index(schema, index.name, name, index.is_unique, index.tail))
    _run(connection, sql.attach_first(schema, name, partition, bound_text(until)))
    _run(connection, sql.drop_check(schema, partition, sql.bound_check(name)))
    _adopt(connection, spec, partition, owner, comment, grants)
    return Converted(audit_table=name, partition=partition, until=until)


def _adopt(
    connection: sa.Connection,
    spec: AuditSpec,
    partition: str,
    owner: str,
    comment: str | None,
    grants: list[tuple[str | None, str]],
) -> None:
    """The parent takes the old table's owner, comment and rights; the old table, now a
    partition, keeps its owner only, like every partition."""
    schema, name = spec.schema, spec.audit_table
    _run(connection, align_owner(schema, name, owner))
    if comment is not None:
        _run(connection, sql.comment_table(schema, name, comment))
    for grantee, privilege in grants:
        _run(connection, sql.grant(schema, name, privilege, grantee))
    _run(connection, sql.comment_table(schema, partition, partition_comment(name)))
    keep_to_owner(connection, schema, partition)
    give_default_partition(connection, schema, name, owner)
    if spec.append_only:
        for statement in render_append_only_guard(spec)[0]:
            _run(connection, statement)
        for each in (partition, default_partition(name)):
            _run(connection, guard_partition(schema, each, spec))


def unpartition(connection: sa.Connection, spec: AuditSpec) -> str:
    """Make the first partition the audit table again, with every row written since copied
    into it; returns the name the first partition had.  Partitions retention kept or
    detached by hand are left alone."""
    schema, name = spec.schema, spec.audit_table
    table = {"t": name_text(schema, name)}
    first = next(iter(range_partitions(connection, schema, name)), None)
    if first is None or first.lower != _FIRST:
        raise AuditError(
            f"audit table {name_text(schema, name)!r} was not converted by this library"
        )
    _run(connection, sql.lock_exclusive(schema, name))
    owner, comment = connection.execute(_OWNER_COMMENT, table).one()
    grants = [(row[0], row[1]) for row in connection.execute(_GRANTS, table)]
    indexes = connection.execute(
        _CHILD_INDEXES, {**table, "p": name_text(schema, first.name)}
    ).all()
    always = connection.execute(_IDENTITY_ALWAYS, table).scalar_one()
    following = connection.execute(_NEXT_ID, table).scalar_one()
    columns = stored_columns(connection, schema, name)  # every one, declared or not
    _run(connection, detach_partition(schema, name, first.name))
    _run(connection, sql.copy_rows(schema, name, first.name, columns))
    _run(connection, sql.drop_table(schema, name))
    partman.unregister(connection, schema, name)  # else its maintenance fails database-wide
    _run(connection, sql.rename_table(schema, first.name, name))
    for index in indexes:
        _run(connection, sql.rename_index(schema, index.child, index.parent))
    _run(connection, sql.add_identity(schema, name, always, following))
    _run(connection, align_owner(schema, name, owner))
    _run(connection, sql.comment_table(schema, name, comment))
    for grantee, privilege in grants:
        _run(connection, sql.grant(schema, name, privilege, grantee))
    if spec.append_only:
        for statement in render_append_only_guard(spec)[0]:
            _run(connection, statement)
    return first.name


#: ``sql.FIRST_BOUND`` as read back.
_FIRST = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)

_KIND = sa.text("SELECT relkind FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass(:t)")

_OWNER_COMMENT = sa.text(
    "SELECT pg_catalog.pg_get_userbyid(relowner), pg_catalog.obj_description(oid, 'pg_class') "
    "FROM pg_catalog.pg_class WHERE oid = CAST(:t AS regclass)"
)

#: Every right the owner granted others on a table (``None``: PUBLIC).
_GRANTS = sa.text(
    "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee) END, "
    "a.privilege_type FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a "
    "WHERE c.oid = CAST(:t AS regclass) AND a.grantee <> c.relowner ORDER BY 1, 2"
)

#: A table's indexes: name, uniqueness and the ``USING ...`` tail of their definition.
_INDEXES = sa.text(
    "SELECT c.relname AS name, i.indisunique AS is_unique, "
    "(pg_catalog.regexp_match(pg_catalog.pg_get_indexdef(i.indexrelid), ' USING .*$'))[1] AS tail "
    "FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid "
    "WHERE i.indrelid = CAST(:t AS regclass) ORDER BY 1"
)

#: The partition ``p``'s indexes attached to the parent ``t``'s, by name.
_CHILD_INDEXES = sa.text(
    "SELECT parent.relname AS parent, child.relname AS child "
    "FROM pg_catalog.pg_index pi JOIN pg_catalog.pg_class parent ON parent.oid = pi.indexrelid "
    "JOIN pg_catalog.pg_inherits h ON h.inhparent = pi.indexrelid "
    "JOIN pg_catalog.pg_index ci ON ci.indexrelid = h.inhrelid "
    "JOIN pg_catalog.pg_class child ON child.oid = ci.indexrelid "
    "WHERE pi.indrelid = CAST(:t AS regclass) AND ci.indrelid = CAST(:p AS regclass)"
)

_NEXT_ID = sa.text(
    "SELECT pg_catalog.nextval(pg_catalog.pg_get_serial_sequence(:t, :c))"
).bindparams(c=AUDIT_ID)

_IDENTITY_ALWAYS = sa.text(
    "SELECT attidentity = 'a' FROM pg_catalog.pg_attribute "
    "WHERE attrelid = CAST(:t AS regclass) AND attname = :c"
).bindparams(c=AUDIT_ID)


def _run(connection: sa.Connection, statement: str) -> None:
    connection.execute(AuditDDL(statement))
