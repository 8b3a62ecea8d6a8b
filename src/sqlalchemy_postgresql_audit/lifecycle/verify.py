"""``verify``: recompute the chain of seals and every sealed segment from the audit rows.

It catches an UPDATE, DELETE or INSERT of sealed rows by anyone who cannot also rewrite the
chain past an anchored head (a row digest changes, a row is missing, or a row sits in a sealed
range it was not sealed in); an ``audit_id`` handed out again by a sequence set back (a second
row in a sealed range); a partition dropped without ``record_removed_partition`` (a segment's
rows are missing); an erasure without its ``E`` record in the chain.  Given a head anchored
earlier (printed by ``seal`` and ``verify``), it proves the chain up to that head unchanged.
"""

from __future__ import annotations

import datetime
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from ..declare.audit_table import SPEC_KEY
from ..declare.spec import AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP
from ..install.adoption import refuse_foreign_seal_tables
from ..install.ddl import resolve_spec
from ..render.partitioning import RETENTION_OPERATION_CODE
from ..render.seals import ERASURE_OPERATION_CODE, REMOVED_OPERATION, SEAL_OPERATION
from . import _chain
from ._digest import (
    OFFSET_BYTES,
    ROW_INDEX_ENTRY,
    TAG_BYTES,
    KeyTree,
    commitment,
    row_commitments,
    row_digest,
)
from ._segments import Row, committed_columns, relation_table, stream_rows
from .seals import Bind, audited_targets, bound_connection, removed_segments


@dataclass(frozen=True, slots=True, kw_only=True)
class Erasure:
    """An erasure the chain records (its ``E`` record)."""

    audit_table: str
    marker_id: int
    columns: tuple[str, ...]
    rows: int
    reason: str
    erased_by: str
    erased_at: datetime.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Removed:
    """A partition whose sealed segments retention recorded as removed (its ``R`` record)."""

    audit_table: str
    partition: str
    rows: int
    removed_by: str
    removed_at: datetime.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    """The outcome of ``verify``."""

    ok: bool
    #: ``(audit table, audit_id)`` of the first row that no longer matches (``audit_id`` is
    #: ``None`` when the chain itself is broken there), or ``None``.
    first_broken: tuple[str, int | None] | None = None
    #: What is wrong, in words.
    problem: str | None = None
    #: The chain's head (hex), ``None`` while nothing is sealed (with audit tables in several
    #: schemas, each has a chain: the head of the last one verified).
    head: str | None = None
    #: Sealed rows verified (when broken: those of the tables verified before the break).
    sealed_rows: int = 0
    #: Audit rows not sealed yet (written since the last seal, or never sealed at all).
    unsealed_rows: int = 0
    erasures: tuple[Erasure, ...] = field(default_factory=tuple)
    removed: tuple[Removed, ...] = field(default_factory=tuple)


class _Broken(Exception):
    def __init__(self, audit_table: str, audit_id: int | None, problem: str) -> None:
        super().__init__(problem)
        self.where = (audit_table, audit_id)
        self.problem = problem


def verify(
    bind: Bind,
    target: Any = None,
    *,
    anchor: str | None = None,
) -> Verified:
    """Verify the chain of every schema holding ``target``'s audit tables (a MetaData, an
    audited Table or mapped class; every declared audited table when ``None``) and the sealed
    rows of those tables.

    ``anchor``: a head printed earlier (64 hex digits, any case, spaces around ignored); the
    chain must still contain it.  Run it as the audit owner (it reads the chain's keys).  Reads
    only, in one transaction.
    """
    anchor = None if anchor is None else normal_head(anchor)
    tables = audited_targets(target)
    with bound_connection(bind) as connection:
        connection.execute(sa.select(sa.func.set_config("work_mem", "256MB", True)))
        specs = [resolve_spec(connection, table.info[SPEC_KEY]) for table in tables]
        by_schema: dict[str | None, list[str]] = defaultdict(list)
        for spec in specs:
            by_schema[spec.schema].append(spec.audit_table)
        head, rows, unsealed, anchored = None, 0, 0, anchor is None
        erasures: list[Erasure] = []
        removed: list[Removed] = []
        try:
            for schema, audit_tables in by_schema.items():
                refuse_foreign_seal_tables(connection, schema)
                chained = _chain.exists(connection, schema)
                if chained:
                    _chain.lock(connection, schema, shared=True)
                _chain.canonical_text(connection, schema)
                records = _chain.records(connection, schema) if chained else []
                head = records[-1].head.hex() if records else head
                _check_links(records)
                anchored = anchored or any(r.head.hex() == anchor for r in records)
                erasures += _erasures(records, audit_tables)
                removed += _removed(records, audit_tables)
                for audit_table in audit_tables:
                    unsealed += _unsealed(connection, schema, audit_table, records)
                    rows += _check_table(connection, schema, audit_table, records)
                _chain.restore_caller_path(connection)
        except _Broken as broken:
            _chain.restore_caller_path(connection)
            return Verified(
                ok=False,
                first_broken=broken.where,
                problem=broken.problem,
                head=head,
                sealed_rows=rows,
                unsealed_rows=unsealed,
            )
        outcome = Verified(
            ok=True,
            head=head,
            sealed_rows=rows,
            unsealed_rows=unsealed,
            erasures=tuple(erasures),
            removed=tuple(removed),
        )
        if not anchored:
            problem = f"the anchored head {anchor} is not in the chain: it was rewritten"
            return replace(outcome, ok=False, problem=problem)
        return outcome


def normal_head(text: str) -> str:
    """A head as printed (64 lowercase hex digits), from ``text`` in any case and padding."""
    head = text.strip().lower()
    if len(head) != 64 or any(c not in "0123456789abcdef" for c in head):
        raise ValueError(f"anchor {text!r} is not a chain head (64 hexadecimal digits)")
    return head


def _check_links(records: Sequence[_chain.Record]) -> None:
    record = _chain.first_broken_link(records)
    if record is not None:
        raise _Broken(
            record.audit_table,
            None,
            f"chain record {record.seal_id} ({record.kind}, {record.segment}) was changed, "
            "or a record before it was removed",
        )


def _erasures(records: Iterable[_chain.Record], audit_tables: Sequence[str]) -> list[Erasure]:
    return [
        Erasure(
            audit_table=r.audit_table,
            marker_id=r.range_high,
            columns=r.columns,
            rows=r.row_count,
            reason=r.detail,
            erased_by=r.recorded_by,
            erased_at=r.recorded_at,
        )
        for r in records
        if r.kind == ERASURE_OPERATION_CODE and r.audit_table in audit_tables
    ]


def _removed(records: Iterable[_chain.Record], audit_tables: Sequence[str]) -> list[Removed]:
    return [
        Removed(
            audit_table=r.audit_table,
            partition=r.segment,
            rows=r.row_count,
            removed_by=r.recorded_by,
            removed_at=r.recorded_at,
        )
        for r in records
        if r.kind == REMOVED_OPERATION and r.audit_table in audit_tables
    ]


def _unsealed(
    connection: sa.Connection,
    schema: str | None,
    audit_table: str,
    records: Sequence[_chain.Record],
) -> int:
    """Rows above every seal of ``audit_table`` (retention markers are never sealed)."""
    sealed_to = max(
        (
            r.range_high
            for r in records
            if r.kind == SEAL_OPERATION and r.audit_table == audit_table
        ),
        default=None,
    )
    table = relation_table(schema, audit_table, ())
    count = sa.select(sa.func.count()).where(table.c[AUDIT_OPERATION] != RETENTION_OPERATION_CODE)
    if sealed_to is not None:
        count = count.where(table.c[AUDIT_ID] > sealed_to)
    return int(connection.execute(count).scalar_one())


def _check_removed(
    connection: sa.Connection,
    schema: str | None,
    audit_table: str,
    records: Sequence[_chain.Record],
) -> None:
    """No row left where the chain says a partition's sealed rows went."""
    table = relation_table(schema, audit_table, ())
    for record in records:
        if record.kind != REMOVED_OPERATION or record.audit_table != audit_table:
            continue
        where = [table.c[AUDIT_ID] > record.range_low, table.c[AUDIT_ID] <= record.range_high]
        if record.lower_bound is not None and record.upper_bound is not None:
            stamp = table.c[AUDIT_TIMESTAMP]
            where += [stamp >= record.lower_bound, stamp < record.upper_bound]
        for audit_id, _, _, _, _ in stream_rows(connection, table, (), sa.and_(*where)):
            raise _Broken(
                audit_table,
                audit_id,
                f"partition {record.segment!r} was recorded as removed (chain record "
                f"{record.seal_id}) but its rows are still in the audit table",
            )


def _check_table(
    connection: sa.Connection,
    schema: str | None,
    audit_table: str,
    records: Sequence[_chain.Record],
) -> int:
    """Check every live segment of ``audit_table``; returns how many rows they hold."""
    _check_removed(connection, schema, audit_table, records)
    removed: set[int] = set()
    for record in records:
        if record.kind == REMOVED_OPERATION and record.audit_table == audit_table:
            gone = removed_segments(
                records[: records.index(record)],
                audit_table,
                record.lower_bound,
                record.upper_bound,
            )
            removed.update(r.seal_id for r in gone)
    segments = [
        r
        for r in records
        if r.kind == SEAL_OPERATION and r.audit_table == audit_table and r.seal_id not in removed
    ]
    if not segments:
        return 0
    erased = _erased(connection, schema, audit_table)
    _check_erasures(connection, schema, audit_table, records, erased)
    trees = _chain.key_trees(connection, schema, segments)
    places: dict[tuple[Any, Any], list[_chain.Record]] = defaultdict(list)
    for segment in segments:
        places[(segment.lower_bound, segment.upper_bound)].append(segment)
    sealed_to = max(s.range_high for s in segments)
    all_columns = tuple(dict.fromkeys(c for s in segments for c in s.columns))
    committed = committed_columns(connection, schema, audit_table)
    present = set(committed)
    for column in all_columns:
        if column not in present:
            raise _Broken(audit_table, None, f"sealed column {column!r} was dropped")
    # Columns added after a segment was sealed hold nothing in its rows (a new column is NULL
    # in rows written before it): a value there would be history its seal never saw.
    all_columns += tuple(c for c in committed if c not in all_columns)
    for (lower, upper), group in sorted(places.items(), key=lambda item: str(item[0])):
        table = relation_table(schema, audit_table, all_columns)
        where = [table.c[AUDIT_ID] <= sealed_to]
        if lower is not None and upper is not None:
            where += [table.c[AUDIT_TIMESTAMP] >= lower, table.c[AUDIT_TIMESTAMP] < upper]
        rows = stream_rows(connection, table, all_columns, sa.and_(*where))
        _check_place(connection, schema, audit_table, group, rows, all_columns, trees, erased)
    _check_outside(connection, schema, audit_table, places, sealed_to)
    return sum(s.row_count for s in segments)


def _check_erasures(
    connection: sa.Connection,
    schema: str | None,
    audit_table: str,
    records: Sequence[_chain.Record],
    erased: Mapping[int, tuple[int, dict[str, str], dict[str, str]]],
) -> None:
    """Each erased column of a sealed row is one an ``E`` record erased from that row, and
    each ``E`` record's material is as it committed to."""
    authorised: set[tuple[int, str]] = set()
    for record in records:
        if record.kind != ERASURE_OPERATION_CODE or record.audit_table != audit_table:
            continue
        ids = _chain.erased_ids(connection, schema, record.seal_id)
        material = [(i, erased[i][2]) for i in ids if i in erased]
        if len(material) < len(ids) or (
            _chain.erasure_digest(record.columns, material) != record.digest
        ):
            raise _Broken(
                audit_table,
                next((i for i in ids if i not in erased), None),
                f"the material of erasure {record.range_high} (chain record {record.seal_id}) "
                "was changed",
            )
        authorised.update((i, column) for i in ids for column in record.columns)
    for audit_id, (marker, _, commitments) in sorted(erased.items()):
        for column in commitments:
            if (audit_id, column) not in authorised:
                raise _Broken(
                    audit_table,
                    audit_id,
                    f"column {column!r} was erased without an erasure record ({marker})",
                )


def _check_place(
    connection: sa.Connection,
    schema: str | None,
    audit_table: str,
    group: list[_chain.Record],
    rows: Iterable[Row],
    all_columns: tuple[str, ...],
    trees: Mapping[int, KeyTree],
    erased: Mapping[int, tuple[int, dict[str, str], dict[str, str]]],
) -> None:
    """Walk one partition's rows in ``audit_id`` order along its segments."""
    group = sorted(group, key=lambda s: s.range_low)
    at, digest, count = 0, hashlib.sha256(b"audit-segment\x00"), 0
    #: Each row read: its audit_id (8 bytes) and tag, compact, to name the first that differs.
    digests = bytearray()
    positions = {name: i for i, name in enumerate(all_columns)}
    unsealed = {s.seal_id: [c for c in all_columns if c not in s.columns] for s in group}

    def close(segment: _chain.Record) -> None:
        if count != segment.row_count or digest.digest() != segment.digest:
            raise _Broken(
                audit_table,
                _first_difference(connection, schema, segment, digests),
                f"sealed rows of segment {segment.seal_id} ({segment.segment}) changed",
            )

    for audit_id, operation, moment_text, moment, values in rows:
        while at < len(group) and audit_id > group[at].range_high:
            close(group[at])
            at, digest, count = at + 1, hashlib.sha256(b"audit-segment\x00"), 0
            digests = bytearray()
        if at == len(group) or not group[at].covers(audit_id, moment):
            raise _Broken(audit_table, audit_id, "a row was added inside the sealed range")
        segment = group[at]
        picked = tuple(values[positions[name]] for name in segment.columns)
        for name in unsealed[segment.seal_id]:
            if values[positions[name]] is not None:
                raise _Broken(
                    audit_table,
                    audit_id,
                    f"column {name!r}, not sealed in segment {segment.seal_id}, holds a value",
                )
        row = _row_digest(
            audit_table,
            segment,
            trees[segment.seal_id],
            erased.get(audit_id),
            audit_id,
            operation,
            moment_text,
            picked,
        )
        digest.update(row)
        digests += audit_id.to_bytes(8, "big", signed=True) + row[:TAG_BYTES]
        count += 1
    while at < len(group):
        close(group[at])
        at, digest, count = at + 1, hashlib.sha256(b"audit-segment\x00"), 0
        digests = bytearray()


def _row_digest(
    audit_table: str,
    segment: _chain.Record,
    tree: KeyTree,
    erased: tuple[int, dict[str, str], dict[str, str]] | None,
    audit_id: int,
    operation: str,
    moment: str,
    values: tuple[str | None, ...],
) -> bytes:
    if erased is None:
        key = tree.leaf(audit_id - segment.range_low - 1)
        if key is None:
            raise _Broken(audit_table, audit_id, "the row's key was destroyed without an erasure")
        return row_digest(
            audit_id, operation, moment, row_commitments(key, segment.columns, values)
        )
    _, kept, commitments = erased
    parts = []
    for column, value in zip(segment.columns, values, strict=True):
        if column in commitments:
            if value is not None:
                raise _Broken(audit_table, audit_id, f"erased column {column!r} holds a value")
            parts.append(bytes.fromhex(commitments[column]))
        elif column in kept:
            parts.append(commitment(bytes.fromhex(kept[column]), value))
        else:
            raise _Broken(audit_table, audit_id, f"erasure left no key for column {column!r}")
    return row_digest(audit_id, operation, moment, parts)


def _first_difference(
    connection: sa.Connection, schema: str | None, segment: _chain.Record, digests: bytearray
) -> int | None:
    """The first row of ``segment`` whose id or tag differs from its row index."""
    index = _chain.row_index(connection, schema, segment.seal_id)
    sealed = [
        (
            segment.range_low + int.from_bytes(index[i : i + OFFSET_BYTES], "big"),
            index[i + OFFSET_BYTES : i + ROW_INDEX_ENTRY],
        )
        for i in range(0, len(index), ROW_INDEX_ENTRY)
    ]
    found = [
        (int.from_bytes(digests[i : i + 8], "big", signed=True), digests[i + 8 : i + 8 + TAG_BYTES])
        for i in range(0, len(digests), 8 + TAG_BYTES)
    ]
    for (sealed_id, tag), (audit_id, row_tag) in zip(sealed, found, strict=False):
        if sealed_id != audit_id or tag != row_tag:
            return min(sealed_id, audit_id)
    if len(sealed) > len(found):
        return sealed[len(found)][0]
    return found[len(sealed)][0] if len(found) > len(sealed) else segment.range_low + 1


def _check_outside(
    connection: sa.Connection,
    schema: str | None,
    audit_table: str,
    places: Mapping[tuple[Any, Any], Sequence[_chain.Record]],
    sealed_to: int,
) -> None:
    """No row in a sealed range outside every sealed partition's time."""
    bounded = [(lower, upper) for lower, upper in places if lower is not None]
    if len(bounded) < len(places):
        return  # one segment covers all time: nothing is outside
    table = relation_table(schema, audit_table, ())
    stamp = table.c[AUDIT_TIMESTAMP]
    inside = sa.or_(*(sa.and_(stamp >= lower, stamp < upper) for lower, upper in bounded))
    lowest = min(s.range_low for group in places.values() for s in group)
    for audit_id, _, _, _, _ in stream_rows(
        connection,
        table,
        (),
        sa.and_(table.c[AUDIT_ID] > lowest, table.c[AUDIT_ID] <= sealed_to, sa.not_(inside)),
    ):
        raise _Broken(audit_table, audit_id, "a row was added inside the sealed range")


def _erased(
    connection: sa.Connection, schema: str | None, audit_table: str
) -> dict[int, tuple[int, dict[str, str], dict[str, str]]]:
    table = _chain.erased_table(schema)
    rows = connection.execute(sa.select(table).where(table.c.audit_table == audit_table))
    return {row.audit_id: (row.marker_id, row.kept_keys, row.commitments) for row in rows}
