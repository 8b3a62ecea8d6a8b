"""Change-data-capture, design 1: the trail on another server, written by a subscription whose
apply worker fires the library's triggers.  Two real servers: the source publishes, the
target (``second_database_url``) replicates and records."""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from sqlalchemy_postgresql_audit import (
    AuditConfigurationError,
    audit_context,
    history,
    install_audit_triggers,
    set_session_vars,
)
from sqlalchemy_postgresql_audit.cdc import Consumer, install_capture


def _models(**options: object) -> tuple[sa.MetaData, sa.Table]:
    """Slot names are the server's: each test gets its own."""
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdc_{uuid.uuid4().hex[:12]}"})
    account = sa.Table(
        "account",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("balance", sa.Integer),
        sa.Column("note", sa.Text),
        info={
            "audit.options": {
                "enabled": True,
                "mode": "cdc",
                "session_settings": [sa.Column("username", sa.Text)],
                **options,
            }
        },
    )
    return metadata, account


def _trail(engine: sa.Engine, table: str = "account_audit") -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                sa.text(
                    "SELECT audit_operation, audit_username, id, owner, balance "
                    f"FROM {table} ORDER BY audit_id"
                )
            )
        ]


def test_every_operation_reaches_the_trail_on_another_server(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    metadata, account = _models()
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    assert consumer.run_once() == 0
    with source.begin() as connection:
        connection.execute(account.insert(), [{"id": i, "owner": f"o{i}"} for i in (1, 2, 3)])
    with source.begin() as connection:
        connection.execute(account.update().where(account.c.id == 2).values(balance=5))
        connection.execute(account.delete().where(account.c.id == 3))
    assert consumer.run_once() == 5
    assert _trail(target) == [
        ("I", None, 1, "o1", None),
        ("I", None, 2, "o2", None),
        ("I", None, 3, "o3", None),
        ("U", None, 2, "o2", 5),
        ("D", None, 3, "o3", None),
    ]
    assert consumer.run_once() == 0


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_context_travels_with_each_transaction_and_rollbacks_leave_nothing(
    logical_database_url: URL, target: sa.Engine, consumers: list[Consumer], driver: str
) -> None:
    """psycopg2 sends the context row in front of the first statement; psycopg 3 as a
    statement of its own."""
    source = sa.create_engine(logical_database_url.set(drivername=f"postgresql+{driver}"))
    metadata, account = _models()
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    with audit_context(username="alice"), source.begin() as connection:
        connection.execute(account.insert().values(id=1, owner="a"))
    with audit_context(username="alice"), source.begin() as connection:
        connection.execute(account.update().values(balance=1))
    with source.begin() as connection:
        set_session_vars(connection, username="bob")
        connection.execute(account.update().values(balance=2))
    with (
        source.connect() as connection,
        audit_context(username="mallory"),
        connection.begin() as transaction,
    ):
        connection.execute(account.insert().values(id=2, owner="rolled back"))
        transaction.rollback()
    with source.begin() as connection:
        connection.execute(account.update().values(balance=3))
    assert consumer.run_once() == 4
    assert _trail(target) == [
        ("I", "alice", 1, "a", None),
        ("U", "alice", 1, "a", 1),
        ("U", "bob", 1, "a", 2),
        ("U", None, 1, "a", 3),
    ]
    source.dispose()


def test_upsert_copy_key_change_truncate_and_a_table_without_key(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer], server_version: int
) -> None:
    metadata, account = _models()
    keyless = sa.Table(
        "keyless",
        metadata,
        sa.Column("name", sa.Text),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    from sqlalchemy.dialects.postgresql import insert

    with source.begin() as connection:
        upsert = insert(account).values(id=1, owner="a")
        upsert = upsert.on_conflict_do_update(index_elements=["id"], set_={"owner": "b"})
        connection.execute(upsert)
        connection.execute(upsert)
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.copy_expert("COPY account (id, owner) FROM STDIN", _Lines("2\tc\n3\td\n"))
        connection.execute(account.update().where(account.c.id == 3).values(id=30))
        connection.execute(keyless.insert(), [{"name": "x"}, {"name": "y"}])
        connection.execute(keyless.update().where(keyless.c.name == "x").values(name="z"))
        connection.execute(keyless.delete().where(keyless.c.name == "y"))
    if server_version >= 150000:
        with source.begin() as connection:
            connection.exec_driver_sql(
                "MERGE INTO account a USING (VALUES (2, 'm'), (4, 'n')) v(id, owner) "
                "ON a.id = v.id WHEN MATCHED THEN UPDATE SET owner = v.owner "
                "WHEN NOT MATCHED THEN INSERT (id, owner) VALUES (v.id, v.owner)"
            )
    with source.begin() as connection:
        connection.exec_driver_sql("TRUNCATE account")
    consumer.run_once()
    trail = _trail(target)
    expected = [
        ("I", None, 1, "a", None),
        ("U", None, 1, "b", None),
        ("I", None, 2, "c", None),
        ("I", None, 3, "d", None),
        ("K", None, 3, "d", None),
        ("U", None, 30, "d", None),
    ]
    if server_version >= 150000:
        expected += [("U", None, 2, "m", None), ("I", None, 4, "n", None)]
    expected += [("T", None, None, None, None)]
    assert trail == expected
    with target.connect() as connection:
        keyless_trail = connection.execute(
            sa.text("SELECT audit_operation, name FROM keyless_audit ORDER BY audit_id")
        ).all()
        replica_rows = connection.execute(sa.text("SELECT count(*) FROM account")).scalar()
    assert [tuple(r) for r in keyless_trail] == [("I", "x"), ("I", "y"), ("U", "z"), ("D", "y")]
    assert replica_rows == 0


class _Lines:
    """A file-like object for ``copy_expert``."""

    def __init__(self, text: str) -> None:
        self._text = text

    def read(self, size: int = -1) -> str:
        chunk, self._text = self._text, ""
        return chunk

    def readline(self, size: int = -1) -> str:
        return self.read()


def test_partitioned_source_is_recorded_as_its_root(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdc_{uuid.uuid4().hex[:12]}"})
    event = sa.Table(
        "event",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.Text),
        postgresql_partition_by="RANGE (id)",
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    metadata.create_all(source)
    with source.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE event_low PARTITION OF event FOR VALUES FROM (0) TO (100)"
        )
        connection.exec_driver_sql(
            "CREATE TABLE event_high PARTITION OF event FOR VALUES FROM (100) TO (200)"
        )
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    with source.begin() as connection:
        connection.execute(event.insert(), [{"id": 1, "kind": "a"}, {"id": 150, "kind": "b"}])
        connection.exec_driver_sql("UPDATE event_low SET kind = 'c'")
        connection.execute(event.update().where(event.c.id == 1).values(id=120))
        connection.exec_driver_sql("DELETE FROM event_high WHERE id = 150")
    assert consumer.run_once() >= 5
    with target.connect() as connection:
        trail = connection.execute(
            sa.text("SELECT audit_operation, id, kind FROM event_audit ORDER BY audit_id")
        ).all()
    assert [tuple(r) for r in trail] == [
        ("I", 1, "a"),
        ("I", 150, "b"),
        ("U", 1, "c"),
        # A row moving to another partition is a DELETE and an INSERT, in trigger mode too.
        ("D", 1, "c"),
        ("I", 120, "c"),
        ("D", 150, "b"),
    ]


def test_a_transaction_larger_than_the_decoding_memory_streams_and_commits_whole(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    metadata, account = _models()
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    admin = source.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql("ALTER SYSTEM SET logical_decoding_work_mem = '64kB'")
        connection.exec_driver_sql("SELECT pg_reload_conf()")
    try:
        with audit_context(username="bulk"), source.begin() as connection:
            connection.execute(
                account.insert(), [{"id": i, "owner": "x" * 200} for i in range(5000)]
            )
            connection.execute(account.update().values(balance=1))
        assert consumer.run_once() == 10000
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql("ALTER SYSTEM RESET logical_decoding_work_mem")
            connection.exec_driver_sql("SELECT pg_reload_conf()")
    with source.connect() as connection:
        streamed = connection.execute(
            sa.text("SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = :s"),
            {"s": metadata.naming_convention["audit.slot"]},
        ).scalar()
    with target.connect() as connection:
        users = connection.execute(
            sa.text("SELECT audit_username, count(*) FROM account_audit GROUP BY 1")
        ).all()
    assert streamed and streamed >= 1
    assert [tuple(r) for r in users] == [("bulk", 10000)]


def test_apply_worker_killed_twenty_times_leaves_the_trail_exactly_once(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    metadata, account = _models()
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    admin = target.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql("ALTER SYSTEM SET wal_retrieve_retry_interval = '100ms'")
        connection.exec_driver_sql("SELECT pg_reload_conf()")
    done = threading.Event()
    written: list[int] = []

    def write() -> None:
        i = 0
        while not done.is_set():
            with audit_context(username=f"u{i}"), source.begin() as connection:
                connection.execute(account.insert().values(id=i, owner="w"))
                connection.execute(account.update().where(account.c.id == i).values(balance=i))
            written.append(i)
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    kills, rng = 0, random.Random(16)
    try:
        with admin.connect() as connection:
            while kills < 20:
                time.sleep(rng.uniform(0.0, 0.3))
                pid = connection.exec_driver_sql(
                    "SELECT pid FROM pg_stat_subscription WHERE relid IS NULL AND pid IS NOT NULL"
                ).scalar()
                if pid is None:
                    continue
                connection.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
                kills += 1
    finally:
        done.set()
        writer.join()
        with admin.connect() as connection:
            connection.exec_driver_sql("ALTER SYSTEM RESET wal_retrieve_retry_interval")
            connection.exec_driver_sql("SELECT pg_reload_conf()")
    consumer.run_once()
    with target.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT audit_operation, id, balance, audit_username FROM account_audit")
        ).all()
    expected = sorted(
        [("I", i, None, f"u{i}") for i in written] + [("U", i, i, f"u{i}") for i in written]
    )
    assert sorted(tuple(r) for r in rows) == expected
    assert len(written) > 20


def test_a_cdc_table_outside_the_publication_refuses_writes_naming_it(
    source: sa.Engine,
) -> None:
    metadata, account = _models()
    metadata.create_all(source)
    with source.begin() as connection:
        connection.exec_driver_sql("ALTER PUBLICATION audit_cdc DROP TABLE account")
    fresh = sa.create_engine(source.url)
    try:
        with (
            pytest.raises(AuditConfigurationError, match=r"account.*audit_cdc"),
            fresh.begin() as connection,
        ):
            connection.execute(account.insert().values(id=1, owner="x"))
        install_audit_triggers(metadata, fresh)
        with fresh.begin() as connection:
            connection.execute(account.insert().values(id=1, owner="x"))
    finally:
        fresh.dispose()


def test_status_reports_lag_and_retained_wal_and_a_lost_slot_loudly(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    from sqlalchemy_postgresql_audit.cdc.status import cdc_status

    metadata, account = _models()
    metadata.create_all(source)
    before = cdc_status(source, metadata, target)
    assert before.slot_exists and before.subscription is None
    assert before.retained_bytes is not None
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    running = cdc_status(source, metadata, target)
    assert running.subscription_enabled is True and running.problems == ()
    consumer.drop()
    admin = source.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
        connection.exec_driver_sql("SELECT pg_reload_conf()")
        try:
            for _ in range(4):
                with source.begin() as writer:
                    writer.execute(account.insert().values(id=_ + 1, owner="x" * 1000))
                connection.exec_driver_sql("SELECT pg_switch_wal()")
                connection.exec_driver_sql("CHECKPOINT")
        finally:
            connection.exec_driver_sql("ALTER SYSTEM RESET max_slot_wal_keep_size")
            connection.exec_driver_sql("SELECT pg_reload_conf()")
    lost = cdc_status(source, metadata)
    assert lost.wal_status == "lost"
    assert any("invalidated" in problem and "baseline" in problem for problem in lost.problems)
    fresh = sa.create_engine(source.url)
    try:
        with (
            pytest.raises(AuditConfigurationError, match="account"),
            fresh.begin() as connection,
        ):
            connection.execute(account.insert().values(id=99, owner="x"))
    finally:
        fresh.dispose()


def test_a_column_added_while_the_consumer_runs_is_followed_once_both_sides_have_it(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """The source migrates first: the apply worker stops at the first change it cannot apply
    and retries; once the target is migrated (its tables and, in the same transaction, the
    capture triggers), the trail catches up with nothing lost."""
    metadata, account = _models()
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    with source.begin() as connection:
        connection.execute(account.insert().values(id=1, owner="before"))
    consumer.run_once()
    with source.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE account ADD COLUMN tier text")
        connection.exec_driver_sql("ALTER TABLE account_audit ADD COLUMN tier text")
    evolved, evolved_account = _models()
    evolved.naming_convention["audit.slot"] = metadata.naming_convention["audit.slot"]
    sa.Table("account", evolved, sa.Column("tier", sa.Text), extend_existing=True)
    with source.begin() as connection:
        connection.execute(evolved_account.insert().values(id=2, owner="after", tier="gold"))
    with target.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE account ADD COLUMN tier text")
        connection.exec_driver_sql("ALTER TABLE account_audit ADD COLUMN tier text")
        install_capture(connection, evolved)
    consumer.run_once()
    with target.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT audit_operation, id, owner, tier FROM account_audit ORDER BY audit_id")
        ).all()
    assert [tuple(r) for r in rows] == [("I", 1, "before", None), ("I", 2, "after", "gold")]


def test_no_target_or_the_same_database_runs_the_decoder_on_what_install_made(
    source: sa.Engine,
) -> None:
    """One database: ``create_all`` installs the publication and slot, the decoder reads them
    and writes the trail there, with each transaction's context, and deletes the context rows
    it consumed."""
    metadata, account = _models()
    metadata.create_all(source)
    with audit_context(username="alice"), source.begin() as connection:
        connection.execute(account.insert().values(id=1, owner="a", balance=1))
        connection.execute(account.update().values(balance=2))
    with source.begin() as connection:
        set_session_vars(connection, username="bob")
        connection.execute(account.delete())
    assert Consumer(source, metadata=metadata).run_once() == 3
    with source.connect() as connection:
        versions = connection.execute(history(account, 1)).mappings().all()
        left = connection.exec_driver_sql("SELECT count(*) FROM audit_cdc_context").scalar()
    assert [
        (v["audit_operation"], v["audit_username"], v["owner"], v["balance"]) for v in versions
    ] == [("I", "alice", "a", 1), ("U", "alice", "a", 2), ("D", "bob", "a", 2)]
    assert left == 0  # consumed context rows are deleted once the trail holds them
    with source.begin() as connection:
        connection.execute(account.insert().values(id=2, owner="b"))
    other_spelling = source.url.set(host="localhost" if source.url.host != "localhost" else None)
    assert Consumer(source, other_spelling, metadata=metadata).run_once() == 1
    assert Consumer(source, source.url, metadata=metadata).run_once() == 0
    assert [row[:3] for row in _trail(source)][-1] == ("I", None, 2)


def test_run_keeps_the_trail_following_until_stopped(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    metadata, account = _models()
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    worker = threading.Thread(target=consumer.run, kwargs={"interval": 0.05})
    worker.start()
    try:
        with source.begin() as connection:
            connection.execute(account.insert().values(id=1, owner="a"))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with target.connect() as connection:
                if sa.inspect(connection).has_table("account_audit") and _trail(target):
                    break
            time.sleep(0.1)
    finally:
        consumer.stop()
        worker.join()
    assert _trail(target) == [("I", None, 1, "a", None)]
    with source.connect() as connection:
        left = connection.exec_driver_sql("SELECT count(*) FROM audit_cdc_context").scalar()
    assert left == 0  # consumed context rows are deleted on the source
