"""Design 1: a new subscription's replica starts from the install's baseline, before it
applies anything.

The transaction that adds a table to the publication also records, under a lock that keeps its
writers waiting until it commits, a ``B`` version of each row in the source's audit table
(``install.publication.baseline_statements``).  Changes committed before it are not in the
slot's stream (decoded with a catalog where the table was not published yet) and are in those
rows; every change committed after it is in the stream.  So those rows are exactly what the
stream's first change of the table applies to.

A new subscription is created disabled; the install's rows go into the replica (its audit
triggers off) and, as the same ``B`` versions, into the target's trail; then the subscription
is enabled: all in one target transaction, so a consumer killed on the way leaves nothing and
the next one starts again.  An UPDATE or DELETE committed between the install and the
consumer's first run then finds its row, and is recorded.

Where those rows cannot be trusted to be the whole state, the table is left to ``.seed``'s copy
(rows as they are when it runs): the publication's row was made by a transaction the slot has
passed (a slot made again), the source's audit table holds rows of other transactions (a table
switched from trigger mode, whose older rows had versions and got no ``B``), the replica already
holds rows, the audit table does not record every column as it is (redaction, exclusion), or
the consumer's role may not read it.
"""

from __future__ import annotations

import tempfile

from sqlalchemy import Connection, Table, text

from ..declare.audit_table import AUDIT_TABLE_KEY
from ..declare.spec import AUDIT_ID, AuditSpec
from ..install.resolve import resolve_specs
from ..render import cdc_install_rows as sql
from ..render import cdc_replica as replica_sql
from ..render.sql import name_text
from .copy import CHUNK_BYTES, copy_in, copy_out_to

#: Rows copied from the source stay in memory up to this size, then go to a temporary file.
_SPOOL_BYTES = 32 << 20


def seed_from_install(
    source: Connection,
    target: Connection,
    pairs: list[tuple[Table, AuditSpec]],
    *,
    publication: str,
    slot: str,
) -> int:
    """In the target's transaction creating the subscription: copy each table's install
    baseline into its (empty) replica and trail; returns how many versions were copied."""
    copied = 0
    for table, spec in pairs:
        xid = _install_transaction(source, target, table, spec, publication, slot)
        if xid is not None:
            copied += _copy(source, target, table, spec, xid)
    return copied


def _install_transaction(
    source: Connection,
    target: Connection,
    table: Table,
    spec: AuditSpec,
    publication: str,
    slot: str,
) -> int | None:
    """The id of the transaction whose baseline is the table's whole state, or None."""
    audit = table.info[AUDIT_TABLE_KEY]
    stored = {c.name for c in table.columns if c.computed is None}
    if spec.redacted or not stored <= set(spec.columns):
        return None
    xid = source.execute(
        text(sql.INSTALL_TRANSACTION),
        {
            "slot": slot,
            "publication": publication,
            "table": name_text(table.schema, table.name),
            "audit": name_text(audit.schema, audit.name),
        },
    ).scalar()
    if xid is None:
        return None
    others = source.execute(text(sql.other_versions(audit.schema, audit.name)), {"xid": xid})
    if others.scalar():
        return None
    count = text(replica_sql.count_rows(table.schema, table.name))
    if target.execute(count).scalar_one():
        return None
    return int(xid)


def _copy(source: Connection, target: Connection, table: Table, spec: AuditSpec, xid: int) -> int:
    audit = table.info[AUDIT_TABLE_KEY]
    columns = [AUDIT_ID, *(c.name for c in audit.columns if c.name != AUDIT_ID)]
    for setting in replica_sql.COPY_SETTINGS:
        source.exec_driver_sql(setting)
        target.exec_driver_sql(setting)
    create, copy = sql.install_rows_table(audit.schema, audit.name, columns)
    target.exec_driver_sql(create)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        copy_out_to(
            source, sql.copy_install_rows(audit.schema, audit.name, columns), {"xid": xid}, spool
        )
        spool.seek(0)
        copy_in(target, copy, iter(lambda: spool.read(CHUNK_BYTES), b""))
    (capture,) = resolve_specs(target, [spec.capture_spec])
    triggers = [trigger.name for trigger in capture.triggers]
    for trigger in triggers:
        target.exec_driver_sql(
            replica_sql.set_trigger(table.schema, table.name, trigger, enabled=False)
        )
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
