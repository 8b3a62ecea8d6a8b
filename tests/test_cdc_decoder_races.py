"""The decoder against concurrent writers and a second decoder on the same slot: every
committed change is written once, whatever runs beside it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_decoder_setup import decoder, published
from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY
from sqlalchemy_postgresql_audit.cdc.errors import SlotInUse

ROWS = 3000


@pytest.fixture
def engine(logical_database_url: sa.URL) -> Any:
    engine = sa.create_engine(logical_database_url, pool_size=4)
    yield engine
    engine.dispose()


def declare() -> sa.Table:
    return sa.Table(
        "ledger",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )


def while_writing(
    engine: sa.Engine, table: sa.Table, synchronous_commit: str, *loops: Callable[[], None]
) -> None:
    """Insert ``ROWS`` rows, one per transaction, while each of ``loops`` runs in a thread of
    its own until the writer is done."""
    writer = sa.create_engine(
        engine.url, connect_args={"options": f"-c synchronous_commit={synchronous_commit}"}
    )
    done = threading.Event()
    failures: list[BaseException] = []

    def repeat(loop: Callable[[], None]) -> None:
        try:
            while not done.is_set():
                loop()
        except BaseException as error:  # reported by the test below
            failures.append(error)

    threads = [threading.Thread(target=repeat, args=(loop,)) for loop in loops]
    for thread in threads:
        thread.start()
    try:
        for number in range(ROWS):
            with writer.begin() as connection:
                connection.execute(table.insert().values(id=number, v=number))
    finally:
        done.set()
        for thread in threads:
            thread.join()
        writer.dispose()
    assert not failures, failures


def recorded(engine: sa.Engine, table: sa.Table) -> tuple[int, int, int]:
    """Rows in the table, their audit rows, and rows without any."""
    audit = table.info[AUDIT_TABLE_KEY]
    with engine.connect() as connection:
        rows = connection.scalar(sa.select(sa.func.count()).select_from(table))
        audited = connection.scalar(sa.select(sa.func.count()).select_from(audit))
        lost = connection.scalar(
            sa.select(sa.func.count())
            .select_from(table)
            .where(~sa.exists().where(audit.c.id == table.c.id))
        )
    return int(rows or 0), int(audited or 0), int(lost or 0)


def flush_wal(engine: sa.Engine) -> None:
    """A synchronous commit flushes the WAL of every commit before it."""
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TEMPORARY TABLE flush_wal ()")
        connection.exec_driver_sql("SET LOCAL synchronous_commit = on")


def test_asynchronous_commits_are_never_skipped(engine: sa.Engine) -> None:
    """With ``synchronous_commit = off`` the WAL is written ahead of its flush, and a peek
    decodes only flushed WAL: the slot must not be advanced past what the peek decoded."""
    table = declare()
    with published(engine, table.metadata, "DEFAULT"):
        running = decoder(engine, table.metadata)
        while_writing(engine, table, "off", running.run_once)
        flush_wal(engine)
        running.run_once()
        assert recorded(engine, table) == (ROWS, ROWS, 0)


def test_two_decoders_on_one_slot_write_each_change_once(engine: sa.Engine) -> None:
    """Each waits for the other or is refused (``SlotInUse``); neither writes a change twice."""
    table = declare()
    with published(engine, table.metadata, "DEFAULT"):
        first, second = decoder(engine, table.metadata), decoder(engine, table.metadata)
        first.run_once()  # the progress table exists before they race

        def taking_turns(running: Any) -> Callable[[], None]:
            def loop() -> None:
                with contextlib.suppress(SlotInUse):
                    running.run_once()

            return loop

        while_writing(engine, table, "off", taking_turns(first), taking_turns(second))
        flush_wal(engine)
        first.run_once()
        second.run_once()
        assert recorded(engine, table) == (ROWS, ROWS, 0)


def test_a_lost_claim_session_still_writes_each_change_once(engine: sa.Engine) -> None:
    """The claim's session on the source is lost (a terminated backend stands for a restart
    or a cut connection) while its decoder runs on; a second decoder then takes the claim.
    The target's lock around each batch keeps the two from writing a change twice."""
    table = declare()
    with published(engine, table.metadata, "DEFAULT"):
        first, second = decoder(engine, table.metadata), decoder(engine, table.metadata)
        first.run_once()  # the progress table exists before they race
        with first.claim.held():
            holder = first.claim._holder
            assert holder is not None
            pid = holder.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            with engine.connect() as connection:
                connection.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
            while_writing(engine, table, "off", first.run_once, second.run_once)
            flush_wal(engine)
            first.run_once()
        second.run_once()
        assert recorded(engine, table) == (ROWS, ROWS, 0)
