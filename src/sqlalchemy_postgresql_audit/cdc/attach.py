"""A partition attached with rows to a CDC table: its rows recorded in the ATTACH's transaction.

The partition's rows were written while it was a table of its own, so no change of theirs is in
the slot's stream; the stream's first UPDATE or DELETE of one meets a row the consumer never saw.
Design 1's apply worker skips it without an error (the replica lacks the row), design 2's
decoder under ``replica_identity="default"`` cannot rebuild its old row and stops.  The library
cannot see the ATTACH (an event trigger needs a superuser), so the user calls
``record_attached`` in the transaction that ran it, after it.  It records (``render.cdc_attach``):

- a ``B`` version of each of the partition's rows in the table's audit table: the state the
  stream's first change of each applies to, since the ATTACH holds the partition ``ACCESS
  EXCLUSIVE`` until the commit (no other session writes it in between), and every change after
  the commit is in the stream.  Design 2's decoder rebuilds old rows from them;
- a joins row for the table (``render.cdc_joins``), written by the same transaction: design 1's
  target holds the apply worker there until the consumer has copied those versions into the
  replica, replacing any row with their keys, and into the trail (``.install_rows.seed_join``).
"""

from __future__ import annotations

from sqlalchemy import Connection, Table, text

from ..declare.cdc import cdc_names
from ..declare.declaration import declared_audit
from ..errors import AuditError
from ..install.ddl import resolve_spec
from ..render import cdc_attach as sql
from ..render import cdc_install_rows as install_sql
from ..render import cdc_joins as joins_sql
from ..render.baseline import render_baseline
from ..render.sql import name_text


def record_attached(connection: Connection, table: Table, partition: Table | str) -> int:
    """Record the rows of ``partition`` (a ``Table`` or a name PostgreSQL resolves, such as
    ``"measure_2026_12"`` or ``"archive.measure_old"``), just attached to the CDC table
    ``table``, so that no later change of them is lost; returns how many versions it recorded.

    Call it in the transaction that ran ``ALTER TABLE ... ATTACH PARTITION``, after it and
    before that transaction writes the table again, outside a savepoint.  Raises
    ``AuditError`` naming the table and the partition when ``table`` is not a published CDC
    table with a primary key, when ``partition`` is not one of its partitions, when this
    transaction did not attach it, or when this transaction wrote its rows after attaching it
    (those changes are in the stream already)."""
    spec, _ = declared_audit(table)
    if isinstance(partition, str):
        part, shown = partition, partition
    else:
        part, shown = name_text(partition.schema, partition.name), partition.fullname
    where = f"partition {shown!r} of table {table.fullname!r}"
    if not spec.cdc:
        raise AuditError(f"{where}: the table is not captured by change-data-capture")
    if not spec.key_columns:
        raise AuditError(f"{where}: the table has no primary key, so no baseline")
    if not connection.in_transaction() or connection.in_nested_transaction():
        raise AuditError(
            f"{where}: call record_attached in the transaction that attached it, "
            "outside a savepoint"
        )
    spec = resolve_spec(connection, spec)
    table_text = name_text(spec.schema, spec.table)
    names = cdc_names(table.metadata)
    published = connection.execute(
        text(install_sql.PUBLISHED_BY), {"publication": names.publication, "table": table_text}
    ).scalar()
    if published is None:
        raise AuditError(
            f"{where}: the table is not in publication {names.publication!r} (install it "
            "first: installing records a baseline of every row)"
        )
    found = connection.execute(text(sql.ATTACHED), {"table": table_text, "partition": part})
    row = found.one_or_none()
    if row is None or not row.under:
        raise AuditError(f"{where}: it is not a partition of the table")
    if not (row.here and row.locked):
        raise AuditError(
            f"{where}: this transaction did not attach it; call record_attached in the "
            "transaction that ran ALTER TABLE ... ATTACH PARTITION (after it, the rows it "
            "brought may already have changed unrecorded: run the consumer, whose comparison "
            "copies them)"
        )
    schema, name = str(row.nspname), str(row.relname)
    written = sql.written_since_attached(schema, name)
    if connection.execute(text(written), {"partition": name_text(schema, name)}).scalar():
        raise AuditError(
            f"{where}: this transaction wrote its rows after attaching it; call "
            "record_attached right after the ATTACH"
        )
    if connection.execute(text(sql.DELETED_HERE), {"partition": name_text(schema, name)}).scalar():
        raise AuditError(
            f"{where}: this transaction deleted rows of it (or moved them to another "
            "partition); attach it and call record_attached in a transaction that changes none "
            "of its rows, then change them"
        )
    recorded_already = sql.recorded_here(
        spec.schema, spec.audit_table, schema, name, list(spec.key_columns)
    )
    if connection.execute(text(recorded_already)).scalar():
        return 0  # this transaction recorded them already (a second call, or the install)
    lock, insert = render_baseline(spec, every_row=True, rows_of=(schema, name))
    connection.exec_driver_sql(lock)
    recorded = connection.exec_driver_sql(insert).rowcount
    if recorded:
        connection.exec_driver_sql(
            joins_sql.record_join(names.context_schema, names.context_table, table_text)
        )
    return int(recorded)
