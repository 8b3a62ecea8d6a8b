"""Design 1: a replica starts from the install's baseline, before the subscription applies
any later change of its table.

The transaction that adds a table to the publication also records, under a lock that keeps its
writers waiting until it commits, a ``B`` version of every row in the source's audit table and
the table's row in the joins table (``install.publication.baseline_statements``).  Changes
committed before it are not in the slot's stream (decoded with a catalog where the table was
not published yet) and are in those rows; every change committed after it is in the stream.
So those rows are exactly what the stream's first change of the table applies to.

A new subscription is created disabled; the install's rows go into the replica (its audit
triggers off) and, as the same ``B`` versions, into the target's trail; the table's joins are
recorded seeded; then the subscription is enabled: all in one target transaction, so a
consumer killed on the way leaves nothing and the next one starts again.  A table that joins
later holds the subscription at its join until a run seeds it the same way (``seed_join``,
called by ``.join_seed``).  An UPDATE or DELETE committed between the install and the
consumer's run then finds its row, and is recorded.  A join recorded for a table published
before (a partition attached with rows: ``.attach``) names the versions of that partition's
rows alone: they are copied the same way, replacing any replica row with their keys (a stale
row of a partition detached earlier), whatever else the replica holds.

Where those rows cannot be trusted to be the whole state, the join is recorded seeded all the
same and the table is left to ``.seed``'s copy (rows as they are when it runs): the
publication's row was made by a transaction the slot has passed (a slot made again), or by
another transaction than the join's (an install in a savepoint); an install made before the
joins table existed (it recorded only rows without a version) and the audit table holds rows of
other transactions; a new subscription's replica already holds rows (a join clears the rows
of an earlier life of the table instead: DROP TABLE and leaving the publication never reach the
replica); the audit table does not record every
column as it is (redaction, exclusion); or the consumer's role may not read it.
"""

from __future__ import annotations

import tempfile

from sqlalchemy import Connection, Table, text

from ..declare.audit_table import AUDIT_TABLE_KEY
from ..declare.cdc import CdcNames
from ..declare.spec import AUDIT_ID, AuditSpec
from ..install.resolve import resolve_specs
from ..render import cdc_attach as attach_sql
from ..render import cdc_install_rows as sql
from ..render import cdc_joins as joins_sql
from ..render import cdc_replica as replica_sql
from ..render.sql import name_text, qualified
from .copy import CHUNK_BYTES, copy_in, copy_out_to
from .joins import Join, all_joins, committed_after, joins_of, record_seeded

#: Rows copied from the source stay in memory up to this size, then go to a temporary file.
_SPOOL_BYTES = 32 << 20


def seed_from_install(
    source: Connection,
    target: Connection,
    pairs: list[tuple[Table, AuditSpec]],
    *,
    names: CdcNames,
) -> int:
    """In the target's transaction creating the subscription: copy each table's install
    baseline into its (empty) replica and trail, and record every join so far seeded (the rows
    are there, or left to ``.seed``'s copy); returns how many versions were copied.

    A later join of a table seeded from its install (a partition attached with rows:
    ``.attach``) is in the stream the subscription starts from: it is left waiting, so the
    apply worker holds there until ``.join_seed`` copies that partition's rows (this run)."""
    copied = 0
    later: set[Join] = set()
    for table, spec in pairs:
        joined = joins_of(source, names, name_text(table.schema, table.name))
        xid = _install_transaction(source, target, table, spec, names, {j.xact for j in joined})
        rows = 0 if xid is None else _copy(source, target, table, spec, xid, names, bool(joined))
        for join in joined:
            if xid is not None and committed_after(join.xact, xid):
                later.add(join)
            else:
                record_seeded(target, names, join, rows if join.xact == xid else 0)
        copied += rows
    # Joins of tables these models do not declare (any more): none holds a new subscription
    # for good, nor shows as waiting in ``cdc status``.
    for join in all_joins(source, names):
        if join not in later:
            record_seeded(target, names, join, 0)
    return copied


def seed_join(
    source: Connection,
    target: Connection,
    table: Table,
    spec: AuditSpec,
    join: Join,
    *,
    names: CdcNames,
) -> int:
    """In one target transaction, after the subscription learnt the table (a refresh): copy
    the baseline of the transaction that published it into its replica and trail, and record
    the join seeded, so the apply worker held at it goes on; returns how many versions were
    copied.  Where the baseline cannot be trusted to be the whole state (see the module), the
    join is recorded all the same and ``.seed``'s copy gives the replica its rows."""
    rows = 0
    audit = table.info[AUDIT_TABLE_KEY]
    published = source.execute(
        text(sql.PUBLISHED_BY),
        {"publication": names.publication, "table": name_text(table.schema, table.name)},
    ).scalar()
    readable = source.execute(
        text(joins_sql.MAY_READ), {"audit": name_text(audit.schema, audit.name)}
    ).scalar()
    if readable and _whole_rows(table, spec):
        if published == join.xact:
            # The table's whole state when it was published: what the replica holds of it
            # comes from before (a table dropped and made again, or back in CDC), and goes.
            rows = _copy(source, target, table, spec, join.xact, names, True, clear=True)
        else:
            # A join of a table published before (``.attach``): only the versions of the
            # attached partition's rows, which replace any row the replica holds with their keys.
            rows = _copy(source, target, table, spec, join.xact, names, True, replace=True)
    record_seeded(target, names, join, rows)
    return rows


def _whole_rows(table: Table, spec: AuditSpec) -> bool:
    """Whether the audit table records every stored column as it is (no redaction, no
    exclusion)."""
    stored = {c.name for c in table.columns if c.computed is None}
    return not spec.redacted and stored <= set(spec.columns)


def _replica_empty(target: Connection, table: Table) -> bool:
    count = text(replica_sql.count_rows(table.schema, table.name))
    return not target.execute(count).scalar_one()


def _install_transaction(
    source: Connection,
    target: Connection,
    table: Table,
    spec: AuditSpec,
    names: CdcNames,
    joined: set[int],
) -> int | None:
    """The id of the transaction whose baseline is the table's whole state, or None.  A
    transaction the joins table names recorded every row; one of an install made before joins
    existed recorded only the rows without a version, so it counts only when the audit table
    holds nothing else."""
    audit = table.info[AUDIT_TABLE_KEY]
    if not _whole_rows(table, spec):
        return None
    xid = source.execute(
        text(sql.INSTALL_TRANSACTION),
        {
            "slot": names.slot,
            "publication": names.publication,
            "table": name_text(table.schema, table.name),
            "audit": name_text(audit.schema, audit.name),
        },
    ).scalar()
    if xid is None:
        return None
    if int(xid) not in joined:
        others = source.execute(text(sql.other_versions(audit.schema, audit.name)), {"xid": xid})
        if others.scalar():
            return None
    if not _replica_empty(target, table):
        return None
    return int(xid)


def _copy(
    source: Connection,
    target: Connection,
    table: Table,
    spec: AuditSpec,
    xid: int,
    names: CdcNames,
    joined: bool,
    *,
    replace: bool = False,
    clear: bool = False,
) -> int:
    """Copy transaction ``xid``'s ``B`` versions into the replica and the trail; ``joined``:
    the source's joins table names that transaction (so it exists)."""
    audit = table.info[AUDIT_TABLE_KEY]
    joins = (
        qualified(names.context_schema, joins_sql.joins_table(names.context_table))
        if joined
        else None
    )
    columns = [AUDIT_ID, *(c.name for c in audit.columns if c.name != AUDIT_ID)]
    for setting in replica_sql.COPY_SETTINGS:
        source.exec_driver_sql(setting)
        target.exec_driver_sql(setting)
    create, copy = sql.install_rows_table(audit.schema, audit.name, columns)
    target.exec_driver_sql(create)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        copy_out_to(
            source,
            sql.copy_install_rows(audit.schema, audit.name, columns, joins),
            {"xid": xid, "table": name_text(table.schema, table.name)},
            spool,
        )
        spool.seek(0)
        copy_in(target, copy, iter(lambda: spool.read(CHUNK_BYTES), b""))
    (capture,) = resolve_specs(target, [spec.capture_spec])
    triggers = [trigger.name for trigger in capture.triggers]
    for trigger in triggers:
        target.exec_driver_sql(
            replica_sql.set_trigger(table.schema, table.name, trigger, enabled=False)
        )
    if clear:
        target.exec_driver_sql(sql.clear_rows(table.schema, table.name))
    if replace:
        key = [c.name for c in table.primary_key.columns]
        target.exec_driver_sql(attach_sql.replace_rows(table.schema, table.name, key))
    insert = sql.insert_install_rows(
        table.schema,
        table.name,
        audit.schema,
        audit.name,
        [c.name for c in table.columns if c.computed is None],
        columns[1:],
    )
    _, versions = target.exec_driver_sql(insert).one()
    for trigger in triggers:
        target.exec_driver_sql(
            replica_sql.set_trigger(table.schema, table.name, trigger, enabled=True)
        )
    target.exec_driver_sql(sql.DROP_INSTALL_ROWS)
    return int(versions)
