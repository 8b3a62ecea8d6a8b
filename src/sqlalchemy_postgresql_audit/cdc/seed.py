"""Design 1: rows the stream never carried are copied into the replica, with a baseline.

A subscription replicates changes; rows a source table held before it joined the publication
(a table switched to CDC) or that a partition brought when it was attached never passed through
the slot.  The replica lacks them, and the apply worker skips an UPDATE or DELETE it finds no
row for, without an error (PostgreSQL up to 17 does not even log it by default): those changes
would leave no audit row.

So when it creates the subscription, first meets a table, or what decides the stream's rows
changed on the source since (the table, its membership of the publication, its leaf
partitions: ``SOURCE_SIGNATURE``, recorded on the target), the consumer compares the two sides
and copies what the replica lacks:

0. the row counts are compared without a lock, once the replica holds every change committed
   before the source's count; when they match (the usual case of a premade empty partition)
   nothing else is done;
1. the source table is locked ``IN SHARE MODE`` (its writers wait, its readers do not);
2. a fence committed after the lock is awaited on the target, so the replica holds every change
   committed before the lock;
3. when the row counts differ, the source's rows are copied into a temporary table on the
   target, and the ones the replica lacks (by key; a table without one by whole row) are
   inserted with the audit triggers off and recorded as ``B`` baseline versions, in one target
   transaction, which commits before the source's lock is released.

It refuses, naming the table and how many rows the replica lacks, when the lock cannot be had
within the consumer's timeout, the role may not take it, or the copy fails (a table without a
key whose columns have no equality, such as ``json``).
"""

from __future__ import annotations

import tempfile

from sqlalchemy import Connection, Table, text
from sqlalchemy.exc import DBAPIError

from ..declare.spec import AuditSpec
from ..install.resolve import resolve_specs
from ..render import cdc_replica as sql
from ..render.sql import name_text
from .copy import CHUNK_BYTES, copy_in, copy_out_to
from .errors import CdcError, is_transient
from .fence import commit_fence, wait_for
from .replica import Replica

#: Rows copied from the source stay in memory up to this size, then go to a temporary file.
_SPOOL_BYTES = 32 << 20


def seed_replicas(replica: Replica, timeout: float, *, compare_all: bool = False) -> int:
    """Copy into each replica table the source rows it lacks (each gets a ``B`` version), where
    the source changed since the last comparison (every table with ``compare_all``: a new
    subscription).  Returns the id of the last fence it committed (0: none), so the caller
    deletes the context rows up to it."""
    names = replica.names
    pairs = replica.pairs()
    with replica.source.connect() as source:
        signatures = {
            name_text(table.schema, table.name): source.execute(
                text(sql.SOURCE_SIGNATURE),
                {"table": name_text(table.schema, table.name), "publication": names.publication},
            ).scalar()
            for table, _ in pairs
        }
    with replica.target.connect() as target:
        rows = target.execute(text(sql.seeded_signatures(names.context_schema)))
        recorded = {str(row[0]): str(row[1]) for row in rows}
    fence = 0
    for table, spec in pairs:
        name = name_text(table.schema, table.name)
        signature = signatures[name]
        if signature is None:
            continue  # not on the source (yet): no row of it can be missing
        if compare_all or recorded.get(name) != signature:
            fence = max(fence, _seed(replica, table, spec, str(signature), timeout))
    return fence


def _seed(replica: Replica, table: Table, spec: AuditSpec, signature: str, timeout: float) -> int:
    """Compare one table, copy what its replica lacks; the fence's id (0: none needed)."""
    name = name_text(table.schema, table.name)
    count = text(sql.count_rows(table.schema, table.name))
    with replica.source.connect() as source, replica.target.connect() as target:
        source_rows = int(source.execute(count).scalar_one())
        source.rollback()
        if source_rows == 0:
            # Rows inserted from now on pass through the slot, which the subscription reads.
            _record(target, replica, name, signature, 0)
            target.commit()
            return 0
        # First without the lock, once the replica holds what was committed before the count:
        # a change of the table's leaves (a premade empty partition) usually lacks nothing,
        # and the lock would stall the table's writers for nothing.
        fence = commit_fence(replica.source, replica.names)
        wait_for(replica, fence, timeout)
        lacking = source_rows - int(target.execute(count).scalar_one())
        target.rollback()
        if lacking == 0 and int(source.execute(count).scalar_one()) == source_rows:
            source.rollback()
            _record(target, replica, name, signature, 0)
            target.commit()
            return fence.id
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
            copied = _copy_missing(source, target, replica, table, spec)
        except DBAPIError as error:
            raise _refused(name, lacking, source_rows, "the copy failed", error) from error
        _record(target, replica, name, signature, copied)
        target.commit()
        source.commit()
    return fence.id


def _refused(name: str, lacking: int, rows: int, what: str, error: DBAPIError) -> CdcError:
    """Transient when the cause is (a lock wait that timed out, a lost connection)."""
    refused = CdcError(
        f"cannot seed the target's replica of table {name}: about {max(lacking, 0)} of its "
        f"{rows} source rows are not in it (older than the slot, or brought by an attached "
        "partition), so their UPDATEs and DELETEs would leave no audit row.  Seeding locks "
        f"the source table IN SHARE MODE and copies them, and {what}: "
        f"{str(getattr(error, 'orig', error)).strip()}"
    )
    refused.transient = is_transient(error)
    return refused


def _copy_missing(
    source: Connection, target: Connection, replica: Replica, table: Table, spec: AuditSpec
) -> int:
    """Under the source's lock, with the replica caught up: insert the rows it lacks."""
    count = text(sql.count_rows(table.schema, table.name))
    if source.execute(count).scalar_one() == target.execute(count).scalar_one():
        return 0
    columns = [c.name for c in table.columns if c.computed is None]
    for setting in sql.COPY_SETTINGS:
        source.exec_driver_sql(setting)
        target.exec_driver_sql(setting)
    create, copy = sql.seed_rows_table(table.schema, table.name, columns)
    target.exec_driver_sql(create)
    # Spooled, and sent a chunk at a time: a large table's rows never sit in memory whole.
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        copy_out_to(source, sql.copy_out(table.schema, table.name, columns), {}, spool)
        spool.seek(0)
        copy_in(target, copy, iter(lambda: spool.read(CHUNK_BYTES), b""))
    (capture,) = resolve_specs(target, [spec.capture_spec])
    triggers = [trigger.name for trigger in capture.triggers]
    for trigger in triggers:
        target.exec_driver_sql(sql.set_trigger(table.schema, table.name, trigger, enabled=False))
    insert = sql.insert_missing(
        capture.schema,
        capture.table,
        capture.audit_table,
        columns,
        capture.columns,
        [c.name for c in table.primary_key.columns],
    )
    copied = int(target.exec_driver_sql(insert).scalar_one())
    for trigger in triggers:
        target.exec_driver_sql(sql.set_trigger(table.schema, table.name, trigger, enabled=True))
    return copied


def _record(target: Connection, replica: Replica, name: str, signature: str, rows: int) -> None:
    target.execute(
        text(sql.record_signature(replica.names.context_schema)),
        {"table_name": name, "signature": signature, "seeded_rows": rows},
    )
