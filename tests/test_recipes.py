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
from collections.abc import AsyncIterator, Callable
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
