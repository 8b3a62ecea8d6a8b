"""FastAPI: a dependency puts the user and a request id into audit_context for the request."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from recipe_models import Base, Order, recorded
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from sqlalchemy_postgresql_audit import audit_context

url = make_url(os.environ["DATABASE_URL"])
Base.metadata.create_all(sa.create_engine(url))
engine = create_async_engine(url.set(drivername="postgresql+asyncpg"))
sessions = async_sessionmaker(engine, expire_on_commit=False)

# --8<-- [start:app]
app = FastAPI()


async def current_user(authorization: Annotated[str, Header()]) -> str:
    scheme, _, user = authorization.partition(" ")  # stands in for real authentication
    if scheme != "Bearer" or not user:
        raise HTTPException(401)
    return user


def request_id_from(header: str | None) -> uuid.UUID:
    """The caller's X-Request-Id when it is a UUID, else a fresh one (never a 500)."""
    try:
        return uuid.UUID(header or "")
    except ValueError:
        return uuid.uuid4()


# `async def`, not `def`: a `def` dependency runs in a threadpool, in a copy of the
# request's context, so the endpoint would never see the values.
async def audited(
    request: Request, user: Annotated[str, Depends(current_user)]
) -> AsyncIterator[None]:
    request_id = request_id_from(request.headers.get("x-request-id"))
    async with audit_context(username=user, request_id=request_id):
        yield  # every transaction of this request records user and request id


async def db() -> AsyncIterator[AsyncSession]:
    async with sessions() as session:
        yield session


# The context before the session: dependencies exit in reverse order, so the session is
# done (committed, closed) before the context exits.
@app.post("/orders", dependencies=[Depends(audited)])
async def create_order(item: str, session: Annotated[AsyncSession, Depends(db)]) -> dict[str, int]:
    order = Order(item=item)
    session.add(order)
    await session.commit()
    return {"id": order.id}
# --8<-- [end:app]


# --8<-- [start:call]
async def main() -> list[int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        responses = await asyncio.gather(*(
            client.post("/orders", params={"item": f"item{n}"},
                        headers={"Authorization": f"Bearer user{n}",
                                 "X-Request-Id": str(uuid.UUID(int=n))})
            for n in range(5)
        ))  # five concurrent requests: each records its own user and request id
        odd = await client.post("/orders", params={"item": "odd"},
                                headers={"Authorization": "Bearer eve",
                                         "X-Request-Id": "not-a-uuid"})
    await engine.dispose()
    return [response.status_code for response in [*responses, odd]]


assert asyncio.run(main()) == [200] * 6
for item, username, request_id in recorded()[:5]:
    n = int(item.removeprefix("item"))
    assert (username, request_id) == (f"user{n}", uuid.UUID(int=n))
# --8<-- [end:call]
odd_item, odd_user, odd_request_id = recorded()[5]
assert (odd_item, odd_user) == ("odd", "eve") and odd_request_id is not None
assert len(recorded()) == 6
