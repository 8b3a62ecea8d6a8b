"""The chain and its side tables in the database: creating them, taking turns on them, reading
and appending records, and the per-segment key trees and row indexes.

Every writer of the chain (``seal``, ``erase``, ``record_removed_partition``) holds a
transaction-level advisory lock of the schema's chain first, so records are appended one at a
time and each links to the head before it.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ..install.adoption import refuse_foreign_seal_tables
from ..install.ddl import AuditDDL
from ..render.partitioning import OTHER_GRANTEES, revoke_everything
from ..render.seals import (
    CANONICAL_SETTINGS,
    ERASURE_OPERATION_CODE,
    SEAL_ERASED_TABLE,
    SEAL_KEYS_TABLE,
    SEAL_PENDING_TABLE,
    SEAL_ROWS_TABLE,
    SEAL_TABLES,
    SEALS_TABLE,
    create_seal_tables,
)
from ..render.sql import name_text, quote
from ._digest import GENESIS, KeyTree, chain_head, tree_depth

#: First key of the chain's advisory lock (the second is the schema's).
_LOCK_CLASS = 0x5345_414C  # "SEAL"

_TEXTS = postgresql.ARRAY(sa.Text)


def seals_table(schema: str | None) -> sa.TableClause:
    return sa.table(
        SEALS_TABLE,
        sa.column("seal_id", sa.BigInteger),
        sa.column("kind", sa.Text),
        sa.column("audit_table", sa.Text),
        sa.column("segment", sa.Text),
        sa.column("lower_bound", sa.DateTime(timezone=True)),
        sa.column("upper_bound", sa.DateTime(timezone=True)),
        sa.column("range_low", sa.BigInteger),
        sa.column("range_high", sa.BigInteger),
        sa.column("row_count", sa.BigInteger),
        sa.column("columns", _TEXTS),
        sa.column("digest", sa.LargeBinary),
        sa.column("detail", sa.Text),
        sa.column("recorded_by", sa.Text),
        sa.column("recorded_at", sa.DateTime(timezone=True)),
        sa.column("prev_head", sa.LargeBinary),
        sa.column("head", sa.LargeBinary),
        schema=schema,
    )


def keys_table(schema: str | None) -> sa.TableClause:
    return sa.table(
        SEAL_KEYS_TABLE,
        sa.column("seal_id", sa.BigInteger),
        sa.column("depth", sa.Integer),
        sa.column("prefix", sa.BigInteger),
        sa.column("key", sa.LargeBinary),
        schema=schema,
    )


def rows_table(schema: str | None) -> sa.TableClause:
    return sa.table(
        SEAL_ROWS_TABLE,
        sa.column("seal_id", sa.BigInteger),
        sa.column("row_index", sa.LargeBinary),
        schema=schema,
    )


def erased_table(schema: str | None) -> sa.TableClause:
    return sa.table(
        SEAL_ERASED_TABLE,
        sa.column("audit_table", sa.Text),
        sa.column("audit_id", sa.BigInteger),
        sa.column("marker_id", sa.BigInteger),
        sa.column("kept_keys", postgresql.JSONB),
        sa.column("commitments", postgresql.JSONB),
        schema=schema,
    )


def pending_table(schema: str | None) -> sa.TableClause:
    return sa.table(
        SEAL_PENDING_TABLE,
        sa.column("audit_table", sa.Text),
        sa.column("last_value", sa.BigInteger),
        sa.column("running", _TEXTS),
        sa.column("server_started", sa.DateTime(timezone=True)),
        schema=schema,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One record of the chain.  ``S``: rows of ``audit_table`` with ``audit_id`` in
    ``(range_low, range_high]`` and time in ``[lower_bound, upper_bound)`` (a partition; both
    ``None`` when not partitioned); ``R``: such a partition removed; ``E``: an erasure whose
    marker row is ``range_high``."""

    seal_id: int
    kind: str
    audit_table: str
    segment: str
    lower_bound: datetime.datetime | None
    upper_bound: datetime.datetime | None
    range_low: int
    range_high: int
    row_count: int
    columns: tuple[str, ...]
    digest: bytes
    detail: str
    recorded_by: str
    recorded_at: datetime.datetime
    prev_head: bytes
    head: bytes

    def fields(self) -> tuple[object, ...]:
        """What the head commits to, besides the previous head."""
        return (
            self.kind,
            self.audit_table,
            self.segment,
            self.lower_bound,
            self.upper_bound,
            self.range_low,
            self.range_high,
            self.row_count,
            self.columns,
            self.digest,
            self.detail,
            self.recorded_by,
            self.recorded_at,
        )

    def covers(self, audit_id: int, moment: datetime.datetime) -> bool:
        if not self.range_low < audit_id <= self.range_high:
            return False
        if self.lower_bound is None or self.upper_bound is None:
            return True
        return self.lower_bound <= moment < self.upper_bound


def lock(connection: sa.Connection, schema: str | None, *, shared: bool = False) -> None:
    """The chain's lock until the transaction ends: exclusive to append to it, shared to read
    it with the audit tables (``verify``), so that no partition goes while it reads."""
    key = int.from_bytes(hashlib.sha256(str(schema).encode()).digest()[:4], "big", signed=True)
    take = sa.func.pg_advisory_xact_lock_shared if shared else sa.func.pg_advisory_xact_lock
    connection.execute(sa.select(take(_LOCK_CLASS, key)))


def exists(connection: sa.Connection, schema: str | None) -> bool:
    found = connection.execute(sa.select(sa.func.to_regclass(name_text(schema, SEALS_TABLE))))
    return found.scalar() is not None


def prepare(connection: sa.Connection, schema: str | None) -> None:
    """Take the chain's lock, create its tables if need be, and make value text canonical."""
    lock(connection, schema)
    refuse_foreign_seal_tables(connection, schema)
    if not exists(connection, schema):
        for statement in create_seal_tables(schema):
            connection.execute(AuditDDL(statement))
        for table in SEAL_TABLES:  # whatever default privileges gave: the keys are secret
            where = {"t": name_text(schema, table)}
            for grantee in list(connection.execute(sa.text(OTHER_GRANTEES), where).scalars()):
                connection.execute(AuditDDL(revoke_everything(schema, table, grantee)))
    canonical_text(connection, schema)


#: The caller's ``search_path``, kept for the transaction the first time it is pinned.
_CALLER_PATH = "sqlalchemy_postgresql_audit.caller_search_path"


def canonical_text(connection: sa.Connection, schema: str | None) -> None:
    """Settings under which values print the same in every session, until the transaction
    ends: the ``CANONICAL_SETTINGS``, and ``search_path`` set to the audit tables' schema alone
    (a ``regclass`` value prints qualified or not by the path), so unqualified names still
    find the audit tables and the chain.  ``None`` is the caller's own current schema, found
    under the caller's path even after another schema's was pinned in this transaction."""
    setting = sa.func.current_setting
    caller = connection.execute(sa.select(setting(_CALLER_PATH, True))).scalar()
    if not caller:
        caller = connection.execute(sa.select(setting("search_path"))).scalar_one()
        _set(connection, _CALLER_PATH, caller)
    if schema is None:
        _set(connection, "search_path", caller)
        schema = connection.execute(sa.select(sa.func.current_schema())).scalar() or "public"
    for name, value in (*CANONICAL_SETTINGS, ("search_path", quote(schema))):
        _set(connection, name, value)


def restore_caller_path(connection: sa.Connection) -> None:
    """Give the caller's ``search_path`` back (after ``canonical_text``), so that a schema
    pinned for one audit table does not leak into what the transaction does next."""
    caller = connection.execute(sa.select(sa.func.current_setting(_CALLER_PATH, True))).scalar()
    if caller:
        _set(connection, "search_path", caller)


def _set(connection: sa.Connection, name: str, value: str) -> None:
    connection.execute(sa.select(sa.func.set_config(name, value, True)))


def records(connection: sa.Connection, schema: str | None) -> list[Record]:
    table = seals_table(schema)
    rows = connection.execute(sa.select(table).order_by(table.c.seal_id)).mappings()
    return [_record(row) for row in rows]


def _record(row: Any) -> Record:
    values = dict(row)
    values["columns"] = tuple(values["columns"])
    for name in ("digest", "prev_head", "head"):
        values[name] = bytes(values[name])
    return Record(**values)


def append(connection: sa.Connection, schema: str | None, **fields: Any) -> Record:
    """Append a record linked to the current head (hold the chain's lock)."""
    table = seals_table(schema)
    last = connection.execute(
        sa.select(table.c.head).order_by(table.c.seal_id.desc()).limit(1)
    ).scalar()
    who, when = connection.execute(sa.select(sa.func.current_user(), sa.func.now())).one()
    draft = Record(
        seal_id=0,
        recorded_by=who,
        recorded_at=when,
        prev_head=GENESIS if last is None else bytes(last),
        head=b"",
        **fields,
    )
    head = chain_head(draft.prev_head, draft.fields())
    values = {name: getattr(draft, name) for name in Record.__slots__ if name != "seal_id"}
    values["head"] = head
    values["columns"] = list(draft.columns)
    seal_id = connection.execute(
        sa.insert(table).values(values).returning(table.c.seal_id)
    ).scalar_one()
    return Record(**{**values, "columns": draft.columns, "seal_id": seal_id})


def key_trees(
    connection: sa.Connection, schema: str | None, segments: Sequence[Record]
) -> dict[int, KeyTree]:
    """The key tree of each segment (empty frontier when its keys were destroyed)."""
    table = keys_table(schema)
    wanted = [segment.seal_id for segment in segments]
    frontiers: dict[int, dict[tuple[int, int], bytes]] = {seal_id: {} for seal_id in wanted}
    rows = connection.execute(sa.select(table).where(table.c.seal_id.in_(wanted)))
    for row in rows:
        frontiers[row.seal_id][(row.depth, row.prefix)] = bytes(row.key)
    return {
        segment.seal_id: KeyTree(
            tree_depth(segment.range_low, segment.range_high), frontiers[segment.seal_id]
        )
        for segment in segments
    }


def store_tree(connection: sa.Connection, schema: str | None, seal_id: int, tree: KeyTree) -> None:
    table = keys_table(schema)
    connection.execute(sa.delete(table).where(table.c.seal_id == seal_id))
    if tree.frontier:
        connection.execute(
            sa.insert(table),
            [
                {"seal_id": seal_id, "depth": depth, "prefix": prefix, "key": key}
                for (depth, prefix), key in tree.frontier.items()
            ],
        )


def row_index(connection: sa.Connection, schema: str | None, seal_id: int) -> bytes:
    table = rows_table(schema)
    found = connection.execute(
        sa.select(table.c.row_index).where(table.c.seal_id == seal_id)
    ).scalar()
    return b"" if found is None else bytes(found)


def append_erasure(
    connection: sa.Connection,
    schema: str | None,
    *,
    audit_table: str,
    marker: int,
    columns: tuple[str, ...],
    rows: int,
    reason: str,
) -> Record:
    """Append the ``E`` record of the erasure whose marker row is ``marker``, after its
    material (``erased_table``) is stored: the record's digest commits to the sealed rows it
    touched and the commitments that now stand for their erased values, and the row ids are
    kept beside it, so that ``verify`` accepts that material for exactly those rows and
    columns (an old record cannot authorise a later, forged erasure)."""
    table = erased_table(schema)
    found = connection.execute(
        sa.select(table.c.audit_id, table.c.commitments)
        .where(table.c.audit_table == audit_table, table.c.marker_id == marker)
        .order_by(table.c.audit_id)
    )
    material = [(row.audit_id, row.commitments) for row in found]
    record = append(
        connection,
        schema,
        kind=ERASURE_OPERATION_CODE,
        audit_table=audit_table,
        segment="",
        lower_bound=None,
        upper_bound=None,
        range_low=marker,
        range_high=marker,
        row_count=rows,
        columns=columns,
        digest=erasure_digest(columns, material),
        detail=reason,
    )
    ids = b"".join(audit_id.to_bytes(8, "big", signed=True) for audit_id, _ in material)
    connection.execute(sa.insert(rows_table(schema)).values(seal_id=record.seal_id, row_index=ids))
    restore_caller_path(connection)
    return record


def erasure_digest(
    columns: Sequence[str], material: Sequence[tuple[int, Mapping[str, str]]]
) -> bytes:
    """What an ``E`` record commits to: each sealed row erased (by ``audit_id``) and the
    commitments of the columns it erased."""
    digest = hashlib.sha256(b"audit-erasure\x00")
    for audit_id, commitments in material:
        digest.update(audit_id.to_bytes(8, "big", signed=True))
        for column in columns:
            digest.update(_sized(commitments.get(column, "").encode()))
    return digest.digest()


def erased_ids(connection: sa.Connection, schema: str | None, seal_id: int) -> list[int]:
    """The sealed rows an ``E`` record's erasure touched (``append_erasure``)."""
    ids = row_index(connection, schema, seal_id)
    return [int.from_bytes(ids[i : i + 8], "big", signed=True) for i in range(0, len(ids), 8)]


def _sized(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def first_broken_link(records: Sequence[Record]) -> Record | None:
    """The first record that does not link to the one before it, or was changed."""
    previous = GENESIS
    for record in records:
        if record.prev_head != previous or chain_head(previous, record.fields()) != record.head:
            return record
        previous = record.head
    return None
