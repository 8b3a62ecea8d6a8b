"""The README's recipes, run against the real server: FastAPI, Flask, a background job.

Each recipe puts the authenticated user and a request id into ``audit_context``; concurrent
requests (asyncio tasks, threads) must never see each other's values.  No ``from __future__
import annotations`` here: FastAPI reads the dependencies' annotations at runtime, and they name
functions local to ``fastapi_app``.
"""

import asyncio
import functools
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any, TypeVar

import flask
import httpx
import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, audit_context, current_audit_values

T = TypeVar("T")


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "shop_order"
    __table_args__ = {
        "info": {
            "audit.options": {
                "enabled": True,
                "session_settings": [
                    sa.Column("username", sa.String, nullable=False),  # required
                    sa.Column("request_id", sa.UUID),
                ],
            }
        }
    }
    id: Mapped[int] = mapped_column(primary_key=True)
    item: Mapped[str]


order_audit = Order.__table__.info[AUDIT_TABLE_KEY]


def recorded(engine: sa.Engine) -> list[tuple[Any, ...]]:
    query = sa.select(
        order_audit.c.audit_operation,
        order_audit.c.item,
        order_audit.c.audit_username,
        order_audit.c.audit_request_id,
    ).order_by(order_audit.c.audit_id)
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query)]


def request_id_from(header: str | None) -> uuid.UUID:
    """The caller's X-Request-Id when it is a UUID, else a new one."""
    try:
        return uuid.UUID(header or "")
    except ValueError:
        return uuid.uuid4()


def user_from(authorization: str) -> str:
    """Stands in for real authentication: 'Bearer <user>'."""
    scheme, _, user = authorization.partition(" ")
    if scheme != "Bearer" or not user:
        raise HTTPException(401)
    return user


# --- FastAPI (async, AsyncSession on asyncpg) -------------------------------------------------


def fastapi_app(url: URL) -> tuple[FastAPI, Callable[[], Any]]:
    engine = create_async_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    app = FastAPI()

    async def current_user(authorization: Annotated[str, Header()]) -> str:
        return user_from(authorization)

    async def audited(
        request: Request, user: Annotated[str, Depends(current_user)]
    ) -> AsyncIterator[None]:
        request_id = request_id_from(request.headers.get("x-request-id"))
        async with audit_context(username=user, request_id=request_id):
            yield

    async def db() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    @app.post("/orders", dependencies=[Depends(audited)])
    async def create_order(
        item: str, session: Annotated[AsyncSession, Depends(db)]
    ) -> dict[str, int]:
        order = Order(item=item)
        session.add(order)
        await session.commit()
        await asyncio.sleep(0)  # let other requests run between the two transactions
        order.item = item + "!"
        await session.commit()
        return {"id": order.id}

    return app, engine.dispose


def test_fastapi_dependency_puts_user_and_request_id_into_concurrent_requests(
    asyncpg_url: URL, engine: sa.Engine
) -> None:
    Base.metadata.create_all(engine)
    app, dispose = fastapi_app(asyncpg_url)

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                return await asyncio.gather(
                    *(
                        client.post(
                            "/orders",
                            params={"item": f"item{n}"},
                            headers={
                                "Authorization": f"Bearer user{n}",
                                "X-Request-Id": str(uuid.UUID(int=n)),
                            },
                        )
                        for n in range(12)
                    )
                )
        finally:
            await dispose()

    responses = asyncio.run(main())
    assert [response.status_code for response in responses] == [200] * 12
    rows = recorded(engine)
    assert len(rows) == 24
    for operation, item, username, request_id in rows:
        n = item.removeprefix("item").rstrip("!")
        assert (username, request_id) == (f"user{n}", uuid.UUID(int=int(n)))
        assert operation == ("U" if item.endswith("!") else "I")
    assert current_audit_values() == {}


# --- Flask (sync, Session on psycopg 3) -------------------------------------------------------


def flask_app(engine: sa.Engine) -> flask.Flask:
    sessions = sessionmaker(engine)
    app = flask.Flask(__name__)

    @app.before_request
    def enter_audit_context() -> None:
        user = user_from(flask.request.headers.get("Authorization", ""))
        request_id = request_id_from(flask.request.headers.get("X-Request-Id"))
        flask.g.audit_context = audit_context(username=user, request_id=request_id)
        flask.g.audit_context.__enter__()

    @app.teardown_request
    def exit_audit_context(_error: BaseException | None) -> None:
        context = flask.g.pop("audit_context", None)
        if context is not None:
            context.__exit__(None, None, None)

    @app.post("/orders")
    def create_order() -> dict[str, int]:
        with sessions.begin() as session:
            order = Order(item=flask.request.args["item"])
            session.add(order)
            session.flush()
            return {"id": order.id}

    @app.put("/orders/<int:order_id>")
    def put_order(order_id: int) -> dict[str, str]:
        """Get-or-create: try the INSERT in a savepoint, update when it already exists."""
        item = flask.request.args["item"]
        with sessions.begin() as session:
            try:
                with session.begin_nested():
                    session.add(Order(id=order_id, item=item))
                return {"result": "created"}
            except sa.exc.IntegrityError:
                order = session.get(Order, order_id, with_for_update=True)
                assert order is not None
                order.item = item
                return {"result": "updated"}

    return app


def test_flask_before_request_hook_in_concurrent_threads(
    database_url: URL, engine: sa.Engine
) -> None:
    Base.metadata.create_all(engine)
    psycopg_engine = sa.create_engine(database_url.set(drivername="postgresql+psycopg"))
    app = flask_app(psycopg_engine)
    barrier = threading.Barrier(8)
    failures: list[object] = []

    def client_thread(n: int) -> None:
        client = app.test_client()
        barrier.wait()
        for k in range(4):
            response = client.post(
                f"/orders?item=item{n}",
                headers={
                    "Authorization": f"Bearer user{n}",
                    "X-Request-Id": str(uuid.UUID(int=n * 100 + k)),
                },
            )
            if response.status_code != 200 or current_audit_values():
                failures.append((n, k, response.status_code, dict(current_audit_values())))

    threads = [threading.Thread(target=client_thread, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    psycopg_engine.dispose()
    assert failures == []
    rows = recorded(engine)
    assert len(rows) == 32
    for _, item, username, request_id in rows:
        n = item.removeprefix("item")
        assert username == f"user{n}"
        assert request_id.int // 100 == int(n)


def test_flask_get_or_create_in_a_savepoint(database_url: URL, engine: sa.Engine) -> None:
    Base.metadata.create_all(engine)
    psycopg_engine = sa.create_engine(database_url.set(drivername="postgresql+psycopg"))
    client = flask_app(psycopg_engine).test_client()
    results = [
        client.put(
            f"/orders/{n % 2}?item=item{n}", headers={"Authorization": f"Bearer user{n}"}
        ).get_json()["result"]
        for n in range(4)
    ]
    psycopg_engine.dispose()
    assert results == ["created", "created", "updated", "updated"]
    assert [(op, item, user) for op, item, user, _ in recorded(engine)] == [
        ("I", "item0", "user0"),
        ("I", "item1", "user1"),
        ("U", "item2", "user2"),
        ("U", "item3", "user3"),
    ]


# --- A background job (Celery-style task function) under a system user ------------------------


def runs_as(username: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a task (under ``@celery_app.task``) so its writes are audited as ``username``."""

    def decorate(task: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(task)
        def run(*args: Any, **kwargs: Any) -> T:
            with audit_context(username=username, request_id=uuid.uuid4()):
                return task(*args, **kwargs)

        return run

    return decorate


def test_background_job_runs_under_a_system_user(engine: sa.Engine) -> None:
    Base.metadata.create_all(engine)

    @runs_as("system:nightly-cleanup")
    def close_orders(engine: sa.Engine) -> int:
        with Session(engine) as session, session.begin():
            result = session.execute(sa.update(Order).values(item=Order.item + " (closed)"))
            return int(result.rowcount)

    request_id = uuid.uuid4()
    with audit_context(username="alice", request_id=request_id), Session(engine) as session:
        session.add_all([Order(item="a"), Order(item="b")])
        session.commit()
        assert close_orders(engine) == 2  # called inline from a request: the job's user wins
    # And run from a worker thread, as a task queue would, with no request around it.
    worker = threading.Thread(target=close_orders, args=(engine,))
    worker.start()
    worker.join()
    rows = recorded(engine)
    assert [(op, user) for op, _, user, _ in rows] == [
        ("I", "alice"),
        ("I", "alice"),
        *[("U", "system:nightly-cleanup")] * 4,
    ]
    assert {row[3] for row in rows[:2]} == {request_id}
    assert len({row[3] for row in rows[2:]}) == 2  # one request id per job run
    assert request_id not in {row[3] for row in rows[2:]}


def test_a_write_outside_any_context_fails_loudly_when_the_user_is_required(
    engine: sa.Engine,
) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Order(item="x"))
        with pytest.raises(sa.exc.DBAPIError, match=r"audit\.username"):
            session.commit()


# --- FastAPI: get-or-create in a savepoint; `def` dependencies --------------------------------


def test_fastapi_get_or_create_in_a_savepoint_under_concurrent_requests(
    asyncpg_url: URL, engine: sa.Engine
) -> None:
    """Two requests create the same order: the later one's INSERT fails in its savepoint,
    it gets the IntegrityError (not InFailedSqlTransaction), and updates the order instead."""
    Base.metadata.create_all(engine)
    async_engine = create_async_engine(asyncpg_url)
    sessions = async_sessionmaker(async_engine, expire_on_commit=False)
    app = FastAPI()

    async def audited(authorization: Annotated[str, Header()]) -> AsyncIterator[None]:
        async with audit_context(username=user_from(authorization), request_id=uuid.uuid4()):
            yield

    @app.put("/orders/{order_id}", dependencies=[Depends(audited)])
    async def put_order(order_id: int, item: str) -> dict[str, str]:
        async with sessions.begin() as session:
            try:
                async with session.begin_nested():
                    session.add(Order(id=order_id, item=item))
                return {"result": "created"}
            except sa.exc.IntegrityError:
                order = await session.get(Order, order_id, with_for_update=True)
                assert order is not None
                order.item = item
                return {"result": "updated"}

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                return await asyncio.gather(
                    *(
                        client.put(
                            f"/orders/{n % 3}",
                            params={"item": f"item{n}"},
                            headers={"Authorization": f"Bearer user{n}"},
                        )
                        for n in range(9)
                    )
                )
        finally:
            await async_engine.dispose()

    responses = asyncio.run(main())
    assert [response.status_code for response in responses] == [200] * 9
    assert sorted(response.json()["result"] for response in responses) == (
        ["created"] * 3 + ["updated"] * 6
    )
    rows = recorded(engine)
    assert sorted(user for _, _, user, _ in rows) == sorted(f"user{n}" for n in range(9))
    for _, item, username, _ in rows:
        assert username == "user" + item.removeprefix("item")
    assert sorted(op for op, *_ in rows) == ["I"] * 3 + ["U"] * 6


def sync_fastapi_app(engine: sa.Engine, *, context_dependency: str) -> FastAPI:
    """A sync FastAPI app: a `def` session dependency and a `def` endpoint, in the threadpool.

    ``context_dependency`` is ``"async def"`` (the recipe) or ``"def"`` (the mistake).
    """
    sessions = sessionmaker(engine)
    app = FastAPI()

    def current_user(authorization: Annotated[str, Header()]) -> str:
        return user_from(authorization)

    async def audited(user: Annotated[str, Depends(current_user)]) -> AsyncIterator[None]:
        async with audit_context(username=user, request_id=uuid.uuid4()):
            yield

    def audited_in_threadpool(user: Annotated[str, Depends(current_user)]) -> Iterator[None]:
        with audit_context(username=user, request_id=uuid.uuid4()):
            yield

    def db() -> Iterator[Session]:  # runs in the threadpool too: it sees a copy of the context
        with sessions.begin() as session:
            yield session  # commits after the endpoint, still inside the context

    context = audited if context_dependency == "async def" else audited_in_threadpool

    # The context first, then the session: dependencies exit in reverse order, so the
    # session commits before the context exits.
    @app.post("/orders", dependencies=[Depends(context)])
    def create_order(item: str, session: Annotated[Session, Depends(db)]) -> dict[str, str]:
        session.add(Order(item=item))
        return {"item": item}

    return app


def test_fastapi_sync_endpoint_and_def_session_dependency_under_an_async_def_context(
    engine: sa.Engine,
) -> None:
    Base.metadata.create_all(engine)
    app = sync_fastapi_app(engine, context_dependency="async def")

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/orders",
                        params={"item": f"item{n}"},
                        headers={"Authorization": f"Bearer user{n}"},
                    )
                    for n in range(6)
                )
            )

    assert [response.status_code for response in asyncio.run(main())] == [200] * 6
    rows = recorded(engine)
    assert sorted((item, user) for _, item, user, _ in rows) == [
        (f"item{n}", f"user{n}") for n in range(6)
    ]


def test_fastapi_context_dependency_declared_with_def_fails_loudly(engine: sa.Engine) -> None:
    """A `def` dependency enters the context in a threadpool thread, in a copy of the
    request's context: the endpoint never sees it.  The required user makes the write fail,
    and leaving the context names the cause."""
    Base.metadata.create_all(engine)
    app = sync_fastapi_app(engine, context_dependency="def")

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            await client.post(
                "/orders", params={"item": "x"}, headers={"Authorization": "Bearer ann"}
            )

    with pytest.raises(
        RuntimeError, match=r"dependency declared with 'def'.*'async def'"
    ) as raised:
        asyncio.run(main())
    assert "audit.username is required" in str(raised.value.__context__)
    assert recorded(engine) == []


def test_a_job_skips_a_failing_step_in_a_savepoint_and_goes_on(engine: sa.Engine) -> None:
    Base.metadata.create_all(engine)

    @runs_as("system:import")
    def import_orders(engine: sa.Engine, rows: list[tuple[int, str]]) -> list[int]:
        skipped = []
        with Session(engine) as session, session.begin():
            for order_id, item in rows:
                try:
                    with session.begin_nested():  # one row's failure must not end the import
                        session.add(Order(id=order_id, item=item))
                except sa.exc.IntegrityError:
                    skipped.append(order_id)
        return skipped

    assert import_orders(engine, [(1, "a"), (1, "again"), (2, "b"), (2, "again"), (3, "c")]) == [
        1,
        2,
    ]
    assert [(op, item, user) for op, item, user, _ in recorded(engine)] == [
        ("I", "a", "system:import"),
        ("I", "b", "system:import"),
        ("I", "c", "system:import"),
    ]


def test_fastapi_session_dependency_declared_before_the_context_warns(
    asyncpg_url: URL, engine: sa.Engine
) -> None:
    """Dependencies exit in reverse order: a session dependency declared first commits after
    the context exited.  Leaving the context warns; the late flush then fails for want of
    the required user instead of going unattributed."""
    Base.metadata.create_all(engine)
    async_engine = create_async_engine(asyncpg_url)
    sessions = async_sessionmaker(async_engine, expire_on_commit=False)
    app = FastAPI()

    async def db() -> AsyncIterator[AsyncSession]:
        async with sessions.begin() as session:
            yield session  # commits when the request is done

    async def audited(authorization: Annotated[str, Header()]) -> AsyncIterator[None]:
        async with audit_context(username=user_from(authorization)):
            yield

    @app.post("/orders")
    async def create_order(
        item: str,
        session: Annotated[AsyncSession, Depends(db)],  # declared first: the wrong order
        _audited: Annotated[None, Depends(audited)],
    ) -> dict[str, str]:
        order = Order(item=item)
        session.add(order)
        await session.flush()  # under the context
        order.item = item + "!"  # flushed at commit, after the context exited
        return {"item": item}

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                await client.post(
                    "/orders", params={"item": "x"}, headers={"Authorization": "Bearer ann"}
                )
        finally:
            await async_engine.dispose()

    with (
        pytest.warns(RuntimeWarning, match="before the session dependency"),
        pytest.raises(sa.exc.DBAPIError, match=r"audit\.username is required"),
    ):
        asyncio.run(main())
    assert recorded(engine) == []
