"""``seal``: hash the audit rows written since the last seal into a chain, per partition, below
a horizon no open transaction can still write under; and ``record_removed_partition``, which
retention calls so that the chain says which sealed segments went and when.

Writers pay nothing: no trigger changes, sealing reads the audit tables afterwards.

**The horizon.**  ``audit_id`` comes from a sequence, and ``nextval`` runs inside the writer's
transaction, which may commit long after a later id committed; a seal that covered the later
id would leave a gap the slow row falls into.  So each run reads the sequence's last value
``L``, *then* lists every transaction holding ROW EXCLUSIVE on the audit table (an INSERT takes
it before it draws an id, and keeps it to the end, prepared or not), by virtual transaction id
and by xid once it has one: an xid survives PREPARE TRANSACTION and a restart.  Any transaction
that can still commit an id up to ``L`` is in that list; a reader, idle in its transaction or
not, is not, so it never holds sealing back.  The pair is kept as the table's candidate; a later
run that finds none of the listed transactions any more knows every id up to ``L`` is final
(committed or never to be).  Above that, the run also seals ids that are all present without
a gap (a committed row is final too), and stops below the DEFAULT partition's first row
(``maintain`` drains it into range partitions, and segments are per partition).  So an id
rolled back stops one run at its gap, and the next run passes it: the first seal after a
rolled-back write may seal nothing.  (One window is left: a transaction listed by its virtual id
alone, between drawing an id and writing its row, then prepared before the next run.  Writes
through the audit triggers always have an xid by then.)  A sequence that caches values hands
them out of order, so it is refused.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Mapper, Session

from ..declare.audit_table import SPEC_KEY
from ..declare.declaration import declared_audit, declared_tables
from ..declare.spec import AUDIT_ID, AUDIT_OPERATION, AuditSpec
from ..errors import AuditError
from ..install.ddl import audited_tables, resolve_spec
from ..render.partitioning import (
    RETENTION_OPERATION_CODE,
    default_partition,
)
from ..render.seals import (
    AUDIT_ID_SEQUENCE,
    REMOVED_OPERATION,
    RUNNING_TRANSACTIONS,
    SEAL_OPERATION,
    TABLE_SCHEMA,
)
from ..render.sql import name_text
from . import _chain
from ._digest import (
    OFFSET_BYTES,
    TAG_BYTES,
    KeyTree,
    new_root_key,
    row_commitments,
    row_digest,
    tree_depth,
)
from ._segments import Place, committed_columns, places, relation_table, stream_rows
from .partition_catalog import has_default_partition, range_partitions

#: A run seals at most this many ids per table (row offsets are stored in 4 bytes).
_MAX_RUN = 2 ** (8 * OFFSET_BYTES) - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Sealed:
    """What ``seal`` did to one audit table."""

    audit_table: str
    #: Partitions (or the audit table) that got a segment.
    segments: tuple[str, ...]
    rows: int
    #: Every ``audit_id`` up to this is sealed.
    sealed_to: int
    #: The chain's head after this table (hex), ``None`` while the chain is empty.
    head: str | None


Bind = sa.Engine | sa.Connection | Session


def seal(bind: Bind, target: Any = None) -> list[Sealed]:
    """Seal the audit rows of ``target`` (a MetaData, an audited Table or mapped class; every
    declared audited table when ``None``) written since the last seal; returns what was sealed,
    per audit table.

    On an Engine each audit table is sealed in a transaction of its own, committed.  On a
    Connection outside a transaction, likewise; on a Connection inside one, or a Session, in
    that transaction: nothing is sealed until the caller commits.  Run it as the audit owner
    (it reads the audit tables and owns the chain), from cron or after ``maintain``.  Refuses
    to extend a chain whose records no longer link (run ``verify``).
    """
    done = []
    for table in audited_targets(target):
        with bound_connection(bind) as connection:
            spec = resolve_spec(connection, table.info[SPEC_KEY])
            done.append(_seal_one(connection, spec))
            _chain.restore_caller_path(connection)
    return done


@contextmanager
def bound_connection(bind: Bind) -> Iterator[sa.Connection]:
    """A connection in a transaction: the Session's or the Connection's own when it has one
    (the caller commits), else one begun here and committed on leaving."""
    if isinstance(bind, Session):
        yield bind.connection()
    elif isinstance(bind, sa.Engine):
        with bind.begin() as connection:
            yield connection
    elif isinstance(bind, sa.Connection):
        if bind.in_transaction():
            yield bind
        else:
            with bind.begin():
                yield bind
    else:
        raise TypeError(f"expected an Engine, a Connection or a Session, got {bind!r}")


def audited_targets(target: Any) -> list[sa.Table]:
    """The audited tables of ``target``: a MetaData, a Table or mapped class, or ``None`` (every
    declared audited table)."""
    if target is None:
        return declared_tables()
    if isinstance(target, sa.MetaData):
        return [table for table, _ in audited_tables(target)]
    table = target if isinstance(target, sa.Table) else _mapped_table(target)
    declared_audit(table)
    return [table]


def _mapped_table(target: object) -> sa.Table:
    mapper = sa.inspect(target, raiseerr=False)
    if isinstance(mapper, Mapper) and isinstance(mapper.local_table, sa.Table):
        return mapper.local_table
    raise TypeError(
        f"target must be a MetaData, an audited Table or mapped class, or None, got {target!r}"
    )


def _seal_one(connection: sa.Connection, spec: AuditSpec) -> Sealed:
    schema, name = spec.schema, spec.audit_table
    _chain.prepare(connection, schema)
    chain = _chain.records(connection, schema)
    broken = _chain.first_broken_link(chain)
    if broken is not None:
        raise AuditError(
            f"the chain of seals of {name!r} is broken at its record {broken.seal_id}: "
            "run verify; seal does not extend a broken chain"
        )
    mine = [r for r in chain if r.kind == SEAL_OPERATION and r.audit_table == name]
    low = max((r.range_high for r in mine), default=None)
    if low is None:
        low = _first_low(connection, schema, name)
    high = min(_horizon(connection, schema, name, low), low + _MAX_RUN)
    head = chain[-1].head.hex() if chain else None
    if high <= low:
        return Sealed(audit_table=name, segments=(), rows=0, sealed_to=low, head=head)
    columns = committed_columns(connection, schema, name)
    segments, rows = [], 0
    for place in places(connection, schema, name):
        record = _seal_segment(connection, schema, name, place, columns, low, high)
        if record is not None:
            segments.append(place.name)
            rows += record.row_count
            head = record.head.hex()
    return Sealed(audit_table=name, segments=tuple(segments), rows=rows, sealed_to=high, head=head)


def _first_low(connection: sa.Connection, schema: str | None, name: str) -> int:
    """Below the lowest row the first seal covers (retention markers are never sealed)."""
    table = relation_table(schema, name, ())
    lowest = connection.execute(
        sa.select(sa.func.min(table.c[AUDIT_ID])).where(
            table.c[AUDIT_OPERATION] != RETENTION_OPERATION_CODE
        )
    ).scalar()
    return 0 if lowest is None else min(0, int(lowest) - 1)


def _seal_segment(
    connection: sa.Connection,
    schema: str | None,
    name: str,
    place: Place,
    columns: Sequence[str],
    low: int,
    high: int,
) -> _chain.Record | None:
    root = new_root_key()
    tree = KeyTree(tree_depth(low, high), {(0, 0): root})
    table = relation_table(schema, place.name, columns)
    where = sa.and_(table.c[AUDIT_ID] > low, table.c[AUDIT_ID] <= high)
    digest, index, count = hashlib.sha256(b"audit-segment\x00"), bytearray(), 0
    for audit_id, operation, moment, _, values in stream_rows(connection, table, columns, where):
        key = tree.leaf(audit_id - low - 1)
        assert key is not None  # a fresh tree has every leaf
        row = row_digest(audit_id, operation, moment, row_commitments(key, columns, values))
        digest.update(row)
        index += (audit_id - low).to_bytes(OFFSET_BYTES, "big") + row[:TAG_BYTES]
        count += 1
    if not count:
        return None
    record = _chain.append(
        connection,
        schema,
        kind=SEAL_OPERATION,
        audit_table=name,
        segment=place.name,
        lower_bound=place.lower,
        upper_bound=place.upper,
        range_low=low,
        range_high=high,
        row_count=count,
        columns=tuple(columns),
        digest=digest.digest(),
        detail="",
    )
    _chain.store_tree(connection, schema, record.seal_id, tree)
    rows = _chain.rows_table(schema)
    connection.execute(sa.insert(rows).values(seal_id=record.seal_id, row_index=bytes(index)))
    return record


def _horizon(connection: sa.Connection, schema: str | None, name: str, low: int) -> int:
    """The highest ``audit_id`` that no transaction can still commit a row at or below."""
    sequence = connection.execute(
        sa.text(AUDIT_ID_SEQUENCE), {"audit": name_text(schema, name)}
    ).one_or_none()
    if sequence is None:
        raise AuditError(f"audit table {name!r} has no audit_id sequence to seal by")
    if sequence.cache > 1:
        raise AuditError(
            f"the audit_id sequence of {name!r} caches {sequence.cache} values per session, "
            "so ids are not handed out in order and cannot be sealed; ALTER SEQUENCE ... CACHE 1"
        )
    last = sequence.last_value
    running = sorted(
        connection.execute(
            sa.text(RUNNING_TRANSACTIONS), {"audit": name_text(schema, name)}
        ).scalars()
    )
    started = connection.execute(sa.select(sa.func.pg_postmaster_start_time())).scalar_one()
    if last is not None and last < low:
        raise AuditError(
            f"the audit_id sequence of {name!r} is at {last}, below its sealed rows (up to "
            f"{low}): it was set back; run verify"
        )
    safe = max(low, _settled(connection, schema, name, running, started))
    _remember(connection, schema, name, last or 0, running, started)
    return _contiguous(connection, schema, name, safe)


def _settled(
    connection: sa.Connection,
    schema: str | None,
    name: str,
    running: Sequence[str],
    started: datetime.datetime,
) -> int:
    """The last candidate's value when none of its transactions is running any more."""
    pending = _chain.pending_table(schema)
    found = connection.execute(
        sa.select(pending.c.last_value, pending.c.running, pending.c.server_started).where(
            pending.c.audit_table == name
        )
    ).one_or_none()
    if found is None:
        return 0
    listed = set(found.running)
    if found.server_started != started:  # virtual ids start again; xids do not
        listed = {item for item in listed if item.startswith("x")}
    if listed & set(running):
        return 0
    return int(found.last_value)


def _remember(
    connection: sa.Connection,
    schema: str | None,
    name: str,
    last: int,
    running: Sequence[str],
    started: datetime.datetime,
) -> None:
    pending = _chain.pending_table(schema)
    values = {"last_value": last, "running": list(running), "server_started": started}
    statement = pg_insert(pending).values(audit_table=name, **values)
    connection.execute(statement.on_conflict_do_update(index_elements=["audit_table"], set_=values))


def _contiguous(connection: sa.Connection, schema: str | None, name: str, safe: int) -> int:
    """``safe``, raised over the ids above it that are all present (committed rows are final),
    and kept below the first row waiting in the DEFAULT partition."""
    table = relation_table(schema, name, ())
    ids = (
        sa.select(table.c[AUDIT_ID])
        .where(table.c[AUDIT_ID] > safe)
        .order_by(table.c[AUDIT_ID])
        .execution_options(stream_results=True, yield_per=10_000)
    )
    high = safe
    for audit_id in connection.execute(ids).scalars():
        if audit_id > high + 1:
            break
        high = audit_id
    if has_default_partition(connection, schema, name):
        waiting = relation_table(schema, default_partition(name), ())
        first = connection.execute(
            sa.select(sa.func.min(waiting.c[AUDIT_ID])).where(
                waiting.c[AUDIT_OPERATION] != RETENTION_OPERATION_CODE
            )
        ).scalar()
        if first is not None:
            high = min(high, int(first) - 1)
    return high


def lock_chain(connection: sa.Connection, schema: str | None) -> None:
    """Take the chain's lock before any lock on an audit table, as ``seal`` does: retention
    takes it first, so that it never waits for a seal while holding the table."""
    _chain.lock(connection, schema)


def record_removed_partition(connection: sa.Connection, audit: sa.Table, partition: str) -> None:
    """Record in the chain that the sealed segments of ``partition`` of ``audit`` went, after
    retention detached it and before it drops it; their keys go with them (nothing is left to
    verify, and nothing left would help to recover a value erased later from a kept copy).

    Refused while ``partition`` is still attached: a record is no licence to rewrite rows still
    in the audit table (``verify`` also fails on rows in a range recorded as removed).  Does
    nothing while the schema has no chain, or when nothing of ``partition`` was sealed.  Call
    it in the retention's transaction.
    """
    where = {"t": name_text(audit.schema, audit.name)}
    schema = connection.execute(sa.text(TABLE_SCHEMA), where).scalar_one()
    if not _chain.exists(connection, schema):
        return
    if partition in {p.name for p in range_partitions(connection, schema, audit.name)}:
        raise AuditError(
            f"partition {partition!r} of {audit.name!r} is still attached: detach it before "
            "recording its removal"
        )
    _chain.prepare(connection, schema)
    records = _chain.records(connection, schema)
    gone_before = {
        r.seal_id
        for record in records
        if record.kind == REMOVED_OPERATION and record.audit_table == audit.name
        for r in removed_segments(records, audit.name, record.lower_bound, record.upper_bound)
    }
    gone = [
        r
        for r in records
        if r.kind == SEAL_OPERATION
        and r.audit_table == audit.name
        and r.segment == partition
        and r.seal_id not in gone_before
    ]
    if not gone:  # nothing of it was sealed (a partition older than the chain, say): no record
        _chain.restore_caller_path(connection)
        return
    lower, upper = gone[0].lower_bound, gone[0].upper_bound
    digest = hashlib.sha256(b"audit-removed\x00")
    for record in gone:
        digest.update(record.head)
    _chain.append(
        connection,
        schema,
        kind=REMOVED_OPERATION,
        audit_table=audit.name,
        segment=partition,
        lower_bound=lower,
        upper_bound=upper,
        range_low=min(r.range_low for r in gone),
        range_high=max(r.range_high for r in gone),
        row_count=sum(r.row_count for r in gone),
        columns=(),
        digest=digest.digest(),
        detail="",
    )
    keys = _chain.keys_table(schema)
    connection.execute(sa.delete(keys).where(keys.c.seal_id.in_([r.seal_id for r in gone])))
    _chain.restore_caller_path(connection)


def removed_segments(
    records: Sequence[_chain.Record],
    audit_table: str,
    lower: datetime.datetime | None,
    upper: datetime.datetime | None,
) -> Iterator[_chain.Record]:
    """The segments of ``audit_table`` sealed inside ``[lower, upper)``."""
    for record in records:
        if (
            record.kind == SEAL_OPERATION
            and record.audit_table == audit_table
            and record.lower_bound is not None
            and record.upper_bound is not None
            and lower is not None
            and upper is not None
            and lower <= record.lower_bound
            and record.upper_bound <= upper
        ):
            yield record
