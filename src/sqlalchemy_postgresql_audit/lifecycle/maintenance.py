"""``maintain``: keep partitioned audit tables' partitions ahead of the writers, drain their
DEFAULT partition, and apply retention by detaching whole partitions (and dropping them, unless
``retention_keep``).

Each audit table is maintained in two transactions on an Engine (partitions and drain, then
retention), each under a transaction-level advisory lock of the table's, so two processes
running ``maintain`` at once take turns per table and the second finds nothing left to do.
Where the database has pg_partman 4.x, it creates the partitions (``lifecycle.partman``).
The locks each step takes (observed in ``pg_locks``, see the docs):

- when a partition is missing or rows wait in the DEFAULT partition: ACCESS EXCLUSIVE on the
  parent first, so that no write lands in the DEFAULT partition between reading it and
  creating a partition next to it (which would then fail) or detaching it (its row would be
  dropped with it); then creating a partition ahead (``CREATE TABLE ... PARTITION OF``), which
  also scans the DEFAULT partition (empty: at once);
- the writer's own INSERT through the parent: ROW EXCLUSIVE on the parent and the partition it
  lands in, which conflicts with each of the above, never with another writer;
- draining the DEFAULT partition: first, before any lock writers wait for, the rows of
  periods that have ended are copied into tables of their own shaped like the parent, each
  with a validated check of its bounds (ACCESS SHARE on the parent and the DEFAULT partition
  only); then, under the parent's lock, DETACH the DEFAULT partition, check each copy against
  it (count and sum of ``audit_id``, one scan) and ATTACH it (no scan: the check implies the
  bound), create the partitions the other rows belong to and fill each while it is detached
  too, then attach it again (a scan of the rows just moved), then drop the old DEFAULT
  partition and create it empty (the append-only guard refuses to empty it).  The rows never
  pass through the parent again, so a publication of the audit table (``lifecycle.archive``)
  does not send them twice.  Writers wait for the check and the current period's move;
- retention: the writes in flight are waited for (SHARE on the parent, in a savepoint rolled
  back at once), then the ``X`` marker's ``audit_id`` is read (a scan under ACCESS SHARE,
  which writers do not wait for), then DETACH takes ACCESS EXCLUSIVE on the parent, the DEFAULT
  partition and the partition, until commit.  ``DETACH ... CONCURRENTLY`` would spare
  writers, but PostgreSQL refuses it on a table with a DEFAULT partition, and cannot run it
  inside a transaction block; the DEFAULT partition is what keeps a write from ever failing.
Writers therefore wait for one short, catalog-only transaction per run, unless rows had to be
drained.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
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
from ..declare.declaration import declared_audit, declared_tables
from ..declare.options import PartitionInterval
from ..declare.spec import AUDIT_CURRENT_USER, AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP, AuditSpec
from ..errors import AuditError
from ..install.ddl import AuditDDL, audited_tables, resolve_spec
from ..render import partitioning as sql
from ..render.conversion import bound_check, drop_check
from ..render.partition_script import default_partition_script
from ..render.sql import name_text, qualified
from . import drain, partman
from .holds import held_reason
from .isolation import read_committed, refuse_other_level
from .partition_catalog import (
    RangePartition,
    range_partitions,
    uncommented_partitions,
)
from .partition_catalog import (
    partition_comment as partition_comment,  # where the design names it
)
from .periods import Period, bound_text, moment_of, period_of, periods_ahead, utc
from .rebuilt import published_here, refuse_removal
from .seals import lock_chain, record_removed_partition
from .turns import take_turns
from .unfinished import unfinished_conversion


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
    #: The reasons of the holds that kept retention from running (``"; "`` between them).
    held: str | None = None


class MaintenanceError(AuditError):
    """``maintain`` could not maintain some audit tables; it maintained the others.

    ``done`` is what it did to those (on a Connection, commit it to keep it), ``failures``
    the audit tables it failed on, each with its error."""

    def __init__(self, done: list[Maintained], failures: list[tuple[str, BaseException]]) -> None:
        self.done = done
        self.failures = failures
        lines = "; ".join(f"{table}: {error}" for table, error in failures)
        super().__init__(f"maintain failed for {len(failures)} audit tables: {lines}")


def maintain(
    bind: sa.Engine | sa.Connection,
    target: sa.MetaData | sa.Table | None = None,
    *,
    at: datetime.datetime | None = None,
) -> list[Maintained]:
    """Maintain the partitioned audit tables of ``target`` (every declared audited table when
    ``None``) as of ``at`` (now by default); returns what was done, per audit table.

    ``at`` (a time zone aware datetime: a naive one, a date or a string is refused, naming
    it) chooses the partitions made ahead and the retention cut (``at`` less the
    retention); but retention never removes a partition that can still receive writes, one
    whose range ends after the server's present time, whatever ``at`` says.

    On an Engine each audit table gets two transactions: partitions and drain, then
    retention, so that the lock the first may take is not held while retention reads what
    stays; on a Connection everything runs in the caller's transaction (commit it), each
    audit table in a savepoint.  One audit table's failure does not stop the others: they are
    maintained, and ``MaintenanceError`` then names every failure.  Run it as the audit
    tables' owner, or as a role that may act for it: new partitions are given to the parent's
    owner.
    """
    moment = moment_of(at, "maintain")
    tables = list(_partitioned(target))
    if isinstance(bind, sa.Connection):
        refuse_other_level(bind, "maintain")
    for table, partitioning in tables:
        _check_moment(moment, table.info[AUDIT_TABLE_KEY], partitioning)
    done: list[Maintained] = []
    failures: list[tuple[str, BaseException]] = []
    for table, partitioning in tables:
        audit_table = table.info[AUDIT_TABLE_KEY]
        try:
            done.append(_maintain_one(bind, table, audit_table, partitioning, moment))
        except (AuditError, sa.exc.DBAPIError) as error:
            failures.append((audit_table.fullname, error))
    if failures:
        raise MaintenanceError(done, failures)
    return done


def _check_moment(
    moment: datetime.datetime, audit_table: sa.Table, partitioning: Partitioning
) -> None:
    """Refuse an ``at`` whose partitions ahead or retention cut leave years 1 to 9999."""
    try:
        periods_ahead(moment, partitioning.interval)
        if partitioning.retention is not None:
            _ = moment - partitioning.retention
    except OverflowError:
        raise AuditError(
            f"maintain: at={moment.isoformat()} is out of range for audit table "
            f"{audit_table.fullname!r}: its partitions ahead or its retention cut would fall "
            "outside the years 1 to 9999"
        ) from None


def _maintain_one(
    bind: sa.Engine | sa.Connection,
    table: sa.Table,
    audit_table: sa.Table,
    partitioning: Partitioning,
    moment: datetime.datetime,
) -> Maintained:
    with _step(bind) as connection:
        spec = resolve_spec(connection, table.info[SPEC_KEY])
        _turn(connection, spec)
        problem = _not_partitioned(connection, spec)
        if problem is None:
            extended = _extend(connection, spec, audit_table, partitioning, moment)
    if problem is not None:  # raised once the leftover constraint's removal is committed
        raise AuditError(problem)
    if partitioning.retention is None:
        return extended
    with _step(bind) as connection:
        return _retain_one(connection, table, spec, audit_table, partitioning, moment, extended)


@contextlib.contextmanager
def _step(bind: sa.Engine | sa.Connection) -> Iterator[sa.Connection]:
    """One READ COMMITTED transaction on an Engine (``lifecycle.isolation``); a savepoint of
    the caller's transaction otherwise, so that one audit table's failure leaves the others'
    work in it."""
    with read_committed(bind, "maintain", nested=True) as connection:
        yield connection


def _not_partitioned(connection: sa.Connection, spec: AuditSpec) -> str | None:
    """Why the audit table cannot be maintained, when it is not a partitioned table: the
    leftover constraint of a conversion that stopped after its first step is removed first
    (it would refuse every write once its bound passes)."""
    schema, name = spec.schema, spec.audit_table
    kind = connection.execute(_KIND, {"t": name_text(schema, name)}).scalar()
    if kind is not None:  # a conversion's swap may be committing: read what it leaves
        _run(connection, sql.wait_for_ddl(schema, name))
        kind = connection.execute(_KIND, {"t": name_text(schema, name)}).scalar()
    if kind == "p":
        return None
    table = qualified(schema, name)
    if kind is None:
        return f"audit table {table} does not exist: create it (create_all or Alembic)"
    convert = (
        "convert it with partition_audit_table(bind, table) or an Alembic migration "
        "(op.partition_audit_table)"
    )
    leftover = unfinished_conversion(connection, schema, name)
    if leftover is None:
        return f"audit table {table} is declared with 'partition' but is not partitioned: {convert}"
    _run(connection, drop_check(schema, name, bound_check(name)))
    return (
        f"audit table {table} is not partitioned: a conversion to partitions stopped after "
        f"its first step; maintain removed its check constraint {leftover.constraint} "
        f"({leftover.definition}), which would have refused every write after that bound; "
        f"{convert} to finish it"
    )


def _partitioned(target: sa.MetaData | sa.Table | None) -> Iterator[tuple[sa.Table, Partitioning]]:
    if isinstance(target, sa.MetaData):
        tables: Sequence[sa.Table] = [table for table, _ in audited_tables(target)]
    elif isinstance(target, sa.Table):
        declared_audit(target)
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
        give_default_partition(connection, table.schema, table.name, None)


def give_default_partition(
    connection: sa.Connection, schema: str | None, audit_table: str, owner: str | None
) -> None:
    """The DEFAULT partition of a new partitioned audit table: ``owner``'s (the creator's when
    ``None``) alone, marked as audit history.

    Alembic's offline mode (``--sql``) hands over a connection that only writes statements
    out and reads nothing back: the script's statements are written instead, which take the
    rights back where the script runs (a new table is not published: its REPLICA IDENTITY
    needs nothing)."""
    if not isinstance(connection, sa.Connection):
        default = sql.default_partition(audit_table)
        owned = () if owner is None else (sql.align_owner(schema, default, owner),)
        script = default_partition_script(schema, audit_table, partition_comment(audit_table))
        for statement in (script[0], *owned, *script[1:]):
            _run(connection, statement)
        return
    _run(connection, sql.create_default_partition(schema, audit_table))
    default = sql.default_partition(audit_table)
    if owner is not None:
        _run(connection, sql.align_owner(schema, default, owner))
    keep_to_owner(connection, schema, default)
    _run(connection, sql.comment_partition(schema, default, partition_comment(audit_table)))
    _like_parent(connection, schema, audit_table, default)


def _turn(connection: sa.Connection, spec: AuditSpec) -> None:
    """Wait for this audit table's turn: one ``maintain`` (or conversion, or erasure) at a
    time per audit table (``lifecycle.turns``)."""
    take_turns(connection, [spec])


def _retain_one(
    connection: sa.Connection,
    table: sa.Table,
    spec: AuditSpec,
    audit: sa.Table,
    partitioning: Partitioning,
    at: datetime.datetime,
    done: Maintained,
) -> Maintained:
    if partitioning.retention is None:
        return done
    _turn(connection, spec)
    lock_chain(connection, spec.schema)  # retention may record in the chain of seals
    reason = held_reason(connection, spec.schema, spec.audit_table)
    if reason is not None:
        return replace(done, held=reason)
    cut = at - partitioning.retention
    return _retain(connection, table, spec, audit, cut, done, partitioning.keep)


def _extend(
    connection: sa.Connection,
    spec: AuditSpec,
    audit: sa.Table,
    partitioning: Partitioning,
    at: datetime.datetime,
) -> Maintained:
    """Create the partitions ahead and those rows wait for in the DEFAULT partition, and move
    those rows there.  Where pg_partman is in the database (``lifecycle.partman``), it creates
    them, named its way; the rest is the same."""
    schema, name = spec.schema, spec.audit_table
    default = sql.default_partition(name)
    unit = partitioning.interval
    found = partman.partman_for(connection, schema, name, unit)  # before: it may rename DEFAULT
    _run(connection, sql.create_default_partition(schema, name))
    owner = connection.execute(_OWNER, {"t": name_text(schema, name)}).scalar_one()
    existing = range_partitions(connection, schema, name)
    # Rows of periods that have ended are copied before the lock (``drain.prefill``).
    early = [] if found is not None else _prefill(connection, spec, partitioning, owner)
    if found is not None or early or _work(connection, spec, partitioning, at, existing):
        # From here no write lands in the DEFAULT partition between reading what waits there
        # and detaching it or creating a partition next to it (which would then fail).
        _run(connection, sql.lock_parent(schema, name))
    creator, aside = _creator(connection, spec, partitioning, at, existing, owner, found)
    source = aside or default  # the rows to move: pg_partman's registration set them aside
    tallies = {
        period_of(start, unit): t
        for start, t in drain.tallies(connection, schema, source, unit).items()
    }
    total = sum(t.rows for t in tallies.values())
    drained = 0
    if tallies or aside:
        if aside is None:
            _run(connection, sql.detach_partition(schema, name, default))
        ready = [p for p in early if tallies.get(p.period) == p.tally]
        for prefilled in early:
            if prefilled in ready:
                _attach_prefilled(connection, schema, name, prefilled, owner)
            else:  # rows arrived since the copy: moved the slow way below
                _run(connection, sql.drop_partition(schema, prefilled.table))
        drained = sum(p.tally.rows for p in ready)
        rest = set(tallies) - {p.period for p in ready}
        creator.create(_missing(connection, spec, at, unit, rest))
        drained += drain.refill(connection, schema, name, source, rest)
        if drained != total:  # never drop a row the refill did not place
            raise AuditError(
                f"draining {name_text(schema, name)}: {total - drained} rows of the DEFAULT "
                "partition found no partition; nothing was changed"
            )
        # Dropped (and the DEFAULT partition made again), not emptied: the guard refuses
        # TRUNCATE of its rows.
        _run(connection, sql.drop_partition(schema, source))
        if aside is None:
            _run(connection, sql.create_default_partition(schema, name))
            _own(connection, schema, name, default, owner)
    else:
        for prefilled in early:  # the rows left since: nothing to attach
            _run(connection, sql.drop_partition(schema, prefilled.table))
        creator.create(_missing(connection, spec, at, unit, set()))
    known = {p.name for p in existing}
    now = range_partitions(connection, schema, name)
    created = tuple(p.name for p in now if p.name not in known)
    for partition in uncommented_partitions(connection, schema, name, partition_comment(name)):
        _own(connection, schema, name, partition, owner)  # made by pg_partman, here or on its own
    if spec.append_only:
        every = [default, *(p.name for p in existing), *created]
        for partition in every:
            _run(connection, sql.guard_partition(schema, partition, spec))
    return Maintained(audit_table=name, created=created, drained=drained)


def _missing(
    connection: sa.Connection,
    spec: AuditSpec,
    at: datetime.datetime,
    unit: PartitionInterval,
    waiting: set[Period],
) -> list[Period]:
    """The periods ahead of ``at`` and those rows wait for, that no partition covers yet
    (pg_partman's maintenance made those ahead of the present already)."""
    wanted = periods_ahead(at, unit)
    current = range_partitions(connection, spec.schema, spec.audit_table)
    return sorted({p for p in [*wanted, *waiting] if not _covered(p, current)})


def _prefill(
    connection: sa.Connection, spec: AuditSpec, partitioning: Partitioning, owner: str
) -> list[drain.Prefilled]:
    """Copy the DEFAULT partition's rows of each period that has ended (no write of the
    trigger's lands there any more) into a table of its own, before the lock writers wait
    for: under it, only what arrived since is left to move."""
    schema, name = spec.schema, spec.audit_table
    default = sql.default_partition(name)
    present = connection.execute(sa.select(sa.func.now())).scalar_one()
    moments = drain.waiting_moments(connection, schema, default, partitioning.interval)
    ended = sorted(
        p
        for p in {period_of(moment, partitioning.interval) for moment in moments}
        if p.upper <= present
    )
    return [
        drain.prefill(
            connection,
            schema,
            name,
            default,
            period,
            _free_name(connection, schema, name, period, owner),
        )
        for period in ended
    ]


def _attach_prefilled(
    connection: sa.Connection,
    schema: str | None,
    name: str,
    prefilled: drain.Prefilled,
    owner: str,
) -> None:
    """Attach a prefilled table (no scan: its validated check implies the bound, and the
    DEFAULT partition is detached) and make it a partition like the others."""
    lower, upper = bound_text(prefilled.period.lower), bound_text(prefilled.period.upper)
    _run(connection, sql.attach_partition(schema, name, prefilled.table, lower, upper))
    _run(connection, sql.drop_constraint(schema, prefilled.table, prefilled.check))
    _own(connection, schema, name, prefilled.table, owner)


@dataclass(frozen=True, slots=True)
class _Creator:
    """Who creates a table's partitions: ``maintain`` itself, or pg_partman."""

    connection: sa.Connection
    schema: str | None
    audit_table: str
    owner: str
    partman: partman.Partman | None = None
    parent: str = ""

    def create(self, periods: Sequence[Period]) -> None:
        if self.partman is None:
            _create(self.connection, self.schema, self.audit_table, periods, self.owner)
        else:
            partman.create_periods(self.connection, self.partman, self.parent, periods)


def _work(
    connection: sa.Connection,
    spec: AuditSpec,
    partitioning: Partitioning,
    at: datetime.datetime,
    existing: Sequence[RangePartition],
) -> bool:
    """Whether rows wait in the DEFAULT partition or a partition ahead is missing."""
    schema, name = spec.schema, spec.audit_table
    default = sql.default_partition(name)
    if drain.waiting_moments(connection, schema, default, partitioning.interval):
        return True
    return any(not _covered(p, existing) for p in periods_ahead(at, partitioning.interval))


def _creator(
    connection: sa.Connection,
    spec: AuditSpec,
    partitioning: Partitioning,
    at: datetime.datetime,
    existing: Sequence[RangePartition],
    owner: str,
    found: partman.Partman | None,
) -> tuple[_Creator, str | None]:
    """pg_partman where the database has it (registering the table first, from the end of
    the partitions that exist, and letting it make its partitions ahead), else ``maintain``;
    and the DEFAULT partition a registration set aside, whose rows are to be drained."""
    schema, name = spec.schema, spec.audit_table
    if found is None:
        return _Creator(connection, schema, name, owner), None
    connection.execute(sa.text("SET LOCAL timezone = 'UTC'"))
    start = existing[-1].upper if existing else period_of(at, partitioning.interval).lower
    aside = partman.register(connection, found, schema, name, partitioning.interval, start)
    parent = partman.parent_name(connection, schema, name)
    partman.premake(connection, found, parent, partitioning.interval)
    return _Creator(connection, schema, name, owner, found, parent), aside


def _retain(
    connection: sa.Connection,
    table: sa.Table,
    spec: AuditSpec,
    audit: sa.Table,
    cut: datetime.datetime,
    done: Maintained,
    keep: bool,
) -> Maintained:
    """Detach the partitions wholly before ``cut`` and drop them (or, with ``keep``, leave
    them as plain tables for archiving), and mark where history begins."""
    schema, name = spec.schema, spec.audit_table
    # A partition whose range ends after the server's present can still receive writes: it
    # is never removed, whatever ``at`` asked (the marker is never dated after rows that
    # stay, and nothing written a moment ago is dropped).
    present = connection.execute(sa.select(sa.func.now())).scalar_one()
    partitions = range_partitions(connection, schema, name)
    expired = [p for p in partitions if p.upper <= min(cut, present)]
    if not expired:
        return done
    if published_here(connection, table, spec) and any(
        _holds_rows(connection, schema, p.name) for p in expired
    ):
        refuse_removal(connection, table, spec, "maintain's retention")
    removed = utc(max(partition.upper for partition in expired))
    staying = [p.lower for p in partitions if p not in expired]
    marker_id, bound = _marker_place(connection, audit, removed, min([*staying, present]))
    for partition in expired:
        _run(connection, sql.detach_partition(schema, name, partition.name))
        record_removed_partition(connection, audit, partition.name)
        if keep:
            _keep_detached(connection, spec, partition.name)
        else:
            _run(connection, sql.drop_partition(schema, partition.name))
    _mark_removed(connection, audit, bound, marker_id)
    gone = tuple(partition.name for partition in expired)
    return replace(done, detached=gone, dropped=() if keep else gone, removed_before=bound)


def _holds_rows(connection: sa.Connection, schema: str | None, partition: str) -> bool:
    return bool(
        connection.execute(
            sa.select(sa.exists().select_from(sa.table(partition, schema=schema)))
        ).scalar_one()
    )


def _keep_detached(connection: sa.Connection, spec: AuditSpec, partition: str) -> None:
    """A kept partition keeps its name, owner, rights and comment (``detached_partitions``
    finds it by that comment).  DETACH removes the row triggers the parent had cloned onto it,
    among them the append-only guard's: put that back, so kept history stays append-only
    (its TRUNCATE guard was the partition's own and stays)."""
    if spec.append_only:
        _run(connection, sql.guard_kept_partition(spec.schema, partition, spec))


_KIND = sa.text("SELECT relkind FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass(:t)")

_REPLICA_IDENTITY = sa.text(
    "SELECT relreplident FROM pg_catalog.pg_class WHERE oid = CAST(:t AS regclass)"
)

#: The last ``audit_id`` the identity handed out (0 before the first).
_LAST_ID = sa.text(
    "SELECT COALESCE(pg_catalog.pg_sequence_last_value("
    "CAST(pg_catalog.pg_get_serial_sequence(:t, :c) AS regclass)), 0)"
).bindparams(c=AUDIT_ID)

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
        partition = _free_name(connection, schema, name, period, owner)
        _run(
            connection,
            sql.create_range_partition(
                schema, name, partition, bound_text(period.lower), bound_text(period.upper)
            ),
        )
        _own(connection, schema, name, partition, owner)


_HOLDER = sa.text(
    "SELECT c.relkind, c.relispartition, pg_catalog.pg_get_userbyid(c.relowner) AS owner, "
    "pg_catalog.obj_description(c.oid, 'pg_class') AS comment "
    "FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(:t)"
)


def _free_name(
    connection: sa.Connection, schema: str | None, audit_table: str, period: Period, owner: str
) -> str:
    """The name of ``period``'s new partition.  A partition retention kept (detached, the
    owner's, with the partitions' comment) may hold the period's name when the period is made
    again (a catch-up ``at``, an old row to drain): the new one takes the next free name.  Any
    other relation holding it is refused, never adopted: it is not audit history."""
    for copy in itertools.count(1):
        partition = sql.range_partition(audit_table, period.suffix, copy)
        holder = connection.execute(_HOLDER, {"t": name_text(schema, partition)}).first()
        if holder is None:
            return partition
        kept = (
            holder.relkind == "r"
            and not holder.relispartition
            and holder.owner == owner
            and holder.comment == partition_comment(audit_table)
        )
        if not kept:
            raise AuditError(
                f"maintain cannot create partition {qualified(schema, partition)} of audit "
                f"table {qualified(schema, audit_table)} for [{bound_text(period.lower)}, "
                f"{bound_text(period.upper)}): a relation of that name, owned by "
                f"{holder.owner!r}, is in the way and is not audit history; find out who "
                "created it (any role with CREATE on the schema can), rename or drop it, "
                "and run maintain again"
            )
    raise AssertionError("unreachable")  # pragma: no cover


def _own(
    connection: sa.Connection, schema: str | None, audit_table: str, partition: str, owner: str
) -> None:
    """A new partition: the parent's owner's alone, marked as audit history."""
    _run(connection, sql.align_owner(schema, partition, owner))
    keep_to_owner(connection, schema, partition)
    _run(connection, sql.comment_partition(schema, partition, partition_comment(audit_table)))
    _like_parent(connection, schema, audit_table, partition)


def _like_parent(
    connection: sa.Connection, schema: str | None, audit_table: str, partition: str
) -> None:
    """A published audit table's partitions need its ``REPLICA IDENTITY FULL``
    (``lifecycle.archive``), which PostgreSQL does not pass on to new partitions."""
    identity = connection.execute(_REPLICA_IDENTITY, {"t": name_text(schema, audit_table)})
    if identity.scalar() == "f":
        _run(connection, sql.replica_identity_full(schema, partition))


def keep_to_owner(connection: sa.Connection, schema: str | None, partition: str) -> None:
    """Revoke what default privileges gave anyone but the owner on a new partition."""
    grantees = connection.execute(
        sa.text(sql.OTHER_GRANTEES), {"t": name_text(schema, partition)}
    ).scalars()
    for grantee in list(grantees):
        _run(connection, sql.revoke_everything(schema, partition, grantee))


def _marker_place(
    connection: sa.Connection,
    audit: sa.Table,
    removed: datetime.datetime,
    ceiling: datetime.datetime,
) -> tuple[int, datetime.datetime]:
    """The ``X`` row's ``audit_id`` and time.

    Its ``audit_id`` is one below the lowest that stays, so that it comes first in every row's
    history, which is ordered by ``audit_id``; the identity sequence is past that value
    already, so no later write can take it.

    Its time is the bound before which the trail holds nothing any more: ``removed``, the end
    of the partitions removed, or, where no partition follows them (a catch-up ``at`` left a
    gap, which held nothing), the first moment the trail still holds: the lowest of
    ``ceiling`` (the first partition that stays, or the present) and the earliest row left.
    Dated at ``removed`` in a gap, the marker would land in the DEFAULT partition, and each
    later run would make a partition to drain it into, then remove that partition again,
    writing a new marker into the DEFAULT partition.

    A write in flight may hold an ``audit_id`` below the lowest the scan sees (taken before,
    committed after it).  So the identity's last value is read first, and the writers in
    flight then waited for (a SHARE lock of the parent in a savepoint, released at once):
    every ``audit_id`` up to that value is then committed and seen by the scan, or never
    written; and the marker takes one below the lowest seen, or that value itself when rows
    written since are the lowest that stay (no row that stays has it, and later writes take
    higher ones).

    Read before the DETACH, whose ACCESS EXCLUSIVE lock writers wait for: finding the lowest
    scans what stays (no index leads with ``audit_id``), and only ACCESS SHARE, which writers
    do not wait for, is held while it does (pruned to the partitions from ``removed`` on, and
    the DEFAULT partition).  A write made after the scan takes a higher ``audit_id`` and a
    later time than ``ceiling``.
    """
    stamp = audit.c[AUDIT_TIMESTAMP]
    handed_out = connection.execute(_LAST_ID, {"t": name_text(audit.schema, audit.name)})
    issued = int(handed_out.scalar_one())
    waiting = connection.begin_nested()
    _run(connection, sql.wait_for_writers(audit.schema, audit.name))
    waiting.rollback()  # the lock goes with the savepoint: writers wait for no scan
    lowest, earliest = connection.execute(
        sa.select(sa.func.min(audit.c[AUDIT_ID]), sa.func.min(stamp)).where(stamp >= removed)
    ).one()
    first = utc(ceiling) if earliest is None else min(utc(ceiling), utc(earliest))
    marker = 0 if lowest is None else min(int(lowest), issued + 1) - 1
    return marker, max(removed, first)


def _mark_removed(
    connection: sa.Connection, audit: sa.Table, bound: datetime.datetime, marker_id: int
) -> None:
    """The ``X`` row at the front of the trail: history before ``bound`` was removed."""
    connection.execute(
        sa.insert(audit).values(
            {
                AUDIT_ID: marker_id,
                AUDIT_OPERATION: sql.RETENTION_OPERATION_CODE,
                AUDIT_TIMESTAMP: bound,
                AUDIT_CURRENT_USER: sa.func.current_user(),
            }
        )
    )


def _run(connection: sa.Connection, statement: str) -> None:
    connection.execute(AuditDDL(statement))
