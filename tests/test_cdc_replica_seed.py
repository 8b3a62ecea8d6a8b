"""Design 1 never silently unaudited: rows older than the slot are copied into the replica with a
baseline, one target belongs to one source, the wait survives another consumer and ends at an
apply error.  Two real servers: the source (``logical_database_url``) and the target
(``second_database_url``)."""

from __future__ import annotations

import contextlib
import gc
import re
import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from sqlalchemy_postgresql_audit import install_audit_triggers
from sqlalchemy_postgresql_audit.cdc import CdcError, Consumer, create_slot
from sqlalchemy_postgresql_audit.cdc.apply_errors import ReplicaLacksColumns
from sqlalchemy_postgresql_audit.cdc.fence import commit_fence, wait_for
from sqlalchemy_postgresql_audit.cdc.replica import Replica
from sqlalchemy_postgresql_audit.cdc.status import cdc_status
from sqlalchemy_postgresql_audit.declare.cdc import cdc_names
from sqlalchemy_postgresql_audit.declare.declaration import _DECLARED


def _models(
    schema: str | None = None, replica_identity: str = "default"
) -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdc_{uuid.uuid4().hex[:12]}"})
    account = sa.Table(
        "account",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("balance", sa.Integer),
        schema=schema,
        info={
            "audit.options": {"enabled": True, "mode": "cdc", "replica_identity": replica_identity}
        },
    )
    return metadata, account


@contextlib.contextmanager
def _other_database(server: URL) -> Iterator[URL]:
    """A second source database on the source's server (dropped with its slots)."""
    name = f"audit_other_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name)
    finally:
        with admin.connect() as connection:
            connection.execute(
                sa.text(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE database = :d AND NOT active"
                ),
                {"d": name},
            )
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _trail(engine: sa.Engine, table: str = "account_audit") -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            f"SELECT audit_operation, id, owner, balance FROM {table} ORDER BY audit_id"
        )
        return [tuple(row) for row in rows]


def _plain_rows(source: sa.Engine, rows: list[tuple[int, str]]) -> None:
    """The table as it was before auditing: rows no slot ever saw."""
    with source.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE account (id integer PRIMARY KEY, owner text NOT NULL, balance integer)"
        )
        for id_, owner in rows:
            connection.exec_driver_sql(
                "INSERT INTO account (id, owner) VALUES (%(id)s, %(owner)s)",
                {"id": id_, "owner": owner},
            )


def test_rows_older_than_the_slot_are_copied_with_a_baseline_and_their_changes_recorded(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    _plain_rows(source, [(1, "a"), (2, "b"), (3, "c")])
    metadata, account = _models()
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    assert consumer.run_once() == 3
    with source.begin() as connection:
        connection.execute(account.update().where(account.c.id == 1).values(balance=10))
        connection.execute(account.delete().where(account.c.id == 2))
        connection.execute(account.insert().values(id=4, owner="d"))
    assert consumer.run_once() == 3
    assert _trail(target) == [
        ("B", 1, "a", None),
        ("B", 2, "b", None),
        ("B", 3, "c", None),
        ("U", 1, "a", 10),
        ("D", 2, "b", None),
        ("I", 4, "d", None),
    ]
    # Nothing changed on the source's side since: a later consumer copies nothing again.
    assert Consumer(source, target, metadata=metadata, timeout=120).run_once() == 0


@pytest.mark.parametrize(
    ("replica_identity", "driver"),
    [("default", "postgresql+psycopg2"), ("full", "postgresql+psycopg")],
)
def test_changes_of_old_rows_before_the_first_run_are_recorded_after_the_install_baseline(
    logical_database_url: URL,
    second_database_url: URL,
    consumers: list[Consumer],
    replica_identity: str,
    driver: str,
) -> None:
    """The application writes between the install and the consumer's first run: the new
    subscription starts from the install's baseline, so the apply worker finds the rows."""
    source = sa.create_engine(logical_database_url.set(drivername=driver))
    target = sa.create_engine(second_database_url.set(drivername=driver))
    _plain_rows(source, [(1, "a"), (2, "b"), (3, "c")])
    metadata, account = _models(replica_identity=replica_identity)
    metadata.create_all(source)
    with source.begin() as connection:
        connection.execute(account.update().where(account.c.id == 1).values(balance=10))
    with source.begin() as connection:
        connection.execute(account.delete().where(account.c.id == 2))
        connection.execute(account.insert().values(id=4, owner="d"))
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    assert consumer.run_once() == 6
    assert _trail(target) == [
        ("B", 1, "a", None),
        ("B", 2, "b", None),
        ("B", 3, "c", None),
        ("U", 1, "a", 10),
        ("D", 2, "b", None),
        ("I", 4, "d", None),
    ]
    with target.connect() as connection:
        replica = connection.exec_driver_sql("SELECT id, balance FROM account ORDER BY id")
        assert [tuple(row) for row in replica] == [(1, 10), (3, None), (4, None)]
    assert Consumer(source, target, metadata=metadata, timeout=120).run_once() == 0
    source.dispose()
    target.dispose()


def test_a_table_without_key_is_copied_by_whole_row_values_intact_on_psycopg_3(
    logical_database_url: URL, second_database_url: URL, consumers: list[Consumer]
) -> None:
    """Duplicates count; values cross as text under fixed settings, whatever the sessions'
    (here floats printed rounded by the source database's setting)."""
    source = sa.create_engine(logical_database_url.set(drivername="postgresql+psycopg"))
    target = sa.create_engine(second_database_url.set(drivername="postgresql+psycopg"))
    with source.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE reading (at timestamptz, raw bytea, amount numeric, span interval, "
            "ratio double precision)"
        )
        connection.exec_driver_sql(
            "INSERT INTO reading VALUES "
            "('2024-02-29 23:59:59.123456+05:45', '\\x00ff', 0.30000000000000004, '1 day 2 h', "
            "0.30000000000000004), ('2024-02-29 23:59:59.123456+05:45', '\\x00ff', "
            "0.30000000000000004, '1 day 2 h', 0.30000000000000004), "
            "(NULL, NULL, 'NaN', NULL, NULL)"
        )
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdc_{uuid.uuid4().hex[:12]}"})
    sa.Table(
        "reading",
        metadata,
        sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("raw", sa.LargeBinary),
        sa.Column("amount", sa.Numeric),
        sa.Column("span", sa.Interval),
        sa.Column("ratio", sa.Double),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    with source.begin() as connection:  # the consumer's sessions print floats rounded
        connection.exec_driver_sql(
            f"ALTER DATABASE {source.url.database} SET extra_float_digits = -10"
        )
    source.dispose()
    assert consumer.run_once() == 3
    query = "SELECT CAST(r AS text) FROM reading AS r ORDER BY 1"
    with source.connect() as connection:
        connection.exec_driver_sql("SET TimeZone = 'UTC'")
        connection.exec_driver_sql("SET extra_float_digits = 3")
        expected = list(connection.exec_driver_sql(query).scalars())
    with target.connect() as connection:
        connection.exec_driver_sql("SET TimeZone = 'UTC'")
        connection.exec_driver_sql("SET extra_float_digits = 3")
        replica = list(connection.exec_driver_sql(query).scalars())
        trail = connection.exec_driver_sql(
            "SELECT audit_operation, count(*) FROM reading_audit GROUP BY 1"
        ).all()
    assert replica == expected
    assert [tuple(r) for r in trail] == [("B", 3)]
    with source.begin() as connection:
        connection.exec_driver_sql("DELETE FROM reading WHERE amount = 'NaN'")
    assert consumer.run_once() == 1
    source.dispose()
    target.dispose()


def test_a_partition_attached_with_rows_is_copied_at_the_next_run(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdc_{uuid.uuid4().hex[:12]}"})
    measure = sa.Table(
        "measure",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.Integer),
        postgresql_partition_by="RANGE (id)",
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    metadata.create_all(source)
    with source.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE measure_low PARTITION OF measure FOR VALUES FROM (0) TO (100)"
        )
        connection.execute(measure.insert().values(id=1, value=1))
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    assert consumer.run_once() == 1
    with source.begin() as connection:
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
    with target.connect() as connection:
        trail = connection.exec_driver_sql(
            "SELECT audit_operation, id, value FROM measure_audit ORDER BY audit_id"
        ).all()
    assert [tuple(r) for r in trail] == [
        ("I", 1, 1),
        ("B", 150, 1),
        ("B", 151, 1),
        ("U", 150, 2),
        ("D", 151, 1),
    ]


def _switched_from_triggers(source: sa.Engine, rows: list[tuple[int, str]]) -> sa.MetaData:
    """The table audited by triggers first, then switched to CDC with a column its audit table
    leaves out (so the install's baseline is not its whole state): its new subscription copies
    the rows under the lock."""
    triggers = sa.MetaData()
    account = sa.Table(
        "account",
        triggers,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": True}},
    )
    triggers.create_all(source)
    with source.begin() as connection:
        for id_, owner in rows:
            connection.execute(account.insert().values(id=id_, owner=owner))
    metadata, account = _models()
    account.info["audit.options"]["exclude_columns"] = ["balance"]
    install_audit_triggers(metadata, source)
    return metadata


def test_a_seed_that_cannot_lock_the_source_table_is_refused_naming_table_and_rows(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    metadata = _switched_from_triggers(source, [(1, "a"), (2, "b")])
    consumer = Consumer(source, target, metadata=metadata, timeout=10)
    consumers.append(consumer)
    with source.connect() as writer:
        writer.exec_driver_sql("LOCK TABLE account IN ROW EXCLUSIVE MODE")
        with pytest.raises(CdcError, match=r"account.*about 2 of its 2 source rows") as refused:
            consumer.run_once()
        assert refused.value.transient  # a lock wait: run() tries again
        writer.rollback()
    assert consumer.run_once() == 2


def test_rows_older_than_the_slot_without_key_and_with_a_json_column_are_copied(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """No key, and a column without equality: the rows are told apart by their text."""
    with source.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE note (body json)")
        connection.exec_driver_sql("""INSERT INTO note VALUES ('{"a": 1}'), ('[]'), ('[]')""")
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdc_{uuid.uuid4().hex[:12]}"})
    sa.Table(
        "note",
        metadata,
        sa.Column("body", sa.JSON),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    with target.connect() as connection:
        trail = connection.exec_driver_sql(
            "SELECT audit_operation, body::text FROM note_audit ORDER BY body::text"
        ).all()
    assert [tuple(row) for row in trail] == [("B", "[]"), ("B", "[]"), ("B", '{"a": 1}')]
    assert consumer.run_once() == 0


def test_a_slot_left_on_the_target_by_installing_the_models_there_is_reported(
    source: sa.Engine,
    target: sa.Engine,
    consumers: list[Consumer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``create_all`` on the target too makes a slot there that nothing reads: it keeps the
    target's WAL for ever.  The consumer's first run and ``cdc status`` name it, with the
    statement that drops it."""
    metadata, _ = _models()
    metadata.create_all(source)
    create_slot(target, metadata)  # what create_all on the target makes, among the rest
    slot = cdc_names(metadata).slot
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    try:
        with caplog.at_level("WARNING", logger="sqlalchemy_postgresql_audit.cdc.consumer"):
            consumer.run_once()
        leftover = (
            rf"slot '{slot}' exists in the target database .* retains \d+ bytes of the "
            rf"target's WAL.*SELECT pg_drop_replication_slot\('{slot}'\)"
        )
        assert re.search(leftover, caplog.text)
        problems = cdc_status(source, metadata, target).problems
        assert [p for p in problems if re.search(leftover, p)], problems
        assert not [p for p in cdc_status(source, metadata).problems if slot in p]
    finally:
        with target.connect() as connection:
            connection.execute(sa.text("SELECT pg_drop_replication_slot(:s)"), {"s": slot})
    assert not [p for p in cdc_status(source, metadata, target).problems if "target database" in p]


def test_a_target_holding_another_sources_trail_is_refused_naming_both(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer], server_url: URL
) -> None:
    metadata, _ = _models()
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    with _other_database(server_url) as other_url:
        other = sa.create_engine(other_url)
        try:
            other_metadata, _ = _models()
            other_metadata.create_all(other)
            second = Consumer(other, target, metadata=other_metadata, timeout=120)
            with pytest.raises(CdcError, match="Use another database") as refused:
                second.run_once()
            message = str(refused.value)
            assert str(source.url.database) in message and str(other_url.database) in message
            with target.connect() as connection:
                subscriptions = connection.exec_driver_sql(
                    "SELECT count(*) FROM pg_subscription s JOIN pg_database d "
                    "ON d.oid = s.subdbid WHERE d.datname = current_database()"
                ).scalar()
            assert subscriptions == 1
        finally:
            other.dispose()


def test_the_wait_ends_when_another_consumer_deleted_the_fence_row(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """Another consumer of the same target deletes the context rows it passed, this one's fence
    among them: the slot's confirmed position still tells that the fence was applied."""
    metadata, _ = _models()
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    replica = Replica(source, target, metadata)
    fence = commit_fence(source, replica.names)
    wait_for(replica, fence, 120)
    with target.begin() as connection:
        connection.exec_driver_sql("DELETE FROM audit_cdc_context")
    wait_for(replica, fence, 30)


def test_old_models_raise_at_once_naming_the_columns_the_replica_lacks(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer], server_version: int
) -> None:
    if server_version < 150000:
        pytest.skip("the apply worker's error count is PostgreSQL 15+")
    metadata, _ = _models()
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=600)
    consumers.append(consumer)
    consumer.run_once()
    with source.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE account ADD COLUMN tier text")
        connection.exec_driver_sql("ALTER TABLE account_audit ADD COLUMN tier text")
        connection.exec_driver_sql("INSERT INTO account VALUES (1, 'a', NULL, 'gold')")
    old_models = Consumer(source, target, metadata=metadata, timeout=600)
    with pytest.raises(ReplicaLacksColumns, match=r"account\"?: 'tier'.*install_capture"):
        old_models.run_once()


def test_a_missing_schema_is_created_on_the_target(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    with source.begin() as connection:
        connection.exec_driver_sql('CREATE SCHEMA "we ird"')
    metadata, account = _models(schema="we ird")
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    with source.begin() as connection:
        connection.execute(account.insert().values(id=1, owner="a"))
    assert consumer.run_once() == 1
    assert _trail(target, '"we ird".account_audit') == [("I", 1, "a", None)]


def test_status_reports_changes_the_apply_worker_found_no_row_for(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer], server_version: int
) -> None:
    if server_version < 180000:
        pytest.skip("conflict statistics are PostgreSQL 18+")
    metadata, account = _models()
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    with source.begin() as connection:
        connection.execute(account.insert().values(id=1, owner="a"))
    consumer.run_once()
    assert cdc_status(source, metadata, target).problems == ()
    with target.begin() as connection:
        connection.exec_driver_sql("DELETE FROM account")  # by hand, on the replica
    with source.begin() as connection:
        connection.execute(account.update().values(balance=1))
    consumer.run_once()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        problems = cdc_status(source, metadata, target).problems
        if problems:
            break
        time.sleep(0.2)
    assert any("1 UPDATE(s)" in p and "found no row" in p for p in problems)


def test_a_table_joining_cdc_after_the_subscription_is_replicated_from_then_on(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """A deploy adds a CDC table while the subscription exists: the consumer with the new
    models refreshes the subscription, so the new table's later changes reach the trail."""
    metadata, account = _models()
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    ledger = sa.Table(
        "ledger",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("amount", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    metadata.create_all(source)
    with source.begin() as connection:
        connection.execute(ledger.insert().values(id=1, amount=1))
        connection.execute(account.insert().values(id=2, owner="b"))
    deployed = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(deployed)
    assert deployed.run_once() == 2
    with source.begin() as connection:
        connection.execute(ledger.update().where(ledger.c.id == 1).values(amount=2))
        connection.execute(ledger.insert().values(id=2, amount=1))
    assert deployed.run_once() == 2
    with target.connect() as connection:
        trail = connection.exec_driver_sql(
            "SELECT audit_operation, id, amount FROM ledger_audit ORDER BY audit_id"
        ).all()
        subscribed = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_subscription_rel WHERE srrelid = 'ledger'::regclass"
        ).scalar()
    # The first insert is an I when the refresh came before the apply worker reached it (it
    # waits for the replica table), else the seed's B; the later changes are recorded.
    assert trail[0][1:] == (1, 1) and trail[0][0] in ("I", "B")
    assert [tuple(r) for r in trail[1:]] == [("U", 1, 2), ("I", 2, 1)]
    assert subscribed == 1


def test_a_second_source_is_refused_whatever_schema_its_context_table_uses(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer], server_url: URL
) -> None:
    """The claim covers the target database, not the context table's schema: a source whose
    MetaData.schema differs would otherwise feed the same replica and audit tables."""
    before = set(_DECLARED)
    try:
        _two_sources_with_other_schemas(source, target, consumers, server_url)
    finally:
        # Another context table declared in this process: forgotten at once, or the next
        # test's context would have two tables to go to.
        for table in set(_DECLARED) - before:
            _DECLARED.discard(table)
        gc.collect()


def _two_sources_with_other_schemas(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer], server_url: URL
) -> None:
    metadata = sa.MetaData(
        schema="app", naming_convention={"audit.slot": f"cdc_{uuid.uuid4().hex[:12]}"}
    )
    sa.Table(
        "account",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    with source.begin() as connection:
        connection.exec_driver_sql("CREATE SCHEMA app")
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    with _other_database(server_url) as other_url:
        other = sa.create_engine(other_url)
        try:
            with other.begin() as connection:
                connection.exec_driver_sql("CREATE SCHEMA app")
            other_metadata, _ = _models(schema="app")
            other_metadata.create_all(other)
            second = Consumer(other, target, metadata=other_metadata, timeout=120)
            try:
                with pytest.raises(CdcError, match="Use another database") as refused:
                    second.run_once()
            finally:
                second.drop()  # before its database goes: a subscription would hold it
            assert str(source.url.database) in str(refused.value)
        finally:
            other.dispose()


def test_status_reports_apply_errors_only_since_the_last_successful_run(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer], server_version: int
) -> None:
    """PostgreSQL's error count is cumulative: an error the apply worker got past must not keep
    cdc status failing once a run succeeded."""
    if server_version < 150000:
        pytest.skip("the apply worker's error count is PostgreSQL 15+")
    metadata, account = _models()
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    with target.begin() as connection:  # a constraint in the way of the next applied INSERT
        connection.exec_driver_sql(
            "ALTER TABLE account ADD CONSTRAINT in_the_way CHECK (owner <> 'a')"
        )
    with source.begin() as connection:
        connection.execute(account.insert().values(id=1, owner="a"))
    deadline = time.monotonic() + 60
    while not cdc_status(source, metadata, target).apply_error_count:
        assert time.monotonic() < deadline, "the apply worker never failed"
        time.sleep(0.2)
    problems = cdc_status(source, metadata, target).problems
    assert any("apply errors" in p and "pg_stat_reset_subscription_stats" in p for p in problems)
    with target.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE account DROP CONSTRAINT in_the_way")
    consumer.run_once()
    status = cdc_status(source, metadata, target)
    assert (status.apply_error_count, status.problems) == (0, ())


def test_a_new_empty_partition_is_compared_without_locking_the_table(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """A premade empty partition changes the table's leaves; the replica lacks nothing, so the
    run must not take the SHARE lock (here it could not: a writer's transaction is open)."""
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdc_{uuid.uuid4().hex[:12]}"})
    measure = sa.Table(
        "measure",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.Integer),
        postgresql_partition_by="RANGE (id)",
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    metadata.create_all(source)
    with source.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE measure_low PARTITION OF measure FOR VALUES FROM (0) TO (100)"
        )
        connection.execute(measure.insert().values(id=1, value=1))
    consumer = Consumer(source, target, metadata=metadata, timeout=30)
    consumers.append(consumer)
    assert consumer.run_once() == 1
    with source.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE measure_high PARTITION OF measure FOR VALUES FROM (100) TO (200)"
        )
    with source.connect() as writer:
        writer.execute(measure.insert().values(id=2, value=1))  # open: holds ROW EXCLUSIVE
        assert consumer.run_once() == 0
        writer.commit()
    assert consumer.run_once() == 1


def test_a_subscription_without_an_apply_worker_is_reported_naming_the_setting(
    source: sa.Engine,
    target: sa.Engine,
    consumers: list[Consumer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every logical replication worker slot of the target server is taken (by subscriptions
    of other sources): the consumer's subscription gets no apply worker, and the wait says why
    instead of waiting out its timeout."""
    from sqlalchemy_postgresql_audit.cdc import fence as fence_module
    from sqlalchemy_postgresql_audit.render.cdc import conninfo

    monkeypatch.setattr(fence_module, "NO_WORKER_SECONDS", 2.0)
    metadata, _ = _models()
    metadata.create_all(source)
    filler = f"filler_{uuid.uuid4().hex[:8]}"
    url = source.url
    connection_string = conninfo(
        {
            "host": url.host or url.query.get("host"),
            "port": url.port or url.query.get("port"),
            "dbname": url.database,
            "user": url.username,
            "password": url.password,
        }
    )
    with source.begin() as connection:
        connection.exec_driver_sql(f"CREATE PUBLICATION {filler}")
    admin = target.connect().execution_options(isolation_level="AUTOCOMMIT")
    made: list[str] = []
    try:
        pool = int(admin.exec_driver_sql("SHOW max_logical_replication_workers").scalar_one())
        origins = (
            admin.exec_driver_sql(
                "SELECT setting FROM pg_settings WHERE name IN "
                "('max_active_replication_origins', 'max_replication_slots') ORDER BY name"
            )
            .scalars()
            .first()
        )
        if int(str(origins)) <= pool:
            pytest.skip("the target's replication origins run out before its workers do")
        used_sql = "SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL"
        for number in range(pool - int(admin.exec_driver_sql(used_sql).scalar_one())):
            name = f"{filler}_{number}"
            admin.exec_driver_sql(
                f"CREATE SUBSCRIPTION {name} CONNECTION '{connection_string.replace(chr(39), chr(39) * 2)}' "
                f"PUBLICATION {filler} WITH (copy_data = false)"
            )
            made.append(name)
        deadline = time.monotonic() + 60
        while int(admin.exec_driver_sql(used_sql).scalar_one()) < pool:
            assert time.monotonic() < deadline, "the filler subscriptions never all started"
            time.sleep(0.2)
        consumer = Consumer(source, target, metadata=metadata, timeout=120)
        consumers.append(consumer)
        with pytest.raises(CdcError, match=r"no apply worker.*max_logical_replication_workers"):
            consumer.run_once()
        problems = cdc_status(source, metadata, target).problems
        assert any(
            "no apply worker" in p and "max_logical_replication_workers" in p for p in problems
        )
    finally:
        for name in made:
            admin.exec_driver_sql(f"DROP SUBSCRIPTION {name}")
        admin.close()
        with source.begin() as connection:
            connection.exec_driver_sql(f"DROP PUBLICATION {filler}")


def test_a_column_added_with_a_default_holds_it_in_the_replica_rows_it_fills(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """ADD COLUMN ... DEFAULT fills the source's existing rows; the replica's must hold the
    same, or a later DELETE of such a row records NULL where the row held the default."""
    metadata, account = _models()
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    with source.begin() as connection:
        connection.execute(account.insert().values(id=1, owner="a"))
    consumer.run_once()
    with source.begin() as connection:
        connection.exec_driver_sql(
            "ALTER TABLE account ADD COLUMN tier text NOT NULL DEFAULT 'basic'"
        )
        connection.exec_driver_sql("ALTER TABLE account_audit ADD COLUMN tier text")
    migrated = sa.MetaData(naming_convention=dict(metadata.naming_convention))
    new_account = account.to_metadata(migrated)
    new_account.append_column(sa.Column("tier", sa.Text, nullable=False, server_default="basic"))
    deployed = Consumer(source, target, metadata=migrated, timeout=120)
    consumers.append(deployed)
    with source.begin() as connection:
        connection.execute(new_account.delete().where(new_account.c.id == 1))
    assert deployed.run_once() == 1
    with target.connect() as connection:
        trail = connection.exec_driver_sql(
            "SELECT audit_operation, id, tier FROM account_audit ORDER BY audit_id"
        ).all()
    assert [tuple(r) for r in trail] == [("I", 1, None), ("D", 1, "basic")]
