"""Before a baseline of a CDC table: wait until its consumer has written every change of the
table that committed before the baseline's lock.

A CDC table's trail is written after the fact, by a consumer reading the slot.  A baseline
taken while the consumer lags compares the table with a trail that misses committed changes:
it would record ``B`` versions of rows whose INSERT or UPDATE the consumer writes afterwards
(out of commit order, and a rebuilt old row then equal to the new one).  So, after the lock
(writers wait from then on), the baseline waits until the slot's ``confirmed_flush_lsn``
passes the WAL position read after the lock, and its next statement, at READ COMMITTED, sees
what the consumer wrote.

It waits only when something can be pending: the table is in its publication (not just put
there by this transaction), the slot exists and is not lost, and a row of the table was
written by a transaction that may not be decoded yet (its ``xmin`` is not older than the slot's
``catalog_xmin``; every transaction older than that ended before the slot's restart point, so
the consumer has passed its commit).  Rows older than the slot, the usual reason for a baseline,
never make it wait.

Rows the baseline's own transaction wrote by INSERT or UPDATE (or its savepoints: their
``xmin`` is a transaction still in progress, and a visible row of an in-progress transaction is
this session's) reach the trail through the consumer once it commits: the baseline leaves them
out, as the triggers' own rows leave them out in trigger mode, and never waits for them
(nothing of a transaction is decoded before it commits).  A table rewrite (``ALTER COLUMN ...
TYPE ... USING``) also gives every row this transaction's ``xmin``, and the WAL never carries
it: so rows are left out only when the transaction wrote the table by DML
(``pg_stat_xact_all_tables``); a rewrite alone is recorded, as the docs ask after one.  (A
committed change to a row this transaction rewrote is then not waited for: the row's ``xmin``
no longer shows it.)
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Executable,
    Text,
    bindparam,
    cast,
    column,
    exists,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.types import UserDefinedType

from ..declare.cdc import cdc_names
from ..errors import AuditError
from ..render.cdc_decoder import PROGRESS_TABLE
from ..render.sql import name_text
from ._target import Audited

_WRAP = 4294967296
_HALF = 2147483648


class _Xid8(UserDefinedType[str]):
    """``xid8`` (PostgreSQL 13+), the full transaction id ``pg_xact_status`` takes."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "pg_catalog.xid8"


_XID8 = _Xid8()

#: How long ``record_baseline`` waits for the consumer by default, in seconds.
DEFAULT_TIMEOUT = 30.0

_SLOTS = table(
    "pg_replication_slots",
    column("slot_name"),
    column("database"),
    column("confirmed_flush_lsn"),
    column("catalog_xmin"),
    column("wal_status"),
    schema="pg_catalog",
)
#: Whether ``:table`` is in ``:publication`` other than by this transaction's own change.
_PUBLISHED_BEFORE = text(
    "SELECT EXISTS (SELECT FROM pg_catalog.pg_publication_rel r "
    "JOIN pg_catalog.pg_publication p ON p.oid OPERATOR(pg_catalog.=) r.prpubid "
    "WHERE p.pubname OPERATOR(pg_catalog.=) :publication "
    "AND r.prrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(:table) "
    "AND r.xmin::text OPERATOR(pg_catalog.<>) "
    "COALESCE((pg_catalog.txid_current_if_assigned() % 4294967296)::text, ''))"
)
#: Whether this transaction (savepoints included) inserted or updated rows of ``:table``.
_WROTE_HERE = text(
    "SELECT COALESCE(pg_catalog.sum(n_tup_ins OPERATOR(pg_catalog.+) n_tup_upd) "
    "OPERATOR(pg_catalog.>) 0, false) FROM pg_catalog.pg_stat_xact_all_tables "
    "WHERE relid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(:table)"
)
_PASSED = text(
    "SELECT s.confirmed_flush_lsn OPERATOR(pg_catalog.>=) CAST(:lsn AS pg_catalog.pg_lsn), "
    "s.confirmed_flush_lsn, s.wal_status, pg_catalog.pg_sleep(:pause) "
    "FROM pg_catalog.pg_replication_slots s WHERE s.slot_name OPERATOR(pg_catalog.=) :slot"
).bindparams(bindparam("pause", type_=None))


def written_here(xmin: Any) -> Any:
    """Whether a visible row whose ``xmin`` column is ``xmin`` was written by this transaction
    or one of its savepoints: its ``xmin`` is still in progress.  The 32-bit ``xmin`` is
    widened to a full id by its signed distance from the current snapshot's ``xmax`` (every
    live id is within 2^31 of it; this transaction's own ids may be past it); older rows come
    out too old to have a status, NULL: not written here."""
    snapshot = func.pg_catalog.pg_current_snapshot()
    newest = cast(cast(func.pg_catalog.pg_snapshot_xmax(snapshot), Text), BigInteger)
    behind = (newest % _WRAP - cast(cast(xmin, Text), BigInteger) + _WRAP + _HALF) % _WRAP - _HALF
    full = cast(cast(func.greatest(newest - behind, 0), Text), _XID8)
    return func.coalesce(func.pg_catalog.pg_xact_status(full) == "in progress", False)


#: Bound: ``slot``, ``publication``, ``progress``.  Seen from this database, where a CDC
#: table's trail is written: whether this is design 1's target (a subscription named after the
#: slot reads the publication: the table here is its replica); whether a consumer records its
#: runs here (the progress table exists: the decoder, or design 1's target); and whether the
#: slot of this database has been read by something else than a decoder here (transactions
#: decoded, or a walsender streaming it now: design 1's subscription), so that this database,
#: with no progress table, is design 1's source and not a decoder's before its first run.
_TRAIL_HERE = text(
    "SELECT EXISTS (SELECT FROM pg_catalog.pg_subscription s "
    "JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.subdbid "
    "WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database() "
    "AND s.subname OPERATOR(pg_catalog.=) :slot "
    "AND CAST(:publication AS pg_catalog.text) OPERATOR(pg_catalog.=) ANY (s.subpublications)), "
    "pg_catalog.to_regclass(:progress) IS NOT NULL, "
    "EXISTS (SELECT FROM pg_catalog.pg_replication_slots r "
    "LEFT JOIN pg_catalog.pg_stat_replication_slots t "
    "ON t.slot_name OPERATOR(pg_catalog.=) r.slot_name "
    "WHERE r.slot_name OPERATOR(pg_catalog.=) :slot "
    "AND r.database OPERATOR(pg_catalog.=) pg_catalog.current_database() "
    "AND (t.total_txns OPERATOR(pg_catalog.>) 0 OR EXISTS (SELECT FROM "
    "pg_catalog.pg_stat_replication w WHERE w.pid OPERATOR(pg_catalog.=) r.active_pid)))"
)


def refuse_trail_elsewhere(
    target: Audited, what: str, *, writes: Literal["table", "trail"] = "table"
) -> Generator[Executable, Any, None]:
    """Steps that refuse to write a CDC table (``writes="table"``: ``restore``) or its audit
    table (``writes="trail"``: ``record_baseline``) where the table's trail is not written.

    Design 1's source: its audit table stopped where CDC began (the trail is written on the
    target), so a version read there is stale and one recorded there is read by nothing.  A
    table is refused here when no consumer records its runs in this database; its audit table
    only once the slot shows it is read from elsewhere (a decoder that has not run yet will
    write its trail here, starting from the versions recorded before).  Design 1's target:
    the table is the subscription's replica, which a write would make differ from the source;
    its audit table is the trail."""
    if not target.spec.cdc:
        return
    names = cdc_names(target.source.metadata)
    found = yield _TRAIL_HERE.bindparams(
        slot=names.slot, publication=names.publication, progress=name_text(None, PROGRESS_TABLE)
    )
    replica, consumer_here, read_elsewhere = found.one()
    table = name_text(target.source.schema, target.source.name)
    if writes == "trail":
        if not consumer_here and read_elsewhere:
            raise AuditError(
                f"{what} of CDC table {table!r}: no consumer writes its trail in this database: "
                f"its slot {names.slot!r} is read from elsewhere (design 1: the trail is written "
                "on the consumer's target), so versions recorded in its audit table here are "
                "read by nothing and the trail would not hold them. Record it on the consumer's "
                "target (a connection to the target database, or --url TARGET)"
            )
        return
    if replica:
        raise AuditError(
            f"{what} of CDC table {table!r}: this database is the target of its subscription "
            f"{names.slot!r}, where the table is a replica of the source's; a write here would "
            "make it differ from the source. Read the version here (history) and write it on "
            "the source database"
        )
    if not consumer_here:
        raise AuditError(
            f"{what} of CDC table {table!r}: no consumer writes its trail in this database (with "
            "a replica on another server, the trail is written there), so the audit table here "
            "stopped where CDC began. Read the version on the consumer's target (history) and "
            "write it here"
        )


def wait_for_consumer(target: Audited, timeout: float) -> Generator[Executable, Any, bool]:
    """Steps (after the baseline's lock) that return once nothing of ``target`` committed
    before them waits for its consumer; an ``AuditError`` naming the slot after ``timeout``
    seconds.  Returns whether the baseline leaves out the rows this transaction wrote
    (``written_here``): the consumer writes them (a CDC table published before this
    transaction, which inserted or updated its rows)."""
    if not target.spec.cdc:
        return False
    names = cdc_names(target.source.metadata)
    schema = target.source.schema
    name = name_text(schema, target.source.name)
    result = yield _PUBLISHED_BEFORE.bindparams(publication=names.publication, table=name)
    if not result.scalar_one():
        return False
    wrote = yield _WROTE_HERE.bindparams(table=name)
    leave_out = bool(wrote.scalar_one())
    rows = target.source.alias("t")
    xmin: Any = literal_column("t.xmin")
    pending = (
        exists()
        .select_from(rows)
        .where(
            func.pg_catalog.age(xmin) <= func.pg_catalog.age(_SLOTS.c.catalog_xmin),
            # Nothing of this transaction is decoded before it commits: never waited for.
            ~written_here(xmin),
        )
    )
    state = yield select(
        pending,
        func.pg_catalog.pg_current_wal_lsn(),
        _SLOTS.c.wal_status,
        func.pg_catalog.current_setting("transaction_isolation"),
    ).where(
        _SLOTS.c.slot_name == names.slot,
        _SLOTS.c.database == func.pg_catalog.current_database(),
    )
    found = state.first()
    if found is None or not found[0] or found[2] == "lost":
        return leave_out
    lsn, isolation = str(found[1]), found[3]
    if isolation != "read committed":
        raise AuditError(
            f"record_baseline of CDC table {target.name!r}: its consumer (slot {names.slot!r}) "
            "may still be writing changes the baseline must see, which a transaction at "
            f"{isolation.upper()} would not; run it at READ COMMITTED"
        )
    deadline = time.monotonic() + timeout
    pause = 0.0
    while True:
        result = yield _PASSED.bindparams(lsn=lsn, slot=names.slot, pause=pause)
        row = result.first()
        if row is None or row[0] or row[2] == "lost":
            return leave_out
        if time.monotonic() >= deadline:
            raise AuditError(
                f"record_baseline of CDC table {target.name!r}: its slot {names.slot!r} has "
                f"not passed the changes committed before the baseline (confirmed "
                f"{row[1]}, needed {lsn}) within {timeout:g} s, and a baseline taken now would "
                "record versions ahead of changes the trail does not hold yet.  Run the "
                "consumer first (cdc run, or Consumer.run() in a worker) and record the "
                "baseline while it runs or once it has caught up; a change this transaction "
                "made reaches it only at commit, so record a baseline in a transaction of its own"
            )
        pause = 0.05
