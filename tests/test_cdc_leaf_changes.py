"""Design 1 compares a replica table with the source when the source changed it outside the
stream, and only then: a partition detached, edited and attached again, or truncated (neither
changes the table's leaf partitions, and a TRUNCATE of a partition is not published), is
compared at the next run; a table joining CDC is compared alone, the tables already running
are left alone.  Two real servers: the source and the target."""

from __future__ import annotations

import sqlalchemy as sa

from cdc_replica_setup import cdc_metadata, cdc_table, measure_models, rows, run_ddl, trail
from sqlalchemy_postgresql_audit.cdc import Consumer
from sqlalchemy_postgresql_audit.cdc.signature import Signature


def _started(
    source: sa.Engine,
    target: sa.Engine,
    consumers: list[Consumer],
    partitions: tuple[str, ...],
    ids: tuple[int, ...] = (1, 2, 3),
) -> tuple[Consumer, sa.Table]:
    """``measure`` with ``partitions`` (made after the install, as monthly ones are) and rows
    ``ids`` of value 1, all in the trail."""
    metadata, measure = measure_models()
    metadata.create_all(source)
    run_ddl(source, *partitions)
    with source.begin() as connection:
        for id_ in ids:
            connection.execute(measure.insert().values(id=id_, value=1))
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    assert consumer.run_once() == len(ids)
    return consumer, measure


_LOW = "CREATE TABLE measure_low PARTITION OF measure FOR VALUES FROM (0) TO (100)"
_HIGH = "CREATE TABLE measure_high PARTITION OF measure FOR VALUES FROM (100) TO (200)"


def test_a_partition_detached_edited_and_attached_again_is_reconciled(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """Maintenance: the partition detached, corrected offline and attached again in one
    transaction, so no run sees it detached; its leaves are the same.  The next run records
    the corrections as B versions and removes the deleted row unrecorded (trigger mode records
    nothing of a detached partition), so later changes of its rows are recorded."""
    consumer, measure = _started(source, target, consumers, (_LOW,))
    assert trail(target) == [("I", 1, 1), ("I", 2, 1), ("I", 3, 1)]
    run_ddl(
        source,
        "ALTER TABLE measure DETACH PARTITION measure_low",
        "UPDATE measure_low SET value = 50 WHERE id = 1",
        "DELETE FROM measure_low WHERE id = 2",
        "INSERT INTO measure_low VALUES (4, 40)",
        "ALTER TABLE measure ATTACH PARTITION measure_low FOR VALUES FROM (0) TO (100)",
    )
    assert consumer.run_once() == 2
    assert rows(target, "SELECT id, value FROM measure ORDER BY id") == [(1, 50), (3, 1), (4, 40)]
    with source.begin() as connection:
        connection.execute(measure.update().where(measure.c.id == 4).values(value=41))
    with source.begin() as connection:
        connection.execute(measure.delete().where(measure.c.id == 1))
    assert consumer.run_once() == 2
    assert trail(target)[3:] == [("B", 1, 50), ("B", 4, 40), ("U", 4, 41), ("D", 1, 50)]
    assert rows(target, "SELECT id, value FROM measure ORDER BY id") == [(3, 1), (4, 41)]


def test_a_sub_partition_edited_while_its_parent_partition_was_detached_is_reconciled(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """Detaching a partition that is itself partitioned changes its catalog row, not its
    leaves': the leaves' ancestors count."""
    consumer, _ = _started(
        source,
        target,
        consumers,
        (
            "CREATE TABLE measure_low PARTITION OF measure FOR VALUES FROM (0) TO (100) "
            "PARTITION BY RANGE (id)",
            "CREATE TABLE measure_low_a PARTITION OF measure_low FOR VALUES FROM (0) TO (100)",
        ),
    )
    run_ddl(
        source,
        "ALTER TABLE measure DETACH PARTITION measure_low",
        "UPDATE measure_low SET value = 60 WHERE id = 3",
        "ALTER TABLE measure ATTACH PARTITION measure_low FOR VALUES FROM (0) TO (100)",
    )
    assert consumer.run_once() == 1
    assert trail(target)[-1] == ("B", 3, 60)


def test_a_truncated_partition_leaves_the_replica_at_the_next_run_unrecorded(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """A TRUNCATE of a partition made after the install (no guard refuses it) is not
    published.  Trigger mode records nothing for it either (the table's TRUNCATE trigger fires
    only for the table itself), so the run removes the rows from the replica unrecorded; a key
    inserted again is then an I, and the trail goes on."""
    consumer, measure = _started(source, target, consumers, (_LOW, _HIGH), (1, 2, 3, 150))
    assert trail(target) == [("I", 1, 1), ("I", 2, 1), ("I", 3, 1), ("I", 150, 1)]
    run_ddl(source, "TRUNCATE measure_low")
    assert consumer.run_once() == 0
    assert rows(target, "SELECT id, value FROM measure ORDER BY id") == [(150, 1)]
    with source.begin() as connection:
        connection.execute(measure.insert().values(id=1, value=9))
    assert consumer.run_once() == 1
    assert trail(target)[4:] == [("I", 1, 9)]
    assert rows(target, "SELECT id, value FROM measure ORDER BY id") == [(1, 9), (150, 1)]


def test_a_signature_recorded_without_leaf_versions_is_compared_once(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """A release that recorded leaves by oid only: the versions are unknown, so the next run
    compares the table (here a partition truncated meanwhile), then records them."""
    consumer, _ = _started(source, target, consumers, (_LOW, _HIGH), (1, 2, 150))
    with target.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE audit_cdc_seeded SET signature = regexp_replace(signature, '@[0-9.]+', '', 'g')"
        )
    run_ddl(source, "TRUNCATE measure_low")
    assert consumer.run_once() == 0
    assert rows(target, "SELECT id, value FROM measure ORDER BY id") == [(150, 1)]
    (recorded,) = rows(target, "SELECT signature FROM audit_cdc_seeded")
    versions = Signature(str(recorded[0])).leaf_versions
    assert versions is not None and len(versions) == 2 and all(versions.values())


def _replica_drifted(target: sa.Engine) -> None:
    """``account``'s replica holds another value for row 2, unrecorded: only a comparison of
    the table would notice (and take its SHARE lock, its unlocked try differing)."""
    with target.begin() as connection:
        triggers = (
            connection.exec_driver_sql(
                "SELECT tgname FROM pg_catalog.pg_trigger "
                "WHERE tgrelid = 'account'::regclass AND tgenabled = 'A'"
            )
            .scalars()
            .all()
        )
        connection.exec_driver_sql("ALTER TABLE account DISABLE TRIGGER USER")
        connection.exec_driver_sql("UPDATE account SET value = 20 WHERE id = 2")
        for trigger in triggers:
            connection.exec_driver_sql(f'ALTER TABLE account ENABLE ALWAYS TRIGGER "{trigger}"')


def test_a_table_joining_is_compared_alone_the_running_ones_are_left_to_their_writers(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """A deploy adds an unrelated CDC table: the run seeds and compares it, and leaves the
    table already running alone.  Compared, that table would be locked IN SHARE MODE (its
    replica differs), which a writer's open transaction holds off: the run would wait for it,
    then fail."""
    metadata = cdc_metadata()
    account = cdc_table(metadata, "account")
    metadata.create_all(source)
    run_ddl(source, "INSERT INTO account VALUES (1, 1), (2, 2)")
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    assert consumer.run_once() == 2
    _replica_drifted(target)
    ledger = cdc_table(metadata, "ledger")
    run_ddl(source, "CREATE TABLE ledger (id integer PRIMARY KEY, value integer)")
    run_ddl(source, "INSERT INTO ledger VALUES (1, 10)")
    metadata.create_all(source)
    deployed = Consumer(source, target, metadata=metadata, timeout=10)
    consumers.append(deployed)
    with source.connect() as writer:
        writer.execute(account.insert().values(id=3, value=3))  # open: holds ROW EXCLUSIVE
        assert deployed.run_once() == 1
        writer.commit()
    with source.begin() as connection:
        connection.execute(ledger.update().values(value=11))
    assert deployed.run_once() == 2
    assert trail(target, "ledger") == [("B", 1, 10), ("U", 1, 11)]
    assert trail(target, "account") == [("I", 1, 1), ("I", 2, 2), ("I", 3, 3)]
