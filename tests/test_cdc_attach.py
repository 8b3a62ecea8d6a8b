"""``record_attached``: a partition attached with rows to a CDC table, recorded in the ATTACH's
transaction, so that changes of its rows made before the consumer's next run are all recorded:
by design 1's subscription (held at the ATTACH until the consumer copies the rows) and by
design 2's decoder under ``replica_identity="default"`` (old rows rebuilt from them)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_decoder_setup import decoder, drop_slot
from sqlalchemy_postgresql_audit import AuditError
from sqlalchemy_postgresql_audit.cdc import Consumer, record_attached

HIGH = "CREATE TABLE measure_high (id integer NOT NULL, value integer)"
ATTACH_HIGH = "ALTER TABLE measure ATTACH PARTITION measure_high FOR VALUES FROM (100) TO (200)"


def _measure(name: str = "measure", **options: Any) -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdc_{uuid.uuid4().hex[:12]}"})
    measure = sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.Integer),
        postgresql_partition_by="RANGE (id)",
        info={"audit.options": {"enabled": True, "mode": "cdc", **options}},
    )
    return metadata, measure


def _trail(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT audit_operation, id, value FROM measure_audit ORDER BY audit_id"
        )
        return [tuple(row) for row in rows]


def _low_partition(engine: sa.Engine, rows: str = "(1, 1)") -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE measure_low PARTITION OF measure FOR VALUES FROM (0) TO (100)"
        )
        connection.exec_driver_sql(f"INSERT INTO measure VALUES {rows}")


def _attach_high(engine: sa.Engine, measure: sa.Table) -> None:
    """The partition loaded on its own, attached, and recorded in the ATTACH's transaction."""
    with engine.begin() as connection:
        connection.exec_driver_sql(HIGH)
        connection.exec_driver_sql("INSERT INTO measure_high VALUES (150, 1), (151, 1)")
        connection.exec_driver_sql(ATTACH_HIGH)
        assert record_attached(connection, measure, "measure_high") == 2


def _change_high(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE measure SET value = 2 WHERE id = 150")
        connection.exec_driver_sql("DELETE FROM measure WHERE id = 151")


def test_changes_of_an_attached_partitions_rows_before_the_next_run_are_recorded(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """Design 1: the subscription applies changes between the consumer's runs; without the
    record, it skips the UPDATE and DELETE of rows its replica lacks, and the next run's
    comparison records only the state after them."""
    metadata, measure = _measure()
    metadata.create_all(source)
    _low_partition(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    assert consumer.run_once() == 1
    _attach_high(source, measure)
    _change_high(source)
    assert consumer.run_once() == 4
    assert _trail(target) == [
        ("I", 1, 1),
        ("B", 150, 1),
        ("B", 151, 1),
        ("U", 150, 2),
        ("D", 151, 1),
    ]
    with target.connect() as connection:
        replica = connection.exec_driver_sql("SELECT id, value FROM measure ORDER BY id").all()
    assert [tuple(r) for r in replica] == [(1, 1), (150, 2)]


def test_a_partition_attached_before_the_first_run_holds_the_new_subscription_until_seeded(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """The subscription is made after the ATTACH, from the install's baseline: the stream it
    starts from holds the ATTACH and the changes after it, so the partition's rows are copied
    when the apply worker reaches the ATTACH, not recorded as seeded with the install's."""
    metadata, measure = _measure()
    metadata.create_all(source)
    _attach_high(source, measure)
    _change_high(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    assert consumer.run_once() == 4
    assert _trail(target) == [("B", 150, 1), ("B", 151, 1), ("U", 150, 2), ("D", 151, 1)]


def test_an_attached_partitions_rows_replace_the_replicas_stale_rows_with_their_keys(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """A month detached (its rows stay in the replica: nothing carries a DETACH) and reloaded
    with corrected values for the same keys: the seed replaces the stale rows, so the UPDATE
    made before the next run records the corrected value as its old one."""
    metadata, measure = _measure()
    metadata.create_all(source)
    _low_partition(source, "(1, 1), (2, 1)")
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    assert consumer.run_once() == 2
    with source.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE measure DETACH PARTITION measure_low")
        connection.exec_driver_sql("CREATE TABLE measure_new (id integer NOT NULL, value integer)")
        connection.exec_driver_sql("INSERT INTO measure_new VALUES (1, 50), (3, 70)")
        connection.exec_driver_sql(
            "ALTER TABLE measure ATTACH PARTITION measure_new FOR VALUES FROM (0) TO (100)"
        )
        assert record_attached(connection, measure, "measure_new") == 2
    with source.begin() as connection:
        connection.exec_driver_sql("UPDATE measure SET value = 51 WHERE id = 1")
    consumer.run_once()
    assert _trail(target) == [
        ("I", 1, 1),
        ("I", 2, 1),
        ("B", 1, 50),
        ("B", 3, 70),
        ("U", 1, 51),
    ]
    with target.connect() as connection:
        replica = connection.exec_driver_sql("SELECT id, value FROM measure ORDER BY id").all()
    # The detached row 2 leaves the replica unrecorded (the comparison), as trigger mode
    # records no detach.
    assert [tuple(r) for r in replica] == [(1, 51), (3, 70)]


def test_the_decoder_rebuilds_an_attached_partitions_old_rows_under_default_identity(
    source: sa.Engine,
) -> None:
    """Design 2: the WAL of an UPDATE or DELETE under ``default`` holds only the key; the
    versions the ATTACH's transaction recorded are the old rows the decoder rebuilds from."""
    metadata, measure = _measure(replica_identity="default")
    metadata.create_all(source)
    try:
        _low_partition(source)
        decoder(source, metadata).run_once()
        _attach_high(source, measure)
        _change_high(source)
        decoder(source, metadata).run_once()
        assert _trail(source) == [
            ("I", 1, 1),
            ("B", 150, 1),
            ("B", 151, 1),
            ("U", 150, 2),
            ("D", 151, 1),
        ]
    finally:
        drop_slot(source, metadata)


def test_the_attachs_lock_keeps_the_partitions_writers_out_until_it_commits(
    source: sa.Engine,
) -> None:
    """The recorded rows are the state the stream's first change applies to only if no other
    session writes the partition between the record and the commit."""
    metadata, measure = _measure()
    metadata.create_all(source)
    try:
        with source.begin() as connection:
            connection.exec_driver_sql(HIGH)
            connection.exec_driver_sql("INSERT INTO measure_high VALUES (150, 1)")
        with source.begin() as connection:
            connection.exec_driver_sql(ATTACH_HIGH)
            assert record_attached(connection, measure, "measure_high") == 1
            with source.connect() as writer:
                writer.exec_driver_sql("SET lock_timeout = '50ms'")
                with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                    writer.exec_driver_sql("UPDATE measure_high SET value = 2 WHERE id = 150")
    finally:
        drop_slot(source, metadata)


def test_record_attached_refuses_what_it_cannot_record(source: sa.Engine) -> None:
    metadata, measure = _measure()
    triggers = sa.Table(
        "plain",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={"audit.options": {"enabled": True}},
    )
    metadata.create_all(source)
    try:
        _low_partition(source)
        with source.begin() as connection:
            with pytest.raises(AuditError, match=r"'measure_low' of table 'plain'.* not captured"):
                record_attached(connection, triggers, "measure_low")
            with pytest.raises(AuditError, match=r"'plain' of table 'measure'.* not a partition"):
                record_attached(connection, measure, "plain")
            with pytest.raises(AuditError, match=r"'nowhere' of table 'measure'.* not a partition"):
                record_attached(connection, measure, "nowhere")
            # Attached (created as one) by an earlier transaction.
            with pytest.raises(AuditError, match=r"'measure_low' .* did not attach it"):
                record_attached(connection, measure, sa.Table("measure_low", sa.MetaData()))
        with (
            source.connect() as connection,
            pytest.raises(AuditError, match=r"'measure_low' .* in the transaction"),
            connection.begin_nested(),
        ):
            record_attached(connection, measure, "measure_low")
        with source.begin() as connection:
            connection.exec_driver_sql(HIGH)
            connection.exec_driver_sql(ATTACH_HIGH)
            # Applied twice otherwise: once from the stream, once from the record.
            connection.exec_driver_sql("INSERT INTO measure VALUES (150, 1)")
            with pytest.raises(AuditError, match=r"'measure_high' .* wrote its rows after"):
                record_attached(connection, measure, "measure_high")
    finally:
        drop_slot(source, metadata)


def test_record_attached_twice_records_the_rows_once(source: sa.Engine) -> None:
    """A second call in the same transaction (a retrying helper) adds no second version."""
    metadata, measure = _measure(replica_identity="default")
    metadata.create_all(source)
    try:
        with source.begin() as connection:
            connection.exec_driver_sql(HIGH)
            connection.exec_driver_sql("INSERT INTO measure_high VALUES (150, 1), (151, 1)")
            connection.exec_driver_sql(ATTACH_HIGH)
            assert record_attached(connection, measure, "measure_high") == 2
            assert record_attached(connection, measure, "measure_high") == 0
        assert _trail(source) == [("B", 150, 1), ("B", 151, 1)]
    finally:
        drop_slot(source, metadata)


@pytest.mark.parametrize(
    "change",
    ["DELETE FROM measure WHERE id = 151", "UPDATE measure SET id = 51 WHERE id = 151"],
    ids=["deleted", "moved-out"],
)
def test_record_attached_refuses_rows_deleted_after_the_attach(
    source: sa.Engine, change: str
) -> None:
    """A deleted row leaves nothing to see; its DELETE is in the stream while it would be in no
    baseline (design 1 loses it, the decoder stops at it)."""
    metadata, measure = _measure(replica_identity="default")
    metadata.create_all(source)
    try:
        _low_partition(source)
        with source.begin() as connection:
            connection.exec_driver_sql(HIGH)
            connection.exec_driver_sql("INSERT INTO measure_high VALUES (150, 1), (151, 1)")
            connection.exec_driver_sql(ATTACH_HIGH)
            connection.exec_driver_sql(change)
            with pytest.raises(AuditError, match="this transaction deleted rows of it"):
                record_attached(connection, measure, "measure_high")
    finally:
        drop_slot(source, metadata)
