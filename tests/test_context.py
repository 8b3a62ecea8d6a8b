"""audit_context applies its values to every transaction, on every driver, without leaking."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sqlalchemy_postgresql_audit import (
    AUDIT_TABLE_KEY,
    AuditSettingError,
    audit_context,
    current_audit_values,
    default_context,
    set_session_vars,
)


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "note"
    __table_args__ = {
        "info": {
            "audit.options": {
                "enabled": True,
                "session_settings": [
                    sa.Column("username", sa.String),
                    sa.Column("request_id", sa.UUID),
                ],
            }
        }
    }
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(default="")


note = Note.__table__
note_audit = note.info[AUDIT_TABLE_KEY]


def recorded(connection: sa.Connection) -> list[tuple[Any, ...]]:
    query = sa.select(note_audit.c.id, note_audit.c.audit_username, note_audit.c.audit_request_id)
    return [tuple(row) for row in connection.execute(query.order_by(note_audit.c.audit_id))]


def current(connection: sa.Connection, name: str) -> Any:
    query = sa.select(sa.func.current_setting(f"audit.{name}", True))
    return connection.execute(query).scalar_one()


@pytest.fixture
def db(any_driver_engine: sa.Engine) -> sa.Engine:
    # audit_context checks a value against every declared table's setting type. Tables other
    # tests declared inside a function (some with request_id as a string) stay declared until
    # the cyclic garbage collector runs, so collect them before a test that relies on the type.
    gc.collect()
    Base.metadata.create_all(any_driver_engine)
    return any_driver_engine


def test_core_and_text_writes_carry_the_context(db: sa.Engine) -> None:
    request_id = uuid.uuid4()
    with audit_context(username="ann", request_id=request_id):
        with db.begin() as connection:
            connection.execute(note.insert().values(id=1))
        with db.begin() as connection:
            connection.execute(sa.text("INSERT INTO note (id, body) VALUES (:id, '%')"), {"id": 2})
        with db.begin() as connection:
            connection.exec_driver_sql("INSERT INTO note (id, body) VALUES (3, 'x')")
        with db.begin() as connection:
            connection.execute(sa.text("INSERT INTO note (id, body) VALUES (8, '%%50%')"))
        with db.begin() as connection:
            connection.execute(note.insert(), [{"id": 4}, {"id": 5}])  # executemany
            connection.execute(
                note.update().where(note.c.id == sa.bindparam("k")),
                [{"k": 4, "body": "a"}, {"k": 5, "body": "b"}],
            )
    with db.begin() as connection:
        connection.execute(note.insert().values(id=6))
        rows = recorded(connection)
    assert rows == [(i, "ann", request_id) for i in (1, 2, 3, 8, 4, 5, 4, 5)] + [(6, None, None)]
    with db.connect() as connection:
        bodies = connection.execute(sa.select(note.c.body).where(note.c.id.in_([2, 3, 8])))
        assert sorted(bodies.scalars()) == ["%", "%%50%", "x"]


def test_orm_session_commit_then_second_write_keeps_the_context(db: sa.Engine) -> None:
    with audit_context(username="ann"), Session(db) as session:
        session.add(Note(id=1))
        session.commit()
        session.add_all([Note(id=2), Note(id=3)])  # a new transaction, insertmanyvalues
        session.commit()
        note_2 = session.get(Note, 2)
        assert note_2 is not None
        note_2.body = "edited"
        session.commit()
    with db.connect() as connection:
        assert recorded(connection) == [
            (1, "ann", None),
            (2, "ann", None),
            (3, "ann", None),
            (2, "ann", None),
        ]


def test_nested_contexts_merge_and_restore(db: sa.Engine) -> None:
    request_id = uuid.uuid4()
    with audit_context(username="ann", request_id=request_id):
        with audit_context(username="bob"), db.begin() as connection:
            assert dict(current_audit_values()) == {
                "username": "bob",
                "request_id": str(request_id),
            }
            connection.execute(note.insert().values(id=1))
        with db.begin() as connection:
            connection.execute(note.insert().values(id=2))
        with audit_context(request_id=None), db.begin() as connection:
            connection.execute(note.insert().values(id=3))
    assert current_audit_values() == {}
    with db.connect() as connection:
        assert recorded(connection) == [
            (1, "bob", request_id),
            (2, "ann", request_id),
            (3, "ann", None),
        ]


def test_each_statement_runs_with_the_context_active_when_it_runs(db: sa.Engine) -> None:
    def under_contexts(connection: sa.Connection) -> None:
        with audit_context(username="ann"):
            connection.execute(note.insert().values(id=2))
            with audit_context(username="bob"):  # no warning: the outer context goes on
                connection.execute(note.insert().values(id=3))
            connection.execute(note.insert().values(id=4))

    with db.begin() as connection:  # the transaction begins outside any context
        connection.execute(note.insert().values(id=1))
        with pytest.warns(RuntimeWarning, match="still open"):
            under_contexts(connection)
        connection.execute(note.insert().values(id=5))  # exited: reset to NULL
        assert current(connection, "username") == ""
    with db.connect() as connection:
        assert [row[:2] for row in recorded(connection)] == [
            (1, None),
            (2, "ann"),
            (3, "bob"),
            (4, "ann"),
            (5, None),
        ]


def test_a_context_entered_inside_a_rolled_back_savepoint_is_applied_again(db: sa.Engine) -> None:
    """The settings are first applied inside the savepoint; its rollback undoes them."""
    with db.connect() as connection:
        connection.execute(note.insert().values(id=1))
        savepoint = connection.begin_nested()
        with audit_context(username="ann"):
            connection.execute(note.insert().values(id=2))
            savepoint.rollback()  # PostgreSQL undoes the settings with it
            connection.execute(note.insert().values(id=3))
            connection.commit()
    with db.connect() as connection:
        assert [row[:2] for row in recorded(connection)] == [(1, None), (3, "ann")]


def test_an_inner_context_inside_a_rolled_back_savepoint_keeps_its_value(db: sa.Engine) -> None:
    with audit_context(username="ann"), db.begin() as connection:
        connection.execute(note.insert().values(id=1))
        savepoint = connection.begin_nested()
        with audit_context(username="bob"):
            connection.execute(note.insert().values(id=2))
            savepoint.rollback()  # back to ann on the server, bob still active here
            connection.execute(note.insert().values(id=3))
        connection.execute(note.insert().values(id=4))
    with db.connect() as connection:
        assert [row[:2] for row in recorded(connection)] == [(1, "ann"), (3, "bob"), (4, "ann")]


def test_a_released_savepoint_keeps_its_settings_until_an_outer_one_rolls_back(
    db: sa.Engine,
) -> None:
    with db.connect() as connection:
        outer = connection.begin_nested()
        with audit_context(username="ann"):
            inner = connection.begin_nested()
            connection.execute(note.insert().values(id=1))
            inner.commit()  # RELEASE: the settings stay
            connection.execute(note.insert().values(id=2))
            outer.rollback()  # back to before the outer savepoint: nothing applied
            connection.execute(note.insert().values(id=3))
            connection.commit()
    with db.connect() as connection:
        assert [row[:2] for row in recorded(connection)] == [(3, "ann")]


def test_get_or_create_in_a_savepoint_raises_the_real_error_and_continues(
    db: sa.Engine,
) -> None:
    sent: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    sa.event.listen(db, "before_cursor_execute", capture)
    try:
        with audit_context(username="ann"), Session(db) as session, session.begin():
            session.add(Note(id=1))
            session.flush()
            # get-or-create: try the insert in a savepoint
            with pytest.raises(sa.exc.IntegrityError, match="note_pkey"), session.begin_nested():
                session.add(Note(id=1, body="again"))
            # the same, with the settings changing inside the savepoint that fails
            with (
                audit_context(username="bob"),
                pytest.raises(sa.exc.IntegrityError),
                session.begin_nested(),
            ):
                session.execute(note.insert().values(id=1))
            note_1 = session.get(Note, 1)  # ...and carry on with the transaction
            assert note_1 is not None
            note_1.body = "found"
    finally:
        sa.event.remove(db, "before_cursor_execute", capture)
    assert not [s for s in sent if "ROLLBACK TO SAVEPOINT" in s and "set_config" in s]
    with db.connect() as connection:
        assert [row[:2] for row in recorded(connection)] == [(1, "ann"), (1, "ann")]


def test_get_or_create_in_a_savepoint_on_asyncpg(asyncpg_url: URL, engine: sa.Engine) -> None:
    Base.metadata.create_all(engine)

    async def main() -> None:
        async_engine = create_async_engine(asyncpg_url)
        try:
            async with audit_context(username="ann"), async_engine.begin() as connection:
                await connection.execute(note.insert().values(id=1))
                with pytest.raises(sa.exc.IntegrityError, match="note_pkey"):
                    async with connection.begin_nested():
                        await connection.execute(note.insert().values(id=1))
                await connection.execute(note.insert().values(id=2))
                savepoint = await connection.begin_nested()
                async with audit_context(username="bob"):
                    await connection.execute(note.insert().values(id=3))
                    await savepoint.rollback()
                    await connection.execute(note.insert().values(id=4))
        finally:
            await async_engine.dispose()

    asyncio.run(main())
    with engine.connect() as connection:
        assert [row[:2] for row in recorded(connection)] == [(1, "ann"), (2, "ann"), (4, "bob")]


@pytest.mark.parametrize(
    ("statement", "parameters", "error"),
    [
        (note.insert(), {"id": 9, "body": "nul\x00byte"}, ValueError),
        (sa.text("INSERT INTO note (id) VALUES (:id)"), {"id": object()}, sa.exc.ProgrammingError),
    ],
    ids=["nul-byte", "unadaptable"],
)
def test_a_statement_psycopg2_refuses_before_sending_does_not_count_as_applied(
    engine: sa.Engine, statement: Any, parameters: dict[str, Any], error: type[Exception]
) -> None:
    Base.metadata.create_all(engine)
    with audit_context(username="ann"), engine.begin() as connection:
        with pytest.raises(error):
            connection.execute(statement, parameters)  # carried the settings, never sent
        connection.execute(note.insert().values(id=1))
        with audit_context(username="bob"):
            with pytest.raises(error):
                connection.execute(statement, parameters)
            connection.execute(note.insert().values(id=2))
        with pytest.raises(error):
            connection.execute(statement, parameters)
        connection.execute(note.insert().values(id=3))
    with audit_context(username="ann"), engine.begin() as connection:
        connection.execute(note.insert().values(id=4))
        with audit_context(username="bob"), pytest.raises(error):
            connection.execute(statement, parameters)
    with engine.connect() as connection:
        assert [row[:2] for row in recorded(connection)] == [
            (1, "ann"),
            (2, "bob"),
            (3, "ann"),
            (4, "ann"),
        ]


def test_nothing_leaks_to_the_next_transaction_on_a_pooled_connection(
    database_url: URL, any_driver_engine: sa.Engine
) -> None:
    single = sa.create_engine(
        database_url.set(drivername=any_driver_engine.url.drivername), pool_size=1, max_overflow=0
    )
    try:
        with audit_context(username="ann"), single.connect() as connection:
            assert current(connection, "username") == "ann"
            connection.rollback()
            with audit_context(username="bob"):
                assert current(connection, "username") == "bob"
        with single.connect() as connection:  # the same DBAPI connection, outside the context
            assert current(connection, "username") in (None, "")
    finally:
        single.dispose()


def test_a_server_side_cursor_as_first_statement_gets_the_settings(db: sa.Engine) -> None:
    with audit_context(username="ann"), db.connect() as connection:
        streamed = connection.execute(
            sa.select(sa.func.current_setting("audit.username", True)),
            execution_options={"stream_results": True},
        )
        assert streamed.scalar_one() == "ann"
        connection.execute(note.insert().values(id=1))
        connection.commit()
    with db.connect() as connection:
        assert recorded(connection) == [(1, "ann", None)]


def test_the_context_is_checked_when_entered(db: sa.Engine) -> None:
    with pytest.raises(AuditSettingError, match=r"'requestid'.*'request_id'"):
        audit_context(requestid=uuid.uuid4())
    with pytest.raises(AuditSettingError, match=r"'request_id'.*not a UUID"):
        audit_context(request_id="req-123")


def test_autocommit_under_a_context_is_refused(db: sa.Engine) -> None:
    autocommit = db.execution_options(isolation_level="AUTOCOMMIT")
    with (
        audit_context(username="ann"),
        autocommit.connect() as connection,
        pytest.raises(AuditSettingError, match="AUTOCOMMIT"),
    ):
        connection.execute(note.insert().values(id=1))
    with db.connect() as connection:
        assert recorded(connection) == []


def test_explicit_settings_inside_a_context_win_for_that_transaction(db: sa.Engine) -> None:
    with audit_context(username="ann"), db.begin() as connection:
        set_session_vars(connection, username="override")
        connection.execute(note.insert().values(id=1))
    with db.connect() as connection:
        assert recorded(connection) == [(1, "override", None)]


def test_threads_never_see_each_others_values(db: sa.Engine) -> None:
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with audit_context(username=f"user{n}"):
                barrier.wait()
                for k in range(5):
                    with Session(db) as session, session.begin():
                        session.add(Note(id=n * 100 + k))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.connect() as connection:
        rows = recorded(connection)
    assert len(rows) == 30
    assert all(username == f"user{row_id // 100}" for row_id, username, _ in rows)


def test_asyncpg_tasks_never_see_each_others_values(asyncpg_url: URL, engine: sa.Engine) -> None:
    Base.metadata.create_all(engine)

    async def main() -> None:
        async_engine = create_async_engine(asyncpg_url, pool_size=3, max_overflow=0)

        async def task(n: int) -> None:
            async with audit_context(username=f"user{n}"):
                for k in range(4):
                    async with AsyncSession(async_engine) as session:
                        session.add(Note(id=n * 100 + k))
                        await session.commit()
                        await asyncio.sleep(0)
                        session.add(Note(id=n * 100 + 50 + k))
                        await session.commit()

        try:
            await asyncio.gather(*(task(n) for n in range(8)))
            async with async_engine.connect() as connection:  # a pooled connection, no context
                value = await connection.scalar(
                    sa.select(sa.func.current_setting("audit.username", True))
                )
                assert value in (None, "")
        finally:
            await async_engine.dispose()

    asyncio.run(main())
    with engine.connect() as connection:
        rows = recorded(connection)
    assert len(rows) == 64
    assert all(username == f"user{row_id // 100}" for row_id, username, _ in rows)


def test_asyncpg_core_connection_and_text(asyncpg_url: URL, engine: sa.Engine) -> None:
    Base.metadata.create_all(engine)

    async def main() -> None:
        async_engine = create_async_engine(asyncpg_url)
        try:
            async with audit_context(username="ann"), async_engine.begin() as connection:
                await connection.execute(sa.text("INSERT INTO note (id, body) VALUES (1, '')"))
                await connection.execute(note.insert(), [{"id": 2}, {"id": 3}])
        finally:
            await async_engine.dispose()

    asyncio.run(main())
    with engine.connect() as connection:
        assert [row[:2] for row in recorded(connection)] == [(1, "ann"), (2, "ann"), (3, "ann")]


def test_psycopg2_sends_the_settings_with_the_first_statement(engine: sa.Engine) -> None:
    Base.metadata.create_all(engine)
    with audit_context(username="ann"), engine.begin() as connection:  # the engine's first
        connection.execute(note.insert().values(id=0))  # write also checks the triggers
    sent: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    sa.event.listen(engine, "after_cursor_execute", capture)
    try:
        with audit_context(username="ann"), engine.begin() as connection:
            connection.execute(note.insert().values(id=1))
            connection.execute(note.insert().values(id=2))
    finally:
        sa.event.remove(engine, "after_cursor_execute", capture)
    assert len(sent) == 2
    assert sent[0].startswith("SELECT pg_catalog.set_config(") and "INSERT INTO note" in sent[0]
    assert sent[1].startswith("INSERT INTO note")


def test_one_context_object_can_be_entered_by_many_tasks_at_once(
    asyncpg_url: URL, engine: sa.Engine
) -> None:
    Base.metadata.create_all(engine)
    system = audit_context(username="system")  # e.g. a module-level constant

    async def main() -> None:
        async_engine = create_async_engine(asyncpg_url)

        async def job(n: int) -> None:
            async with system:
                async with audit_context(request_id=uuid.UUID(int=n)):
                    await asyncio.sleep(0.01 * (5 - n))  # exit in another order than entered
                    async with AsyncSession(async_engine) as session, session.begin():
                        session.add(Note(id=n))
                assert current_audit_values() == {"username": "system"}

        try:
            await asyncio.gather(*(job(n) for n in range(5)))
        finally:
            await async_engine.dispose()

    asyncio.run(main())
    with engine.connect() as connection:
        assert sorted(recorded(connection)) == [(n, "system", uuid.UUID(int=n)) for n in range(5)]


def test_exiting_out_of_order_is_refused() -> None:
    outer, inner = audit_context(username="a"), audit_context(username="b")
    outer.__enter__()
    inner.__enter__()
    with pytest.raises(RuntimeError, match="out of order"):
        outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    outer.__exit__(None, None, None)
    assert current_audit_values() == {}


def test_a_backend_killed_under_a_context_raises_its_own_error(db: sa.Engine) -> None:
    """The rollback of a transaction whose backend died must not hide the driver's error: the
    listeners leave an invalidated connection alone."""

    def killed_transaction(killer: sa.Connection) -> None:
        with db.begin() as connection:  # the error surfaces through this block's rollback
            connection.execute(note.insert().values(id=1))
            pid = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            killer.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            connection.execute(sa.text("SELECT 1"))

    with audit_context(username="victim"), db.connect() as killer:
        with pytest.raises(sa.exc.OperationalError):
            killed_transaction(killer)
        with db.begin() as connection:  # the pool hands out a working connection again
            connection.execute(note.insert().values(id=2))
            assert recorded(connection) == [(2, "victim", None)]


def test_leaving_a_context_where_it_is_not_active_says_why_and_what_to_do() -> None:
    """As a FastAPI dependency declared with 'def' does: entered in one threadpool thread (in
    a copy of the request's context), left in another."""
    context = audit_context(username="ann")
    thread = threading.Thread(target=context.__enter__, name="worker-1")
    thread.start()
    thread.join()
    with pytest.raises(RuntimeError, match=r"entered in thread 'worker-1'.*'async def'"):
        context.__exit__(None, None, None)
    other = audit_context(username="bob")
    contextvars.copy_context().run(other.__enter__)
    with pytest.raises(RuntimeError, match=r"another contextvars context.*copy_context\(\)"):
        other.__exit__(None, None, None)
    assert current_audit_values() == {}


@pytest.fixture
def process_default() -> Iterator[None]:
    yield
    default_context()


def test_a_process_default_reaches_threads_that_no_context_reaches(
    db: sa.Engine, process_default: None
) -> None:
    def write(key: int) -> None:
        with db.begin() as connection:
            connection.execute(note.insert().values(id=key))

    default_context(username="worker")
    assert current_audit_values() == {"username": "worker"}
    heartbeat = threading.Thread(target=write, args=(1,))  # a thread some library started
    heartbeat.start()
    heartbeat.join()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(write, (2, 3)))
    request_id = uuid.uuid4()
    with audit_context(request_id=request_id):  # a context replaces the default wholly
        write(4)
    with db.begin() as connection:  # a transaction that outlives the default's change
        connection.execute(note.insert().values(id=5))
        default_context(username="other")
        connection.execute(note.insert().values(id=6))
        default_context()  # cleared
        connection.execute(note.insert().values(id=7))
    with db.connect() as connection:  # the pool's two writes may commit in either order
        assert sorted(recorded(connection), key=lambda row: row[0]) == [
            (1, "worker", None),
            (2, "worker", None),
            (3, "worker", None),
            (4, None, request_id),
            (5, "worker", None),
            (6, "other", None),
            (7, None, None),
        ]


def test_a_process_default_is_checked_and_leaves_autocommit_connections_alone(
    db: sa.Engine, process_default: None
) -> None:
    with pytest.raises(AuditSettingError, match="'request_id'"):
        default_context(request_id="not-a-uuid")
    default_context(username="worker")
    autocommit = db.execution_options(isolation_level="AUTOCOMMIT")
    with autocommit.connect() as connection:  # e.g. a maintenance job's VACUUM
        assert current(connection, "username") in (None, "")
    with (
        audit_context(username="ann"),
        autocommit.connect() as connection,
        pytest.raises(AuditSettingError, match="AUTOCOMMIT"),
    ):
        connection.execute(note.insert().values(id=1))


def test_leaving_a_context_while_its_transaction_is_still_open_warns(db: sa.Engine) -> None:
    """What a FastAPI session dependency declared before the context dependency does: the
    session commits (and flushes what is pending) after the context exited."""

    def endpoint(session: Session) -> None:
        with audit_context(username="ann"):
            session.add(Note(id=1))
            session.flush()
            note_1 = session.get(Note, 1)
            assert note_1 is not None
            note_1.body = "edited"  # flushed at commit, after the context exited

    with Session(db) as session:
        with pytest.warns(RuntimeWarning, match="before the session dependency"):
            endpoint(session)
        session.commit()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with audit_context(username="ann"), Session(db) as session:  # the right order
            session.add(Note(id=2))
            session.commit()
        with db.begin() as connection, audit_context(username="ann"):  # nothing ran inside
            pass
    with db.connect() as connection:
        assert [row[:2] for row in recorded(connection)] == [(1, "ann"), (1, None), (2, "ann")]
