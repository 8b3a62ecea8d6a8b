"""Two consumers started at the same moment, in both designs, several times over, each time
against databases that hold none of their objects yet.

- On one slot: one consumer runs, the other is refused with an error that names the slot and
  says another consumer runs; the trail holds every change once.
- On two slots sharing a target database: both create what they need there (the decoder's
  progress table; design 1's context trigger function and tables) and both succeed.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from sqlalchemy_postgresql_audit.cdc import Consumer
from sqlalchemy_postgresql_audit.cdc.errors import SlotInUse
from sqlalchemy_postgresql_audit.declare.declaration import _DECLARED

ROUNDS = 4
ROWS = 40

# Each test asks for ``logical_database_url`` (and ``second_database_url``) only to be skipped
# where the servers cannot replicate; its rounds make databases of their own.


@pytest.fixture(autouse=True)
def forget_declarations() -> Iterator[None]:
    """Each test's metadatas name context tables of their own; other tests' context goes to one
    table, so they are forgotten at once, not when the garbage collector gets to them."""
    before = set(_DECLARED)
    yield
    for table in set(_DECLARED) - before:
        _DECLARED.discard(table)


@contextlib.contextmanager
def _fresh(server: URL) -> Iterator[URL]:
    """A database of its own for one round (dropped with whatever slot it still holds)."""
    name = f"audit_race_{uuid.uuid4().hex[:12]}"
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


def _models(table: str, *, shared: bool = True) -> tuple[sa.MetaData, sa.Table]:
    """A CDC table with a slot and publication of its own (slot names are the server's); the
    context table is shared unless ``shared`` is false."""
    tag = uuid.uuid4().hex[:10]
    conventions = {"audit.slot": f"race_{tag}", "audit.publication": f"race_{tag}"}
    if not shared:
        conventions["audit.cdc_context"] = f"context_{tag}"
    metadata = sa.MetaData(naming_convention=conventions)
    parcel = sa.Table(
        table,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("place", sa.Text),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    return metadata, parcel


def _write(engine: sa.Engine, table: sa.Table) -> None:
    for start in range(0, ROWS, 10):
        with engine.begin() as connection:
            connection.execute(
                table.insert(), [{"id": i, "place": "p"} for i in range(start, start + 10)]
            )


def _trail(engine: sa.Engine, table: sa.Table) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(f"{table.name}_audit"):
            return []
        return [
            tuple(row)
            for row in connection.exec_driver_sql(
                f"SELECT audit_operation, id FROM {table.name}_audit ORDER BY audit_id"
            )
        ]


def _together(*calls: Callable[[], object]) -> list[BaseException | None]:
    """Run ``calls`` in threads released at the same moment; what each raised."""
    start = threading.Barrier(len(calls))
    raised: list[BaseException | None] = [None] * len(calls)

    def run(index: int) -> None:
        start.wait()
        try:
            calls[index]()
        except BaseException as error:  # reported to the test
            raised[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return raised


def _one_runs_the_other_is_refused(
    make: Callable[[], Consumer], target: sa.Engine, parcel: sa.Table
) -> None:
    """Two ``run`` loops started together on one slot: exactly one is refused, naming the slot,
    while the other writes every change once; then it is stopped (by the one refused, or after
    a minute, should neither be)."""
    first, second = make(), make()

    def stop() -> None:
        for consumer in (first, second):
            consumer.stop()

    def run(consumer: Consumer) -> None:
        try:
            consumer.run(interval=0.05)
        except SlotInUse:
            deadline = time.monotonic() + 120
            while len(_trail(target, parcel)) < ROWS and time.monotonic() < deadline:
                time.sleep(0.05)
            stop()
            raise

    watchdog = threading.Timer(60, stop)
    watchdog.start()
    try:
        raised = _together(lambda: run(first), lambda: run(second))
    finally:
        watchdog.cancel()
    errors = [e for e in raised if e is not None]
    assert len(errors) == 1 and isinstance(errors[0], SlotInUse), raised
    slot = parcel.metadata.naming_convention["audit.slot"]
    assert f"slot {slot!r}" in str(errors[0]) and "another consumer" in str(errors[0])
    assert _trail(target, parcel) == [("I", i) for i in range(ROWS)]


def _decoders_on_one_slot(server_url: URL) -> None:
    with _fresh(server_url) as url:
        engine = sa.create_engine(url)
        metadata, parcel = _models("parcel")
        metadata.create_all(engine)
        _write(engine, parcel)
        _one_runs_the_other_is_refused(
            lambda: Consumer(sa.create_engine(url), metadata=metadata), engine, parcel
        )
        engine.dispose()


def test_two_decoders_on_one_slot_one_runs_the_other_is_refused(
    server_url: URL, logical_database_url: URL
) -> None:
    for _ in range(ROUNDS):
        _decoders_on_one_slot(server_url)


def _replicas_on_one_slot(server_url: URL, second_server_url: URL) -> None:
    with _fresh(server_url) as source_url, _fresh(second_server_url) as target_url:
        source, target = sa.create_engine(source_url), sa.create_engine(target_url)
        metadata, parcel = _models("parcel")
        metadata.create_all(source)
        _write(source, parcel)
        try:
            _one_runs_the_other_is_refused(
                lambda: Consumer(source_url, target_url, metadata=metadata, timeout=120),
                target,
                parcel,
            )
        finally:
            Consumer(source, target, metadata=metadata).drop()
            source.dispose()
            target.dispose()


def test_two_design_1_consumers_on_one_slot_one_runs_the_other_is_refused(
    server_url: URL, second_server_url: URL, logical_database_url: URL, second_database_url: URL
) -> None:
    for _ in range(ROUNDS):
        _replicas_on_one_slot(server_url, second_server_url)


def _decoders_of_two_slots(server_url: URL) -> None:
    with _fresh(server_url) as url:
        engine = sa.create_engine(url)
        (first, parcel), (second, box) = _models("parcel"), _models("box")
        first.create_all(engine)
        second.create_all(engine)
        _write(engine, parcel)
        _write(engine, box)
        consumers = [Consumer(sa.create_engine(url), metadata=m) for m in (first, second)]
        counts: list[int] = []
        raised = _together(*(lambda c=c: counts.append(c.run_once()) for c in consumers))
        assert raised == [None, None]
        assert counts == [ROWS, ROWS]
        assert _trail(engine, parcel) == [("I", i) for i in range(ROWS)]
        assert _trail(engine, box) == [("I", i) for i in range(ROWS)]
        engine.dispose()


def test_two_decoders_of_other_slots_create_the_progress_table_together(
    server_url: URL, logical_database_url: URL
) -> None:
    """They share the database's progress table, which neither finds at first."""
    for _ in range(ROUNDS):
        _decoders_of_two_slots(server_url)


def _replicas_of_two_slots(server_url: URL, second_server_url: URL) -> None:
    with _fresh(server_url) as source_url, _fresh(second_server_url) as target_url:
        source, target = sa.create_engine(source_url), sa.create_engine(target_url)
        (first, parcel), (second, box) = (
            _models("parcel", shared=False),
            _models("box", shared=False),
        )
        first.create_all(source)
        second.create_all(source)
        _write(source, parcel)
        _write(source, box)
        consumers = [
            Consumer(source_url, target_url, metadata=m, timeout=120) for m in (first, second)
        ]
        try:
            raised = _together(*(c.run_once for c in consumers))
            assert raised == [None, None]
            assert _trail(target, parcel) == [("I", i) for i in range(ROWS)]
            assert _trail(target, box) == [("I", i) for i in range(ROWS)]
        finally:
            for metadata in (first, second):
                Consumer(source, target, metadata=metadata).drop()
            source.dispose()
            target.dispose()


def test_two_design_1_consumers_of_other_slots_prepare_one_target_together(
    server_url: URL, second_server_url: URL, logical_database_url: URL, second_database_url: URL
) -> None:
    """They share the target's context trigger function, which neither finds at first."""
    for _ in range(ROUNDS):
        _replicas_of_two_slots(server_url, second_server_url)


def test_a_decoder_on_a_slot_another_reader_keeps_is_refused_naming_both(
    logical_database_url: URL,
) -> None:
    """A reader that does not claim the slot (here the replication protocol, as a subscription
    or ``pg_recvlogical`` reads it) keeps it active: PostgreSQL refuses the decoder, and the
    error says which slot, that another consumer reads it, and which process."""
    import psycopg2
    import psycopg2.extras

    from sqlalchemy_postgresql_audit.declare.cdc import cdc_names

    engine = sa.create_engine(logical_database_url)
    metadata, _ = _models("parcel")
    metadata.create_all(engine)
    names = cdc_names(metadata)
    url = logical_database_url
    reader = psycopg2.connect(
        host=url.host or url.query.get("host"),
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database,
        application_name="other_reader",
        connection_factory=psycopg2.extras.LogicalReplicationConnection,
    )
    try:
        reader.cursor().start_replication(
            slot_name=names.slot,
            decode=False,
            options={"proto_version": "1", "publication_names": names.publication},
        )
        with engine.connect() as connection:
            pid = connection.execute(
                sa.text("SELECT active_pid FROM pg_replication_slots WHERE slot_name = :s"),
                {"s": names.slot},
            ).scalar_one()
        with pytest.raises(SlotInUse) as raised:
            Consumer(engine, metadata=metadata).run_once()
        refused = str(raised.value)
    finally:
        reader.close()
    assert f"slot {names.slot!r}" in refused and "another consumer" in refused
    assert f"server process {pid}" in refused and "'other_reader'" in refused
    engine.dispose()
