"""The demo's scripted changes: a small shop's day, one transaction per request.

Each transaction runs on someone's behalf through ``acting_as``: inside
``audit_context(username=..., request_id=...)`` every statement carries the audit settings, as
in a web application whose middleware enters the context once per request.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from ...context.scope import audit_context
from ...history import restore
from ..base import CliError
from ..database import first_line
from .model import Shop


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    username: str | None
    request_id: str | None
    what: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Story:
    steps: tuple[Step, ...]
    #: A moment between the second and the last change to the items, for ``as_of``.
    before_removal: datetime.datetime


@contextmanager
def acting_as(engine: sa.Engine, username: str, request_id: str) -> Iterator[sa.Connection]:
    """One transaction whose audit rows name ``username`` and ``request_id``."""
    with audit_context(username=username, request_id=request_id), engine.begin() as connection:
        yield connection


def play(engine: sa.Engine, shop: Shop) -> Story:
    customers, orders, items = shop.customers, shop.orders, shop.order_items
    with acting_as(engine, "alice", "req-1001") as connection:
        connection.execute(
            customers.insert(),
            [
                {"id": 1, "name": "Ada Lovelace", "email": "ada@example.com"},
                {"id": 2, "name": "Grace Hopper", "email": "grace@example.com"},
            ],
        )
        connection.execute(
            orders.insert().values(id=1, customer_id=1, status="placed", total=Decimal("68.00"))
        )
        connection.execute(
            items.insert(),
            [
                {
                    "order_id": 1,
                    "line_no": 1,
                    "sku": "KEYBOARD",
                    "quantity": 1,
                    "unit_price": Decimal("49.00"),
                },
                {
                    "order_id": 1,
                    "line_no": 2,
                    "sku": "MOUSE",
                    "quantity": 1,
                    "unit_price": Decimal("19.00"),
                },
            ],
        )
    with acting_as(engine, "bob", "req-1002") as connection:
        connection.execute(
            items.update().where(items.c.order_id == 1, items.c.line_no == 2).values(quantity=3)
        )
        connection.execute(orders.update().where(orders.c.id == 1).values(total=Decimal("106.00")))
    with engine.connect() as connection:
        before_removal = connection.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
    with acting_as(engine, "bob", "req-1003") as connection:
        connection.execute(items.delete().where(items.c.order_id == 1, items.c.line_no == 1))
        connection.execute(orders.update().where(orders.c.id == 1).values(total=Decimal("57.00")))
    refused = _write_without_username(engine, shop)
    with acting_as(engine, "carol", "req-1004") as connection:
        restore(connection, items, {"order_id": 1, "line_no": 1}, before_removal)
        restore(connection, orders, 1, before_removal)
    steps = (
        Step(
            username="alice",
            request_id="req-1001",
            what="placed order 1 for Ada Lovelace: a keyboard and a mouse",
        ),
        Step(
            username="bob",
            request_id="req-1002",
            what="raised item (1, 2) to 3 mice; order total 106.00",
        ),
        Step(
            username="bob",
            request_id="req-1003",
            what="removed item (1, 1), the keyboard; order total 57.00",
        ),
        Step(username=None, request_id=None, what=f"refused, no username: {refused}"),
        Step(
            username="carol",
            request_id="req-1004",
            what="restored item (1, 1) and order 1 as they stood before req-1003",
        ),
    )
    return Story(steps=steps, before_removal=before_removal)


def _write_without_username(engine: sa.Engine, shop: Shop) -> str:
    """An update with no audit context fails: auditing never lets a write through unrecorded."""
    customers = shop.customers
    try:
        with engine.begin() as connection:
            connection.execute(
                customers.update().where(customers.c.id == 2).values(email="grace@navy.mil")
            )
    except sa.exc.DBAPIError as error:
        return first_line(error)
    raise CliError("a write without the required username was not refused")
