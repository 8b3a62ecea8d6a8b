"""The writer's side of request context in CDC mode: the context row rides in front of writes
only, reaches every write of its transaction (savepoints included), and is sent once the
database has CDC, whenever that happened."""

from __future__ import annotations

import gc
import uuid
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from cdc_decoder_setup import drop_slot
from sqlalchemy_postgresql_audit import audit_context
from sqlalchemy_postgresql_audit.cdc import Consumer


def _models() -> tuple[sa.MetaData, sa.Table, sa.Table]:
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdcw_{uuid.uuid4().hex[:12]}"})
    settings = {"session_settings": [sa.Column("username", sa.Text)]}
    ledger = sa.Table(
        "ledger",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={"audit.options": {"enabled": True, "mode": "cdc", **settings}},
    )
    plain = sa.Table(
        "plain",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={"audit.options": {"enabled": True, **settings}},
    )
    return metadata, ledger, plain


@pytest.fixture(params=["psycopg2", "psycopg"])
def source(logical_database_url: URL, request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """psycopg2 sends the row in front of the statement; psycopg 3 as a statement of its own."""
    engine = sa.create_engine(logical_database_url.set(drivername=f"postgresql+{request.param}"))
    yield engine
    engine.dispose()


@pytest.fixture
def models(source: sa.Engine) -> Iterator[tuple[sa.MetaData, sa.Table, sa.Table]]:
    metadata, ledger, plain = _models()
    yield metadata, ledger, plain
    drop_slot(source, metadata)


def _context_rows(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.exec_driver_sql("SELECT count(*) FROM audit_cdc_context").scalar_one()
        )


def _trail(engine: sa.Engine) -> list[tuple[str, int, str | None]]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT audit_operation, id, audit_username FROM ledger_audit ORDER BY audit_id"
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_reads_in_audit_context_send_no_context_row_and_work_read_only(
    source: sa.Engine, models: tuple[sa.MetaData, sa.Table, sa.Table]
) -> None:
    metadata, ledger, plain = models
    metadata.create_all(source)
    read_only = source.execution_options(postgresql_readonly=True)
    with audit_context(username="alice"), read_only.connect() as connection:
        assert connection.execute(sa.select(plain)).all() == []
        assert connection.execute(sa.select(ledger)).all() == []
        assert connection.exec_driver_sql("SELECT count(*) FROM plain").scalar() == 0
    with audit_context(username="alice"), source.begin() as connection:
        connection.execute(sa.select(ledger)).all()
        connection.exec_driver_sql("/* a report */ SELECT 1").all()
    assert _context_rows(source) == 0
    with audit_context(username="alice"), source.begin() as connection:
        connection.execute(ledger.insert().values(id=1))
    assert _context_rows(source) == 1


def test_the_context_reaches_writes_after_reads_and_after_a_rolled_back_savepoint(
    source: sa.Engine, models: tuple[sa.MetaData, sa.Table, sa.Table]
) -> None:
    metadata, ledger, plain = models
    metadata.create_all(source)
    consumer = Consumer(source, metadata=metadata, timeout=60)
    with audit_context(username="alice"), source.begin() as connection:
        connection.execute(sa.select(ledger)).all()
        savepoint = connection.begin_nested()
        connection.execute(ledger.insert().values(id=1))
        savepoint.rollback()
        connection.execute(ledger.insert().values(id=2))
        with audit_context(username="bob"):
            connection.execute(sa.select(plain)).all()
            connection.exec_driver_sql("INSERT INTO ledger (id) VALUES (3)")
    with source.begin() as connection:
        connection.execute(ledger.insert().values(id=4))
    assert consumer.run_once() == 3
    assert _trail(source) == [("I", 2, "alice"), ("I", 3, "bob"), ("I", 4, None)]


def test_a_process_started_before_cdc_was_installed_sends_context_once_it_is(
    source: sa.Engine, models: tuple[sa.MetaData, sa.Table, sa.Table]
) -> None:
    """The process wrote with context before the database had a context table (a rolling
    deploy: new code before its migration); the answer "no table" must not stick."""
    metadata, ledger, plain = models
    metadata.create_all(source, tables=[plain])
    with audit_context(username="alice"), source.begin() as connection:
        connection.execute(plain.insert().values(id=1))
    metadata.create_all(source)
    with audit_context(username="alice"), source.begin() as connection:
        connection.execute(ledger.insert().values(id=1))
    assert Consumer(source, metadata=metadata, timeout=60).run_once() == 1
    assert _trail(source) == [("I", 1, "alice")]


def test_textual_sql_that_reads_then_writes_carries_the_context(
    source: sa.Engine, models: tuple[sa.MetaData, sa.Table, sa.Table]
) -> None:
    """A string of several statements is a write when any of them is (``SET LOCAL ...;
    UPDATE ...``); a ``;`` inside quotes or comments does not cut it."""
    metadata, ledger, _plain = models
    metadata.create_all(source)
    with source.begin() as connection:
        connection.execute(ledger.insert().values(id=1))
    consumer = Consumer(source, metadata=metadata, timeout=60)
    assert consumer.run_once() == 1
    with audit_context(username="alice"), source.begin() as connection:
        connection.exec_driver_sql("SET LOCAL lock_timeout = '2s'; UPDATE ledger SET id = id")
    with audit_context(username="bob"), source.begin() as connection:
        connection.exec_driver_sql("(SELECT 1) ; /* ; */ DELETE FROM ledger")
    read_only = source.execution_options(postgresql_readonly=True)
    with audit_context(username="carol"), read_only.connect() as connection:
        assert connection.exec_driver_sql("SELECT ';x' AS a; -- ; UPDATE\n").all() == [(";x",)]
        connection.exec_driver_sql("SELECT $q$; UPDATE$q$; SHOW lock_timeout;")
    assert consumer.run_once() == 2
    assert _trail(source)[1:] == [("U", 1, "alice"), ("D", 1, "bob")]


def test_writes_to_trigger_mode_tables_alone_send_no_context_row(
    source: sa.Engine, models: tuple[sa.MetaData, sa.Table, sa.Table]
) -> None:
    """The trigger of a trigger-mode table reads the settings: only a write to a CDC table (a
    CTE's included, and a reflected copy of one) needs the row."""
    metadata, ledger, plain = models
    metadata.create_all(source)
    with audit_context(username="alice"), source.begin() as connection:
        connection.execute(plain.insert().values(id=1))
        connection.execute(plain.update().values(id=2))
        connection.execute(sa.select(ledger)).all()
    assert _context_rows(source) == 0
    reflected = sa.Table("ledger", sa.MetaData(), autoload_with=source)
    with audit_context(username="bob"), source.begin() as connection:
        connection.execute(plain.insert().values(id=3))
        written = ledger.insert().values(id=1).returning(ledger.c.id).cte("written")
        connection.execute(sa.select(written.c.id)).all()
    with audit_context(username="carol"), source.begin() as connection:
        connection.execute(reflected.insert().values(id=4))
    assert _context_rows(source) == 2
    assert Consumer(source, metadata=metadata, timeout=60).run_once() == 2
    assert _trail(source) == [("I", 1, "bob"), ("I", 4, "carol")]


def test_the_answer_for_a_compiled_write_is_kept_beside_it_and_goes_with_it(
    source: sa.Engine, models: tuple[sa.MetaData, sa.Table, sa.Table]
) -> None:
    """Whether a compiled statement writes a CDC table is worked out once per compiled
    statement, kept outside SQLAlchemy's object (no attribute of ours on it), trusted only for
    that object, and forgotten when SQLAlchemy's cache lets it go."""
    from sqlalchemy_postgresql_audit.context import statements

    metadata, ledger, _plain = models
    metadata.create_all(source)
    compiled: list[weakref.ref[Any]] = []

    def grab(*args: Any) -> None:
        if args[4].compiled is not None and args[4].compiled.isinsert:
            compiled.append(weakref.ref(args[4].compiled))

    engine = sa.create_engine(source.url)
    sa.event.listen(engine, "before_cursor_execute", grab)
    with audit_context(username="alice"), engine.begin() as connection:
        connection.execute(ledger.insert().values(id=1))
    write = compiled[0]()
    assert write is not None
    assert not [name for name in vars(write) if "audit" in name]
    key = id(write)
    assert statements._ANSWERS[key][0]() is write
    # An entry under its id that another object left (ids are reused) is not its answer: the
    # same write, from SQLAlchemy's cache, carries its context all the same.
    other = sa.text("SELECT 1")
    statements._ANSWERS[key] = (weakref.ref(other), statements._ANSWERS[key][1], False)
    with audit_context(username="bob"), engine.begin() as connection:
        connection.execute(ledger.insert().values(id=2))
    assert compiled[1]() is write
    assert statements._ANSWERS[key][0]() is write
    assert _context_rows(source) == 2

    del write
    engine.clear_compiled_cache()
    gc.collect()
    assert compiled[0]() is None
    assert key not in statements._ANSWERS
    engine.dispose()
