"""``maintain``: keep partitioned audit tables' partitions ahead of the writers, drain their
DEFAULT partition, and apply retention by dropping whole partitions.

Each audit table is maintained in one transaction, under a transaction-level advisory lock of
its own, so two processes running ``maintain`` at once take turns per table and the second
finds nothing left to do.  The locks each step takes (observed in ``pg_locks``, see the docs):

- creating a partition ahead (``CREATE TABLE ... PARTITION OF``): ACCESS EXCLUSIVE on the
  parent and on the DEFAULT partition, which it scans (empty: at once);
- the writer's own INSERT through the parent: ROW EXCLUSIVE on the parent and the partition it
  lands in, which conflicts with each of the above, never with another writer;
- draining the DEFAULT partition (the classic way: DETACH it, create the partitions its rows
  belong to, move the rows back through the parent, then drop it and create it empty, since
  the append-only guard refuses to empty it): ACCESS EXCLUSIVE on the parent for the whole
  transaction, so writers wait for the move;
- retention (DETACH then DROP): ACCESS EXCLUSIVE on the parent, the DEFAULT partition and
  the partition.  ``DETACH
  ... CONCURRENTLY`` would spare writers, but PostgreSQL refuses it on a table with a DEFAULT
  partition, and the DEFAULT partition is what keeps a write from ever failing.
Writers therefore wait for one short, catalog-only transaction per run, unless rows had to be
drained.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import sqlalchemy as sa

from ..declare.audit_table import (
    AUDIT_TABLE_KEY,
    PARTITION_BY,
    PARTITIONING_KEY,
    SPEC_KEY,
    Partitioning,
    is_audit_table,
)
from ..declare.declaration import declared_tables
from ..declare.spec import AUDIT_CURRENT_USER, AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP, AuditSpec
from ..errors import AuditError
from ..install.ddl import AuditDDL, _connection, audited_tables, resolve_spec
from ..render import partitioning as sql
from ..render.partitioning import partition_comment as partition_comment
from ..render.sql import name_text
from .holds import held_reason
from .partition_catalog import (
    RangePartition,
    default_moments,
    range_partitions,
)
from .periods import Period, bound_text, period_of, periods_ahead, utc
from .seals import lock_chain, record_removed_partition

#: First key of the advisory locks ``maintain`` takes (the second is the audit table's).
_LOCK_CLASS = 0x4155_4454  # "AUDT"


@dataclass(frozen=True, slots=True, kw_only=True)
class Maintained:
    """What ``maintain`` did to one audit table."""

    audit_table: str
    created: tuple[str, ...] = ()
    #: Rows moved out of the DEFAULT partition into range partitions.
    drained: int = 0
    detached: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    #: History up to this moment was removed (a retention marker records it).
    removed_before: datetime.datetime | None = None
    #: The reason of the hold that kept retention from running.
    held: str | None = None


def maintain(
    bind: sa.Engine | sa.Connection,
    target: sa.MetaData | sa.Table | None = None,
    *,
    at: datetime.datetime | None = None,
) -> list[Maintained]:
    """Maintain the partitioned audit tables of ``target`` (every declared audited table when
    ``None``) as of ``at`` (now by default); returns what was done, per audit table.

    On an Engine each audit table gets its own transaction; on a Connection everything runs in
    the caller's transaction (commit it).  Run it as the audit tables' owner, or as a role
    that may act for it: new partitions are given to the parent's owner.
    """
    moment = utc(at or datetime.datetime.now(datetime.timezone.utc))
    done = []
    for table, partitioning in _partitioned(target):
        with _connection(bind) as connection:
            spec = resolve_spec(connection, table.info[SPEC_KEY])
            audit_table = table.info[AUDIT_TABLE_KEY]
            done.append(_maintain_one(connection, spec, audit_table, partitioning, moment))
    return done


def _partitioned(target: sa.MetaData | sa.Table | None) -> Iterator[tuple[sa.Table, Partitioning]]:
    if isinstance(target, sa.MetaData):
        tables: Sequence[sa.Table] = [table for table, _ in audited_tables(target)]
    elif isinstance(target, sa.Table):
        if not isinstance(target.info.get(SPEC_KEY), AuditSpec):
            raise AuditError(f"table {target.fullname!r} is not audited")
        tables = [target]
    elif target is None:
        tables = declared_tables()
    else:
        raise TypeError(f"target must be a MetaData, a Table or None, got {target!r}")
    for table in tables:
        partitioning = table.info[AUDIT_TABLE_KEY].info.get(PARTITIONING_KEY)
        if isinstance(partitioning, Partitioning):
            yield table, partitioning


def on_table_created(table: sa.Table, connection: sa.Connection, **_: object) -> None:
    """Give a partitioned audit table its DEFAULT partition as soon as it exists.

    Listens to every Table's ``after_create``, which both ``create_all`` and Alembic's
    ``op.create_table`` dispatch, and acts only on audit tables (known by their comment)
    partitioned by this library.
    """
    partition_by = table.dialect_options["postgresql"].get("partition_by")
    if is_audit_table(table) and partition_by == PARTITION_BY:
        _run(connection, sql.create_default_partition(table.schema, table.name))
        default = sql.default_partition(table.name)
        _keep_to_owner(connection, table.schema, default)
        _run(
            connection, sql.comment_partition(table.schema, default, partition_comment(table.name))
        )


def _maintain_one(
    connection: sa.Connection,
    spec: AuditSpec,
    audit: sa.Table,
    partitioning: Partitioning,
    at: datetime.datetime,
) -> Maintained:
    schema, name = spec.schema, spec.audit_table
    key = int.from_bytes(
        hashlib.sha256(f"{schema}.{name}".encode()).digest()[:4], "big", signed=True
    )
    connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_CLASS, key)))
    if partitioning.retention is not None:
        lock_chain(connection, schema)  # retention may record in the chain of seals
    done = _extend(connection, spec, audit, partitioning, at)
    if partitioning.retention is None:
        return done
    reason = held_reason(connection, schema, name)
    if reason is not None:
        return replace(done, held=reason)
    return _retain(connection, spec, audit, at - partitioning.retention, done)


def _extend(
    connection: sa.Connection,
    spec: AuditSpec,
    audit: sa.Table,
    partitioning: Partitioning,
    at: datetime.datetime,
) -> Maintained:
    """Create the partitions ahead and those rows wait for in the DEFAULT partition, and move
    those rows there."""
    schema, name = spec.schema, spec.audit_table
    _run(connection, sql.create_default_partition(schema, name))
    owner = connection.execute(_OWNER, {"t": name_text(schema, name)}).scalar_one()
    existing = range_partitions(connection, schema, name)
    waiting = default_moments(connection, schema, name, partitioning.interval)
    wanted = periods_ahead(at, partitioning.interval)
    wanted += [period_of(moment, partitioning.interval) for moment in waiting]
    missing = sorted({p for p in wanted if not _covered(p, existing)})
    created = tuple(sql.range_partition(name, period.suffix) for period in missing)
    drained = 0
    if waiting:
        _run(connection, sql.detach_partition(schema, name, sql.default_partition(name)))
        _create(connection, schema, name, missing, owner)
        columns = tuple(column.name for column in audit.columns)
        drained = connection.execute(AuditDDL(sql.move_rows(schema, name, columns))).rowcount
        # Dropped and made again, not emptied: the guard refuses TRUNCATE of its rows.
        _run(connection, sql.drop_partition(schema, sql.default_partition(name)))
        _run(connection, sql.create_default_partition(schema, name))
        _own(connection, schema, name, sql.default_partition(name), owner)
    else:
        _create(connection, schema, name, missing, owner)
    if spec.append_only:
        every = [sql.default_partition(name), *(p.name for p in existing), *created]
        for partition in every:
            _run(connection, sql.guard_partition(schema, partition, spec))
    return Maintained(audit_table=name, created=created, drained=drained)


def _retain(
    connection: sa.Connection,
    spec: AuditSpec,
    audit: sa.Table,
    cut: datetime.datetime,
    done: Maintained,
) -> Maintained:
    """Detach and drop the partitions wholly before ``cut``, and mark where history begins."""
    schema, name = spec.schema, spec.audit_table
    expired = [p for p in range_partitions(connection, schema, name) if p.upper <= cut]
    if not expired:
        return done
    for partition in expired:
        _run(connection, sql.detach_partition(schema, name, partition.name))
        record_removed_partition(connection, audit, partition.name)
        _run(connection, sql.drop_partition(schema, partition.name))
    bound = max(partition.upper for partition in expired)
    _mark_removed(connection, audit, bound)
    gone = tuple(partition.name for partition in expired)
    return replace(done, detached=gone, dropped=gone, removed_before=bound)


_OWNER = sa.text(
    "SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_catalog.pg_class "
    "WHERE oid = CAST(:t AS regclass)"
)


def _covered(period: Period, existing: Sequence[RangePartition]) -> bool:
    """Whether a partition already overlaps ``period`` (then it cannot be created)."""
    return any(p.lower < period.upper and period.lower < p.upper for p in existing)


def _create(
    connection: sa.Connection,
    schema: str | None,
    name: str,
    periods: Sequence[Period],
    owner: str,
) -> None:
    for period in periods:
        partition = sql.range_partition(name, period.suffix)
        _run(
            connection,
            sql.create_range_partition(
                schema, name, partition, bound_text(period.lower), bound_text(period.upper)
            ),
        )
        _own(connection, schema, name, partition, owner)


def _own(
    connection: sa.Connection, schema: str | None, audit_table: str, partition: str, owner: str
) -> None:
    """A new partition: the parent's owner's alone, marked as audit history."""
    _run(connection, sql.align_owner(schema, partition, owner))
    _keep_to_owner(connection, schema, partition)
    _run(connection, sql.comment_partition(schema, partition, partition_comment(audit_table)))


def _keep_to_owner(connection: sa.Connection, schema: str | None, partition: str) -> None:
    """Revoke what default privileges gave anyone but the owner on a new partition."""
    grantees = connection.execute(
        sa.text(sql.OTHER_GRANTEES), {"t": name_text(schema, partition)}
    ).scalars()
    for grantee in list(grantees):
        _run(connection, sql.revoke_everything(schema, partition, grantee))


def _mark_removed(connection: sa.Connection, audit: sa.Table, bound: datetime.datetime) -> None:
    """The ``X`` row at the front of the trail: history before ``bound`` was removed.

    Its ``audit_id`` is one below the lowest left, so that it comes first in every row's
    history, which is ordered by ``audit_id``; the identity sequence is past that value already,
    so no later write can take it.
    """
    lowest = sa.select(sa.func.min(audit.c[AUDIT_ID])).scalar_subquery()
    following = sa.select(sa.func.coalesce(lowest, 1) - 1).scalar_subquery()
    connection.execute(
        sa.insert(audit).values(
            {
                AUDIT_ID: following,
                AUDIT_OPERATION: sql.RETENTION_OPERATION_CODE,
                AUDIT_TIMESTAMP: bound,
                AUDIT_CURRENT_USER: sa.func.current_user(),
            }
        )
    )


def _run(connection: sa.Connection, statement: str) -> None:
    connection.execute(AuditDDL(statement))
