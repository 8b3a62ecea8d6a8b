"""Session settings outside web requests: set_session_vars, audit_context, validation, jobs."""

import contextvars
import functools
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
from expect import raises
from recipe_models import Base, Order, recorded
from sqlalchemy.orm import Session

import sqlalchemy_postgresql_audit as audit

engine = sa.create_engine(os.environ["DATABASE_URL"])
Base.metadata.create_all(engine)

# --8<-- [start:explicit]
with Session(engine) as session, session.begin():
    audit.set_session_vars(session, username="alice", request_id=uuid.uuid4())
    session.add(Order(id=1, item="book"))
# --8<-- [end:explicit]

# --8<-- [start:validation]
for bad in (
    {"usernme": "alice"},          # a name no audited table declares
    {"request_id": "not-a-uuid"},  # a value the column type cannot hold
):
    try:
        audit.audit_context(**bad)
    except audit.AuditSettingError as error:
        print(error)
    else:
        raise AssertionError(bad)

with Session(engine) as session:  # a required setting missing: the write fails
    session.add(Order(id=2, item="pen"))
    error = raises(sa.exc.DBAPIError, session.commit)
    assert "audit.username is required" in str(error.orig)
# --8<-- [end:validation]

try:
    audit.set_session_vars(engine, username="alice")
except TypeError as error:
    print(error)  # needs the Connection or Session whose transaction the settings describe
else:
    raise AssertionError("an Engine was accepted")

T = TypeVar("T")


# --8<-- [start:job]
def runs_as(username: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a task (under @celery_app.task) so its writes are audited as ``username``."""

    def decorate(task: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(task)
        def run(*args: Any, **kwargs: Any) -> T:
            with audit.audit_context(username=username, request_id=uuid.uuid4()):
                return task(*args, **kwargs)

        return run

    return decorate


@runs_as("system:nightly-cleanup")
def close_orders() -> int:
    with Session(engine) as session, session.begin():
        return session.execute(sa.update(Order).values(item=Order.item + " (closed)")).rowcount


worker = threading.Thread(target=close_orders)  # as a task queue's worker would run it
worker.start()
worker.join()
# --8<-- [end:job]

rows = recorded()
assert [(item, user) for item, user, _ in rows] == [
    ("book", "alice"),
    ("book (closed)", "system:nightly-cleanup"),
]
# --8<-- [start:nesting]
with audit.audit_context(username="alice", request_id=None):
    with audit.audit_context(username="bob"):  # inner contexts add to and override outer ones
        assert audit.current_audit_values() == {"username": "bob", "request_id": ""}
    assert audit.current_audit_values()["username"] == "alice"
assert audit.current_audit_values() == {}
# --8<-- [end:nesting]

# --8<-- [start:savepoint]
with audit.audit_context(username="alice"), Session(engine) as session, session.begin():
    try:
        with session.begin_nested():  # get-or-create: try the INSERT in a savepoint
            session.add(Order(id=1, item="book"))
    except sa.exc.IntegrityError:  # the real error; the transaction goes on
        order = session.get(Order, 1)
        assert order is not None
        order.item = "book (found)"  # recorded as alice, like everything in the block
# --8<-- [end:savepoint]
assert recorded()[-1][:2] == ("book (found)", "alice")


# --8<-- [start:executor]
def rename(order_id: int, item: str) -> None:
    with Session(engine) as session, session.begin():
        session.execute(sa.update(Order).where(Order.id == order_id).values(item=item))


with audit.audit_context(username="alice"), ThreadPoolExecutor() as pool:
    # A worker thread does not see the caller's context: hand it a copy, one per task.
    pool.submit(contextvars.copy_context().run, rename, 1, "book (alice)").result()
# --8<-- [end:executor]
assert recorded()[-1][:2] == ("book (alice)", "alice")

# --8<-- [start:default]
audit.default_context(username="system:worker")  # at the start of a worker process


def heartbeat() -> None:  # a thread some library starts: no audit_context reaches it
    rename(1, "book (heartbeat)")


thread = threading.Thread(target=heartbeat)
thread.start()
thread.join()
with audit.audit_context(username="alice"):  # a context replaces the default wholly
    rename(1, "book (alice again)")
audit.default_context()  # clears it
# --8<-- [end:default]
assert [row[:2] for row in recorded()[-2:]] == [
    ("book (heartbeat)", "system:worker"),
    ("book (alice again)", "alice"),
]
