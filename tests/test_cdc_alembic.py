"""Schema evolution of a CDC table through a real Alembic project while the consumer runs: the
decoder (design 2) in a worker thread, and design 1 on another database, with writers before,
during and after the upgrade.  The trail must hold every change exactly once, and the new
column's values from the upgrade on."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from alembic_env import make_project
from cdc_decoder_setup import drop_slot_named
from sqlalchemy_postgresql_audit.cdc import Consumer, create_slot


def _models(slot: str, *, colour: bool) -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData(naming_convention={"audit.slot": slot})
    parcel = sa.Table(
        "parcel",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("place", sa.Text),
        *([sa.Column("colour", sa.Text)] if colour else []),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    return metadata, parcel


class _Writer:
    """Inserts and updates rows one transaction at a time in a thread, until stopped; knows
    the trail they must leave."""

    def __init__(self, engine: sa.Engine, first: int) -> None:
        self.engine, self.next_id = engine, first
        self.expected: list[tuple[object, ...]] = []
        self.colour: str | None = None  # set once the column exists
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> _Writer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.write()
            self._stop.wait(0.005)

    def write(self) -> None:
        row_id, colour = self.next_id, self.colour
        with self.engine.begin() as connection:
            if colour is None:
                connection.execute(
                    sa.text("INSERT INTO parcel (id, place) VALUES (:i, 'new')"), {"i": row_id}
                )
                connection.execute(
                    sa.text("UPDATE parcel SET place = 'moved' WHERE id = :i"), {"i": row_id}
                )
            else:
                connection.execute(
                    sa.text("INSERT INTO parcel (id, place, colour) VALUES (:i, 'new', :c)"),
                    {"i": row_id, "c": colour},
                )
                connection.execute(
                    sa.text("UPDATE parcel SET place = 'moved', colour = :c || '!' WHERE id = :i"),
                    {"i": row_id, "c": colour},
                )
        self.next_id += 1
        after = None if colour is None else colour + "!"
        self.expected += [("I", row_id, "new", colour), ("U", row_id, "moved", after)]


def _trail(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT audit_operation, id, place, colour FROM parcel_audit ORDER BY audit_id"
        )
        return [tuple(r) for r in rows]


def _wait_for_more(engine: sa.Engine, seconds: float = 60) -> None:
    """Until the trail grows (the consumer made progress while the writer writes)."""
    before = _count(engine)
    deadline = time.monotonic() + seconds
    while _count(engine) <= before:
        assert time.monotonic() < deadline, "the consumer wrote nothing"
        time.sleep(0.05)


def _count(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        if connection.exec_driver_sql("SELECT to_regclass('parcel_audit')").scalar() is None:
            return 0
        return int(connection.exec_driver_sql("SELECT count(*) FROM parcel_audit").scalar_one())


def _evolve(
    tmp_path: Path,
    source: sa.Engine,
    slot: str,
    during: Callable[[], None],
) -> tuple[_Writer, str]:
    """Install v1 by Alembic, write, upgrade to v2 (a new column) while writing, write with
    the new column; ``during`` runs while the writer writes before and after the upgrade."""
    project = make_project(tmp_path, source.url)
    first, _ = _models(slot, colour=False)
    second, _ = _models(slot, colour=True)
    create_slot(source, first)  # a migration's transaction cannot make the slot
    project.revision(first, "parcel")
    project.upgrade(first)
    writer = _Writer(source, 1)
    with writer:
        during()
        migration = project.revision(second, "colour")
        project.upgrade(second)
        with source.connect() as connection:  # the writer learns the column exists
            connection.exec_driver_sql("SELECT colour FROM parcel LIMIT 0")
        writer.colour = "red"
        during()
    writer.write()
    return writer, migration


@pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")  # pg_lsn is known
def test_an_alembic_upgrade_adding_a_column_while_the_decoder_runs(
    tmp_path: Path, logical_database_url: URL
) -> None:
    source = sa.create_engine(logical_database_url)
    slot = f"cdc_{uuid.uuid4().hex[:12]}"
    first, _ = _models(slot, colour=False)
    consumer = Consumer(source, metadata=first)  # keeps the metadata it started with
    thread = threading.Thread(target=consumer.run, kwargs={"interval": 0.05})
    started = threading.Event()

    def during() -> None:
        """Start the consumer once, then wait until it wrote something more."""
        if not started.is_set():
            started.set()
            thread.start()
        _wait_for_more(source)

    try:
        writer, migration = _evolve(tmp_path, source, slot, during)
        assert "op.add_column('parcel'" in migration
        assert "op.add_column('parcel_audit'" in migration
        consumer.stop()
        thread.join()
        consumer.run_once()
        trail = _trail(source)
        assert trail == writer.expected
        assert any(row[3] == "red" for row in trail)
        assert any(row[3] is None for row in trail)
    finally:
        consumer.stop()
        drop_slot_named(source, slot)
        source.dispose()


def test_an_alembic_upgrade_of_the_source_reaches_design_1_through_the_new_consumer(
    tmp_path: Path, logical_database_url: URL, second_database_url: URL
) -> None:
    """The migration runs on the source only.  The apply worker stops at the first change
    carrying the new column and retries; the consumer started with the new metadata (a
    deploy) adds the column to the target's replica and audit table and reinstalls the capture
    triggers in one transaction, and the trail catches up with nothing lost or repeated."""
    source = sa.create_engine(logical_database_url)
    target = sa.create_engine(second_database_url)
    slot = f"cdc_{uuid.uuid4().hex[:12]}"
    first, _ = _models(slot, colour=False)
    second, _ = _models(slot, colour=True)
    consumers = [Consumer(source, target, metadata=first, timeout=120)]
    started = threading.Event()

    def during() -> None:
        """Before the upgrade the running consumer follows; after it, a new one takes over."""
        if not started.is_set():
            started.set()
            consumers[0].run_once()  # creates the replica, audit table and subscription
            _wait_for_more(target)
        else:
            consumers.append(Consumer(source, target, metadata=second, timeout=120))
            consumers[-1].run_once()

    try:
        writer, _ = _evolve(tmp_path, source, slot, during)
        consumers[-1].run_once()
        trail = _trail(target)
        assert trail == writer.expected
        assert any(row[3] == "red" for row in trail)
    finally:
        consumers[0].drop()
        drop_slot_named(source, slot)
        source.dispose()
        target.dispose()
