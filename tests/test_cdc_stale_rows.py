"""Design 1: a replica row the source lost outside the stream (a partition dropped or truncated)
never stops the apply worker when its key comes back; the row is replaced, recorded nowhere in
the trail (as trigger mode records nothing for a dropped partition) and kept as a marker.  Two
real servers: the source and the target."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from cdc_replica_setup import (
    cdc_metadata,
    cdc_table,
    column_type,
    measure_models,
    rows,
    run_ddl,
    trail,
)
from sqlalchemy_postgresql_audit.cdc import CdcError, Consumer
from sqlalchemy_postgresql_audit.cdc.apply_errors import ApplyFailed


def _running_with_a_default_partition(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer], *statements: str
) -> tuple[sa.Table, sa.Table, Consumer]:
    """``measure`` by LIST with ``measure_t1`` (key 1) and a DEFAULT partition, ``statements``
    run, and the consumer's first run done."""
    metadata, measure = measure_models("LIST (id)")
    other = cdc_table(metadata, "other")
    metadata.create_all(source)
    run_ddl(
        source,
        "CREATE TABLE measure_t1 PARTITION OF measure FOR VALUES IN (1)",
        "CREATE TABLE measure_rest PARTITION OF measure DEFAULT",
        *statements,
    )
    consumer = Consumer(source, target, metadata=metadata, timeout=60)
    consumers.append(consumer)
    consumer.run_once()
    return measure, other, consumer


def test_a_key_back_in_the_default_partition_replaces_the_stale_row(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """A month dropped, then a late row of it lands in the DEFAULT partition: the replica's
    copy of the dropped row must not stop the apply worker (and every CDC table's trail)."""
    measure, other, consumer = _running_with_a_default_partition(
        source, target, consumers, "INSERT INTO measure VALUES (1, 1), (5, 5)"
    )
    run_ddl(
        source,
        "ALTER TABLE measure DETACH PARTITION measure_t1",
        "DROP TABLE measure_t1",
    )
    with source.begin() as connection:
        connection.execute(measure.insert().values(id=1, value=2))
        connection.execute(other.insert().values(id=7, value=7))
    assert consumer.run_once() == 2
    assert trail(target) == [("I", 1, 1), ("I", 5, 5), ("I", 1, 2)]
    assert trail(target, "other") == [("I", 7, 7)]
    assert rows(target, "SELECT id, value FROM measure ORDER BY id") == [(1, 2), (5, 5)]
    assert rows(target, "SELECT table_name FROM audit_cdc_replaced_rows") == [
        ('"public"."measure"',)
    ]


def test_a_key_back_after_its_leaf_was_truncated_replaces_the_stale_row(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """TRUNCATE of a leaf partition is not replicated (the publication publishes via the root):
    a key of it inserted again must not stop the trail."""
    metadata, measure = measure_models("RANGE (id)")
    other = cdc_table(metadata, "other")
    metadata.create_all(source)
    run_ddl(
        source,
        "CREATE TABLE measure_low PARTITION OF measure FOR VALUES FROM (0) TO (100)",
        "CREATE TABLE measure_high PARTITION OF measure FOR VALUES FROM (100) TO (200)",
        "INSERT INTO measure VALUES (1, 1), (2, 1), (150, 1)",
    )
    consumer = Consumer(source, target, metadata=metadata, timeout=60)
    consumers.append(consumer)
    assert consumer.run_once() == 3
    run_ddl(source, "TRUNCATE measure_low")  # made after the install: no guard refuses it
    with source.begin() as connection:
        connection.execute(measure.insert().values(id=1, value=9))
        connection.execute(other.insert().values(id=7, value=7))
    consumer.run_once()
    assert trail(target)[:4] == [("I", 1, 1), ("I", 2, 1), ("I", 150, 1), ("I", 1, 9)]
    assert trail(target, "other") == [("I", 7, 7)]
    assert (1, 9) in rows(target, "SELECT id, value FROM measure ORDER BY id")


def test_only_the_stale_row_goes_live_rows_of_new_partitions_keep_their_changes(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """A tenant's partition dropped and made again while another tenant's new partition is
    written: the UPDATE of the other tenant's row, waiting behind the stale key, is recorded as
    an UPDATE (not found missing and skipped)."""
    metadata, _ = measure_models("LIST (id)")
    metadata.create_all(source)
    run_ddl(
        source,
        "CREATE TABLE measure_t1 PARTITION OF measure FOR VALUES IN (1)",
        "INSERT INTO measure VALUES (1, 1)",
    )
    consumer = Consumer(source, target, metadata=metadata, timeout=60)
    consumers.append(consumer)
    assert consumer.run_once() == 1
    run_ddl(
        source,
        "ALTER TABLE measure DETACH PARTITION measure_t1",
        "DROP TABLE measure_t1",
    )
    run_ddl(
        source,
        "CREATE TABLE measure_t3 PARTITION OF measure FOR VALUES IN (3)",
        "INSERT INTO measure VALUES (3, 3)",
    )
    run_ddl(
        source,
        "CREATE TABLE measure_t1 PARTITION OF measure FOR VALUES IN (1)",
        "INSERT INTO measure VALUES (1, 2)",
    )
    run_ddl(source, "UPDATE measure SET value = 33 WHERE id = 3")
    consumer.run_once()
    assert trail(target) == [("I", 1, 1), ("I", 3, 3), ("I", 1, 2), ("U", 3, 33)]
    assert rows(target, "SELECT id, value FROM measure ORDER BY id") == [(1, 2), (3, 33)]


def test_a_key_changed_onto_a_stale_key_is_applied(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """An UPDATE moving a row onto the key of a row its dropped partition took away."""
    _, _, consumer = _running_with_a_default_partition(
        source, target, consumers, "INSERT INTO measure VALUES (1, 1), (6, 6)"
    )
    run_ddl(
        source,
        "ALTER TABLE measure DETACH PARTITION measure_t1",
        "DROP TABLE measure_t1",
        "UPDATE measure SET id = 1 WHERE id = 6",
    )
    consumer.run_once()
    assert rows(target, "SELECT id, value FROM measure ORDER BY id") == [(1, 6)]
    assert rows(target, "SELECT count(*) FROM audit_cdc_replaced_rows") == [(1,)]
    assert trail(target)[:2] == [("I", 1, 1), ("I", 6, 6)]
    assert ("D", 1, 1) not in trail(target)


def test_a_key_of_a_type_in_another_schema_is_compared_with_its_own_equality(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """The replacement compares keys with the operator the key's index uses, named with its
    schema (the apply worker runs with an empty search path; no planted operator is called)."""
    for engine in (source, target):
        run_ddl(engine, "CREATE SCHEMA app", "CREATE DOMAIN app.num AS integer")
    metadata = cdc_metadata()
    measure = sa.Table(
        "measure",
        metadata,
        sa.Column("id", column_type("app.num"), primary_key=True, autoincrement=False),
        sa.Column("value", sa.Integer),
        postgresql_partition_by="LIST (id)",
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    metadata.create_all(source)
    run_ddl(
        source,
        "CREATE TABLE measure_t1 PARTITION OF measure FOR VALUES IN (1)",
        "CREATE TABLE measure_rest PARTITION OF measure DEFAULT",
        "INSERT INTO measure VALUES (1, 1)",
    )
    consumer = Consumer(source, target, metadata=metadata, timeout=60)
    consumers.append(consumer)
    consumer.run_once()
    run_ddl(source, "ALTER TABLE measure DETACH PARTITION measure_t1", "DROP TABLE measure_t1")
    with source.begin() as connection:
        connection.execute(measure.insert().values(id=1, value=2))
    consumer.run_once()
    assert trail(target) == [("I", 1, 1), ("I", 1, 2)]


def test_a_key_the_models_declare_narrower_than_the_sources_stays_an_apply_error(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """Models keyed on ``id`` where the source's key is ``(id, site)``: a second row with the
    same ``id`` is no stale row; it must stop the apply worker loudly, never delete the first."""
    run_ddl(
        source,
        "CREATE TABLE reading (id integer, site integer, value integer, PRIMARY KEY (id, site))",
    )
    metadata = cdc_metadata()
    reading = sa.Table(
        "reading",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("site", sa.Integer),
        sa.Column("value", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=15)
    consumers.append(consumer)
    consumer.run_once()
    with source.begin() as connection:
        connection.execute(reading.insert().values(id=1, site=1, value=1))
        connection.execute(reading.insert().values(id=1, site=2, value=2))
    with pytest.raises(ApplyFailed):
        consumer.run_once()
    assert rows(target, "SELECT count(*) FROM audit_cdc_replaced_rows") == [(0,)]


def test_a_partition_made_after_the_last_comparison_then_truncated_does_not_stop_the_trail(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """A partition the last comparison never saw, filled, truncated, and one of its keys
    inserted again: the leaf that came since is the evidence."""
    metadata, measure = measure_models("LIST (id)")
    metadata.create_all(source)
    run_ddl(source, "CREATE TABLE measure_rest PARTITION OF measure DEFAULT")
    consumer = Consumer(source, target, metadata=metadata, timeout=60)
    consumers.append(consumer)
    consumer.run_once()
    run_ddl(
        source,
        "CREATE TABLE measure_t1 PARTITION OF measure FOR VALUES IN (1)",
        "INSERT INTO measure VALUES (1, 1)",
    )
    run_ddl(source, "TRUNCATE measure_t1")  # made after the install: no guard refuses it
    with source.begin() as connection:
        connection.execute(measure.insert().values(id=1, value=2))
    consumer.run_once()
    assert trail(target) == [("I", 1, 1), ("I", 1, 2)]
    assert rows(target, "SELECT id, value FROM measure") == [(1, 2)]


def test_a_key_the_models_type_otherwise_than_the_source_gets_no_replacing_triggers(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """Models typing the key otherwise than the source (a domain for ``integer`` here; ``citext``
    for ``text`` would make other rows equal): a row on its key proves nothing stale."""
    for engine in (source, target):
        run_ddl(engine, "CREATE SCHEMA app", "CREATE DOMAIN app.num AS integer")
    run_ddl(source, "CREATE TABLE acct (id integer PRIMARY KEY, value integer)")
    metadata = cdc_metadata()
    sa.Table(
        "acct",
        metadata,
        sa.Column("id", column_type("app.num"), primary_key=True, autoincrement=False),
        sa.Column("value", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    cdc_table(metadata, "other")
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=60)
    consumers.append(consumer)
    consumer.run_once()
    replacing = rows(
        target,
        "SELECT tgrelid::regclass::text FROM pg_trigger "
        "WHERE tgname = 'audit_cdc_replace_stale' ORDER BY 1",
    )
    assert replacing == [("other",)]


@pytest.mark.parametrize("planted", ["audit_cdc_first_comparison", "audit_cdc_replaced_rows"])
def test_a_table_another_role_made_first_on_the_target_is_refused_by_name(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer], planted: str
) -> None:
    """A role that may create in the target's schema makes one of the consumer's tables first
    (with a trigger of its own, it would run as the consumer or the apply worker): the consumer
    refuses before it writes anything, naming the table."""
    role = f"planter_{uuid.uuid4().hex[:8]}"
    run_ddl(target, f"CREATE ROLE {role}", f"GRANT CREATE ON SCHEMA public TO {role}")
    try:
        run_ddl(target, f"SET ROLE {role}", f"CREATE TABLE {planted} (id integer)", "RESET ROLE")
        metadata = cdc_metadata()
        cdc_table(metadata, "acct")
        metadata.create_all(source)
        consumer = Consumer(source, target, metadata=metadata, timeout=60)
        consumers.append(consumer)
        with pytest.raises(CdcError, match=f"{planted}.*owned by another role"):
            consumer.run_once()
        assert rows(target, "SELECT count(*) FROM pg_subscription") == [(0,)]
    finally:
        run_ddl(
            target, f"DROP TABLE IF EXISTS {planted}", f"REVOKE ALL ON SCHEMA public FROM {role}"
        )
        run_ddl(target, f"DROP ROLE {role}")
