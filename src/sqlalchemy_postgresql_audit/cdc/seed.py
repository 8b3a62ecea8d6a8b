"""Design 1: the replica reconciled with the source, by key and values, with a baseline.

A subscription replicates changes; what happens to a source table outside them never reaches
the replica: rows it held before it joined the publication (a table switched to CDC), rows a
partition brought when it was attached, a partition detached or dropped (its rows stay in the
replica), one reloaded for the same keys with new values, detached, edited and attached again,
or truncated (a TRUNCATE of a partition is not published), every change of a lost slot's gap.
The apply worker skips an UPDATE or DELETE it finds no row for, without an error (PostgreSQL up
to 17 does not even log it by default), and stops on an INSERT whose key a stale row holds.

So when it creates the subscription, first meets a table (a table that joined, refreshed into
the subscription), or what decides the stream's rows changed on the source since (the table,
its membership of the publication, its leaf partitions and their versions: ``.signature``,
recorded on the target), the consumer makes the replica equal to the source
(``.reconcile``); every other table is left alone, its writers undisturbed:

0. nothing is done when the source table and its replica are both empty, or when the leaves
   only gained empty partitions (a premade partition): nothing came outside the stream;
1. the source's rows are compared without a lock, once the replica holds every change
   committed before they were read: when nothing differs (a new subscription seeded from the
   install's baseline), nothing else is done; otherwise, from scratch:
2. the source table is locked ``IN SHARE MODE`` (its writers wait, its readers do not);
3. a fence committed after the lock is awaited on the target, so the replica holds every change
   committed before the lock;
4. the source's rows are copied into a temporary table on the target and compared by key and
   values; rows the replica lacks or holds with other values get the source's, recorded as
   ``B`` baseline versions, rows the source lacks are removed, in one target transaction, which
   commits before the source's lock is released.

It refuses, naming the table, when the lock cannot be had within the consumer's timeout, the
role may not take it, or the copy fails.
"""

from __future__ import annotations

import logging
from collections.abc import Set

from sqlalchemy import Connection, Table, text
from sqlalchemy.exc import DBAPIError

from ..declare.spec import AuditSpec
from ..render import cdc_reconcile as reconcile_sql
from ..render import cdc_replica as sql
from ..render.sql import name_text
from .errors import INSUFFICIENT_PRIVILEGE, CdcError, is_transient, sqlstate
from .fence import commit_fence, wait_for
from .reconcile import differences, load, reconcile
from .replica import Replica
from .signature import Signature, oid_array, oids, signatures

_log = logging.getLogger(__name__)

#: ``audit_operation`` recorded for a replica row the source lacks, after a lost slot.
REMOVED_IN_GAP_CODE = "D"


def seed_replicas(
    replica: Replica,
    timeout: float,
    *,
    compare_all: bool = False,
    refreshed: Set[str] = frozenset(),
    after_gap: bool = False,
) -> int:
    """Reconcile each replica table with the source where the source changed outside the
    stream since the last comparison, and the tables of ``refreshed`` (regclass texts: the
    subscription applies them only since its refresh) or, with ``compare_all`` (a new
    subscription), every table.  ``after_gap`` (a new subscription: the stream may have lost
    changes) records the rows the source lacks as ``D`` versions.  Returns the id of the last
    fence it committed (0: none), so the caller deletes the context rows up to it."""
    now, recorded = signatures(replica)
    refreshed_oids = oids(replica, refreshed)
    fence = 0
    for table, spec in replica.pairs():
        name = name_text(table.schema, table.name)
        signature = now[name]
        if signature is None:
            continue  # not on the source (yet): no row of it can be missing
        previous = recorded.get(name)
        always = compare_all or signature.oid in refreshed_oids
        if not always and previous == signature:
            continue
        if (
            not always
            and previous is not None
            and _only_empty_leaves_added(replica, previous, signature)
        ):
            with replica.target.begin() as target:
                _record(target, replica, name, signature.text, 0)
            continue
        removed_code = REMOVED_IN_GAP_CODE if after_gap else None
        # A partition attached with rows, detached or dropped: the replica surely differs.  The
        # same leaves in other versions may well not (a column added, a grant, a VACUUM FULL).
        likely_equal = previous is None or _same_leaves(previous, signature)
        fence = max(
            fence,
            _seed(replica, table, spec, signature.text, timeout, removed_code, likely_equal),
        )
    return fence


def _same_leaves(previous: Signature, now: Signature) -> bool:
    """The same table, publication membership and leaf partitions, maybe in other versions."""
    return previous.table == now.table and previous.leaves == now.leaves


def _only_empty_leaves_added(replica: Replica, previous: Signature, now: Signature) -> bool:
    """Whether the table only gained leaf partitions, all empty (a premade partition), the
    others in the versions last compared: the stream carried every row since, and the SHARE
    lock would stall the table's writers for nothing."""
    before, after = previous.leaf_versions, now.leaf_versions
    if before is None or after is None or previous.table != now.table:
        return False
    if any(not version or after.get(oid) != version for oid, version in before.items()):
        return False  # a leaf left, changed outside the stream, or of an unknown version
    added = after.keys() - before.keys()
    if not added:
        return False
    with replica.source.connect() as source:
        leaves = source.execute(text(reconcile_sql.LEAF_NAMES), {"oids": oid_array(added)})
        return not any(
            source.execute(text(reconcile_sql.has_rows(schema, leaf))).scalar()
            for schema, leaf in leaves.all()
        )


def _seed(
    replica: Replica,
    table: Table,
    spec: AuditSpec,
    signature: str,
    timeout: float,
    removed_code: str | None,
    likely_equal: bool,
) -> int:
    """Reconcile one table under the source's lock, first without it when ``likely_equal``;
    the fence's id (0: none needed)."""
    name = name_text(table.schema, table.name)
    count = text(sql.count_rows(table.schema, table.name))
    with replica.source.connect() as source, replica.target.connect() as target:
        try:
            source_rows = int(source.execute(count).scalar_one())
        except DBAPIError as error:
            if sqlstate(error) != INSUFFICIENT_PRIVILEGE:
                raise
            raise CdcError(
                f"the consumer's role may not read source table {name}: design 1 compares it "
                "with its replica (a new subscription, a table that joined, a partition changed "
                f"outside the stream).  GRANT SELECT ON {name} TO the consumer's role"
            ) from error
        replica_rows = int(target.execute(count).scalar_one())
        source.rollback()
        if source_rows == 0 and replica_rows == 0:
            # Rows inserted from now on pass through the slot, which the subscription reads;
            # a stale row would already be in the replica.
            _record(target, replica, name, signature, 0)
            target.commit()
            return 0
        target.rollback()
        lacking = source_rows - replica_rows
        equal_at = None
        if likely_equal:
            equal_at = _equal_unlocked(replica, source, target, table, timeout)
        if equal_at is not None:
            _record(target, replica, name, signature, 0)
            target.commit()
            return equal_at
        target.rollback()
        source.rollback()
        try:
            source.execute(
                text("SELECT pg_catalog.set_config('lock_timeout', :ms, true)"),
                {"ms": f"{int(timeout * 1000)}ms"},
            )
            source.execute(text(sql.lock_share(table.schema, table.name)))
        except DBAPIError as error:
            raise _refused(name, lacking, source_rows, "locking it failed", error) from error
        fence = commit_fence(replica.source, replica.names)
        wait_for(replica, fence, timeout)
        try:
            load(source, target, table)
            done = reconcile(target, table, spec, removed_code=removed_code)
        except DBAPIError as error:
            raise _refused(name, lacking, source_rows, "the copy failed", error) from error
        _record(target, replica, name, signature, done.changed)
        target.commit()
        source.commit()
    if done.removed:
        _log.warning(
            "change-data-capture replica of table %s: removed %d row(s) the source no longer "
            "has (%s)",
            name,
            done.removed,
            "recorded as D versions: deleted while the stream was lost"
            if removed_code
            else "a partition detached, dropped or truncated; not recorded, as in trigger mode",
        )
    return fence.id


def _equal_unlocked(
    replica: Replica, source: Connection, target: Connection, table: Table, timeout: float
) -> int | None:
    """Whether the source's rows as of now equal the replica's once it holds every change
    committed before them (the fence's id), or ``None``.  Equal, the replica is right (a new
    subscription seeded from the install's baseline, a table met again) and the lock would
    stall the table's writers for nothing; any difference (maybe only a write since) is
    compared again under the lock."""
    try:
        load(source, target, table)
        source.rollback()
        fence = commit_fence(replica.source, replica.names)
        wait_for(replica, fence, timeout)
        return fence.id if differences(target, table) == 0 else None
    except DBAPIError:
        return None  # the locked comparison fails the same way, and says why


def _refused(name: str, lacking: int, rows: int, what: str, error: DBAPIError) -> CdcError:
    """Transient when the cause is (a lock wait that timed out, a lost connection)."""
    refused = CdcError(
        f"cannot seed the target's replica of table {name}: about {max(lacking, 0)} of its "
        f"{rows} source rows are not in it, or differ (older than the slot, brought by an "
        "attached partition, or changed while the stream was lost), so their UPDATEs and "
        "DELETEs would leave no audit row or a wrong one.  Seeding locks the source table IN "
        f"SHARE MODE and compares the rows, and {what}: "
        f"{str(getattr(error, 'orig', error)).strip()}"
    )
    refused.transient = is_transient(error)
    return refused


def _record(target: Connection, replica: Replica, name: str, signature: str, rows: int) -> None:
    target.execute(
        text(sql.record_signature(replica.names.context_schema)),
        {"table_name": name, "signature": signature, "seeded_rows": rows},
    )
