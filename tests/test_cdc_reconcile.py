"""Design 1's seed makes the replica equal to the source by key and values, not by row counts:
partitions detached, attached, reloaded for the same keys, dropped and created again, and the
changes of a lost slot's gap.  Two real servers: the source and the target."""

from __future__ import annotations

import sqlalchemy as sa

from cdc_replica_setup import cdc_metadata, cdc_table, column_type, measure_models, rows, trail
from sqlalchemy_postgresql_audit import record_baseline
from sqlalchemy_postgresql_audit.cdc import Consumer, create_slot
from sqlalchemy_postgresql_audit.cdc.replica import Replica


def _low_partition(source: sa.Engine, measure: sa.Table, values: dict[int, int]) -> None:
    with source.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE measure_low PARTITION OF measure FOR VALUES FROM (0) TO (100)"
        )
        for id_, value in values.items():
            connection.execute(measure.insert().values(id=id_, value=value))


def test_a_partition_swapped_for_one_with_as_many_rows_is_reconciled(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """Monthly retention: one partition detached, another attached with as many rows, in one
    transaction.  The counts match; the keys do not."""
    metadata, measure = measure_models()
    metadata.create_all(source)
    _low_partition(source, measure, {1: 1, 2: 1})
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    assert consumer.run_once() == 2
    with source.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE measure DETACH PARTITION measure_low")
        connection.exec_driver_sql("CREATE TABLE measure_high (id integer NOT NULL, value integer)")
        connection.exec_driver_sql("INSERT INTO measure_high VALUES (150, 1), (151, 1)")
        connection.exec_driver_sql(
            "ALTER TABLE measure ATTACH PARTITION measure_high FOR VALUES FROM (100) TO (200)"
        )
    assert consumer.run_once() == 2
    with source.begin() as connection:
        connection.execute(measure.update().where(measure.c.id == 150).values(value=2))
        connection.execute(measure.delete().where(measure.c.id == 151))
    assert consumer.run_once() == 2
    # The detached rows leave the replica unrecorded, as trigger mode records no detach.
    assert trail(target) == [
        ("I", 1, 1),
        ("I", 2, 1),
        ("B", 150, 1),
        ("B", 151, 1),
        ("U", 150, 2),
        ("D", 151, 1),
    ]
    assert rows(target, "SELECT id, value FROM measure ORDER BY id") == [(150, 2)]


def test_a_partition_reloaded_for_the_same_keys_replaces_the_replicas_values(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """A month reloaded with corrected data: same keys, new values, recorded as B versions,
    so a later DELETE records the value the row held."""
    metadata, measure = measure_models()
    metadata.create_all(source)
    _low_partition(source, measure, {1: 1, 2: 1})
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    assert consumer.run_once() == 2
    with source.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE measure DETACH PARTITION measure_low")
        connection.exec_driver_sql("DROP TABLE measure_low")
        connection.exec_driver_sql("CREATE TABLE measure_new (id integer NOT NULL, value integer)")
        connection.exec_driver_sql("INSERT INTO measure_new VALUES (1, 50), (2, 60), (3, 70)")
        connection.exec_driver_sql(
            "ALTER TABLE measure ATTACH PARTITION measure_new FOR VALUES FROM (0) TO (100)"
        )
    assert consumer.run_once() == 3
    with source.begin() as connection:
        connection.execute(measure.update().where(measure.c.id == 2).values(value=61))
        connection.execute(measure.delete().where(measure.c.id == 1))
    assert consumer.run_once() == 2
    assert trail(target) == [
        ("I", 1, 1),
        ("I", 2, 1),
        ("B", 1, 50),
        ("B", 2, 60),
        ("B", 3, 70),
        ("U", 2, 61),
        ("D", 1, 50),
    ]


def test_a_key_back_in_a_partition_created_again_does_not_halt_thetrail(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """A tenant leaves (its partition detached and dropped) and comes back before the consumer
    runs: the replica's stale row would stop the apply worker on a duplicate key, and with it
    every CDC table's trail."""
    metadata, measure = measure_models("LIST (id)")
    other = cdc_table(metadata, "other")
    metadata.create_all(source)
    with source.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE measure_t1 PARTITION OF measure FOR VALUES IN (1)")
        connection.execute(measure.insert().values(id=1, value=1))
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    assert consumer.run_once() == 1
    with source.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE measure DETACH PARTITION measure_t1")
        connection.exec_driver_sql("DROP TABLE measure_t1")
    with source.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE measure_t1 PARTITION OF measure FOR VALUES IN (1)")
        connection.execute(measure.insert().values(id=1, value=2))
    with source.begin() as connection:
        connection.execute(other.insert().values(id=7, value=7))
    assert consumer.run_once() == 2
    assert trail(target) == [("I", 1, 1), ("I", 1, 2)]
    assert trail(target, "other") == [("I", 7, 7)]
    with source.begin() as connection:
        connection.execute(measure.update().values(value=3))
    assert consumer.run_once() == 1
    assert trail(target)[-1] == ("U", 1, 3)


def _lost_slot_recovered(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> tuple[sa.MetaData, sa.Table]:
    """Design 1 on ``acct`` (rows 1 and 2), the target down during a gap that updated 1,
    deleted 2 and inserted 3, then the recovery's steps up to the new slot: the subscription
    dropped, the slot dropped and made again."""
    metadata = cdc_metadata()
    acct = cdc_table(metadata, "acct")
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    with source.begin() as connection:
        connection.execute(acct.insert().values([{"id": 1, "value": 1}, {"id": 2, "value": 2}]))
    assert consumer.run_once() == 2
    slot = metadata.naming_convention["audit.slot"]
    with target.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f'ALTER SUBSCRIPTION "{slot}" DISABLE')  # the target down
    with source.begin() as connection:  # the gap
        connection.execute(acct.update().where(acct.c.id == 1).values(value=10))
        connection.execute(acct.delete().where(acct.c.id == 2))
        connection.execute(acct.insert().values(id=3, value=3))
    consumer.drop()
    with source.begin() as connection:
        connection.execute(sa.text("SELECT pg_drop_replication_slot(:slot)"), {"slot": slot})
    create_slot(source, metadata)
    return metadata, acct


_GAP_RECORDED = [("I", 1, 1), ("I", 2, 2), ("D", 2, 2), ("B", 1, 10), ("B", 3, 3)]


def test_the_lost_slot_recovery_as_documented_makes_the_replica_and_trail_right(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """The steps of ``cdc status``'s recovery text, on a gap that updated, deleted and inserted
    rows: the new subscription's run records the gap's result (B for rows present, D for rows
    gone), so the history and later changes hold the values the rows held."""
    metadata, acct = _lost_slot_recovered(source, target, consumers)
    recovered = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(recovered)
    assert recovered.run_once() == 3
    with target.begin() as connection:  # the recovery's last step: a baseline where the trail is
        assert record_baseline(connection, acct) == 0
    with source.begin() as connection:
        connection.execute(acct.delete().where(acct.c.id == 1))
    assert recovered.run_once() == 1
    assert trail(target, "acct") == [*_GAP_RECORDED, ("D", 1, 10)]
    assert rows(target, "SELECT id, value FROM acct ORDER BY id") == [(3, 3)]


def test_a_consumer_killed_before_the_new_subscriptions_first_comparison_leaves_it_to_the_next(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """The recovery's consumer made the subscription and was gone before its first run
    compared: the next consumer still compares every table and records the gap."""
    metadata, _ = _lost_slot_recovered(source, target, consumers)
    assert Replica(source, target, metadata).prepare()  # the subscription, then killed
    restarted = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(restarted)
    restarted.run_once()
    assert trail(target, "acct") == _GAP_RECORDED
    assert rows(target, "SELECT id, value FROM acct ORDER BY id") == [(1, 10), (3, 3)]


def test_a_new_subscription_seeded_from_the_install_baseline_locks_no_table(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """The first run compares every table, without the SHARE lock first: a replica seeded from
    the install's baseline equals the source, so a writer's open transaction does not stop it
    (the lock could not be had within the timeout)."""
    with source.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE acct (id integer PRIMARY KEY, value integer)")
        connection.exec_driver_sql("INSERT INTO acct VALUES (1, 1), (2, 2)")
    metadata = cdc_metadata()
    acct = cdc_table(metadata, "acct")
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=10)
    consumers.append(consumer)
    with source.connect() as writer:
        writer.execute(acct.insert().values(id=3, value=3))  # open: holds ROW EXCLUSIVE
        consumer.run_once()
        writer.commit()
    consumer.run_once()
    assert trail(target, "acct") == [("B", 1, 1), ("B", 2, 2), ("I", 3, 3)]


def test_rows_of_a_table_without_key_whose_columns_have_no_equality_are_seeded(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """``json`` and ``point`` have no equality operator: the keyless comparison matches rows
    by their text image, so the seed compares them (duplicates counted) and the trail starts.
    (Their UPDATEs and DELETEs cannot be applied: PostgreSQL's apply worker finds a keyless
    row by equality of every column.)"""
    metadata = cdc_metadata()
    log = sa.Table(
        "log",
        metadata,
        sa.Column("k", sa.Integer),
        sa.Column("doc", sa.JSON),
        sa.Column("at", column_type("point")),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    metadata.create_all(source)
    with source.begin() as connection:
        connection.execute(
            log.insert(),
            [
                {"k": 1, "doc": {"a": 1}, "at": None},
                {"k": 1, "doc": {"a": 1}, "at": None},
                {"k": 2, "doc": None, "at": "(1,2)"},
            ],
        )
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    with source.begin() as connection:
        connection.execute(log.insert().values(k=3, doc=[3]))
    consumer.run_once()
    query = "SELECT audit_operation, k, doc::text, at::text FROM log_audit ORDER BY audit_id"
    assert rows(target, query) == [
        ("I", 1, '{"a": 1}', None),
        ("I", 1, '{"a": 1}', None),
        ("I", 2, "null", "(1,2)"),
        ("I", 3, "[3]", None),
    ]
    assert rows(target, "SELECT count(*) FROM log") == [(4,)]
