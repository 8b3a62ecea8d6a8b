"""Races of ``maintain`` against writers, holds and erasures: whatever is committed while it
waits for its locks is seen once it has them (its transactions run at READ COMMITTED whatever
the Engine's level, and a Connection above it is refused), and nothing another session changed
meanwhile is undone or lost."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from partition_models import accounts
from sqlalchemy_postgresql_audit import (
    AuditError,
    Erased,
    erase,
    hold,
    holds_of,
    maintain,
    redact_history,
    release,
)
from sqlalchemy_postgresql_audit.declare.audit_table import AUDIT_TABLE_KEY

UTC = datetime.timezone.utc
LEVELS = ("REPEATABLE READ", "SERIALIZABLE")


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """``call`` in a thread; its result (or error) lands in the list."""
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(call())
        except BaseException as error:  # reported by the test
            results.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, results


def waiting(engine: sa.Engine, event: str, results: list[Any]) -> None:
    """Return once a session of this database waits for a lock of kind ``event``
    (``relation``, ``advisory``; ``%`` for any); a call that ended instead is reported as
    itself."""
    with engine.connect() as watcher:
        for _ in range(1200):
            if results:
                raise AssertionError(f"the call ended instead of waiting: {results[0]!r}")
            found = watcher.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND wait_event LIKE :event AND datname = current_database()"
                ),
                {"event": event},
            ).scalar_one()
            if found:
                return
            watcher.execute(sa.text("SELECT pg_sleep(0.05)"))
            watcher.rollback()  # pg_stat_activity is read once per transaction
    raise AssertionError(f"no session ever waited for a {event} lock")


def done(results: list[Any]) -> Any:
    (result,) = results
    if isinstance(result, BaseException):
        raise result
    return result


@pytest.mark.parametrize("level", LEVELS)
def test_a_row_committed_while_maintain_waits_is_drained_at_any_engine_level(
    engine: sa.Engine, level: str
) -> None:
    table = accounts()
    table.metadata.create_all(engine)
    with engine.begin() as connection:  # no partition yet: in the DEFAULT partition
        connection.execute(table.insert().values(id=1, balance=1))
    isolated = sa.create_engine(engine.url, isolation_level=level)
    try:
        with engine.connect() as writer:
            writer.execute(table.insert().values(id=2, balance=2))  # in flight
            thread, results = in_thread(lambda: maintain(isolated, table))
            waiting(engine, "relation", results)  # its lock waits for the writer
            writer.commit()
            thread.join()
    finally:
        isolated.dispose()
    (maintained,) = done(results)
    assert maintained.drained == 2
    with engine.connect() as connection:
        ids = connection.execute(sa.text("SELECT id FROM accounts_audit ORDER BY id"))
        assert list(ids.scalars()) == [1, 2]


def retention_with_history(engine: sa.Engine) -> sa.Table:
    """A weekly table kept one week, with a row five weeks old in a partition of its own."""
    table = accounts(retention=datetime.timedelta(weeks=1))
    table.metadata.create_all(engine)
    now = datetime.datetime.now(UTC)
    maintain(engine, table, at=now - datetime.timedelta(weeks=8))
    audit = table.info[AUDIT_TABLE_KEY]
    with engine.begin() as connection:
        old = now - datetime.timedelta(weeks=5)
        connection.execute(
            audit.insert().values(
                id=1, balance=1, audit_operation="I", audit_operation_timestamp=old
            )
        )
    maintain(engine, table, at=now - datetime.timedelta(weeks=8))
    return table


@pytest.mark.parametrize("level", LEVELS)
def test_a_hold_committed_while_retention_waits_for_it_is_seen_at_any_engine_level(
    engine: sa.Engine, level: str
) -> None:
    table = retention_with_history(engine)
    isolated = sa.create_engine(engine.url, isolation_level=level)
    try:
        with engine.connect() as holder:
            hold(holder, table, "litigation")  # keeps the hold lock until it commits
            thread, results = in_thread(lambda: maintain(isolated, table))
            waiting(engine, "advisory", results)
            holder.commit()
            thread.join()
    finally:
        isolated.dispose()
    (maintained,) = done(results)
    assert maintained.held == "litigation" and maintained.dropped == ()
    with engine.connect() as connection:
        ids = connection.execute(sa.text("SELECT id FROM accounts_audit WHERE id IS NOT NULL"))
        assert list(ids.scalars()) == [1]


@pytest.mark.parametrize("level", LEVELS)
def test_a_connection_above_read_committed_is_refused_naming_its_level(
    engine: sa.Engine, level: str
) -> None:
    table = retention_with_history(engine)
    hold(engine, table, "investigation")
    isolated = sa.create_engine(engine.url, isolation_level=level)
    try:
        with isolated.connect() as connection:
            calls: list[Callable[[], object]] = [
                lambda: maintain(connection, table),
                lambda: hold(connection, table, "another"),
                lambda: release(connection, table, "investigation"),
            ]
            for call in calls:
                with pytest.raises(AuditError, match=f"needs READ COMMITTED.*at {level}"):
                    call()
    finally:
        isolated.dispose()
    assert [h.reason for h in holds_of(engine, table)] == ["investigation"]


def scrub(how: str, engine: sa.Engine, table: sa.Table) -> Erased:
    """Erase id 1's balances, or (``redact_history``, once the column is masked) every one."""
    if how == "erase":
        return erase(engine, table, 1, columns=["balance"], reason="request 42")
    masked = accounts(partition="day", redact={"balance": "mask"})
    return redact_history(engine, masked, "balance", reason="balance was masked")


@pytest.mark.parametrize("how", ["erase", "redact_history"])
def test_an_erasure_while_maintain_copies_ended_days_is_not_undone(
    engine: sa.Engine, how: str
) -> None:
    """The drain copies the DEFAULT partition's ended days before its lock and checks each
    copy by count and sum of ``audit_id``, which an erasure's UPDATE leaves unchanged: the
    erasure waits for the drain's turn instead of being overwritten by the older copy."""
    table = accounts(partition="day")
    table.metadata.create_all(engine)  # no maintain yet: every row waits in DEFAULT
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=111))
    with engine.begin() as connection:
        connection.execute(table.update().where(table.c.id == 1).values(balance=112))
        connection.execute(table.insert().values(id=2, balance=222))
    now = datetime.datetime.now(UTC)
    first, second = now - datetime.timedelta(days=3), now - datetime.timedelta(days=2)
    with engine.begin() as connection:  # two days that have ended: both are copied first
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(
            sa.text("UPDATE accounts_audit SET audit_operation_timestamp = :t WHERE id = :id"),
            [{"t": first, "id": 1}, {"t": second, "id": 2}],
        )
    with engine.connect() as blocker:
        # The second day's copy waits for this uncommitted table of its name: the first
        # day is copied by then.
        blocker.execute(sa.text(f"CREATE TABLE accounts_audit_p{second:%Y%m%d} (x int)"))
        drain, drained = in_thread(lambda: maintain(engine, table))
        waiting(engine, "transactionid", drained)
        erasure, erased = in_thread(lambda: scrub(how, engine, table))
        erasure.join(timeout=2)  # waits for the drain's turn now; before, it went through
        blocker.rollback()
    drain.join()
    erasure.join()
    done(drained)
    assert done(erased).rows == (2 if how == "erase" else 3)
    with engine.connect() as connection:
        values = connection.execute(
            sa.text("SELECT balance FROM accounts_audit WHERE id = 1 ORDER BY audit_id")
        )
        assert list(values.scalars()) == [None, None]


def test_the_retention_marker_never_takes_the_audit_id_of_a_write_in_flight(
    engine: sa.Engine,
) -> None:
    table = accounts(retention=datetime.timedelta(weeks=1))
    table.metadata.create_all(engine)
    now = datetime.datetime.now(UTC)
    for weeks in (8, 4, 0):  # partitions back to then (no retention declared: none removed)
        maintain(engine, accounts(), at=now - datetime.timedelta(weeks=weeks))
    audit = table.info[AUDIT_TABLE_KEY]
    with engine.begin() as connection:  # history of a week retention removes
        old = now - datetime.timedelta(weeks=6)
        connection.execute(
            audit.insert().values(
                id=0, balance=0, audit_operation="I", audit_operation_timestamp=old
            )
        )
    with engine.connect() as first:
        first.execute(table.insert().values(id=1, balance=1))  # takes the next audit_id
        with engine.begin() as second:
            second.execute(table.insert().values(id=2, balance=2))  # one higher, committed
        thread, results = in_thread(lambda: maintain(engine, table))
        waiting(engine, "relation", results)  # retention waits for the first writer
        first.commit()
        thread.join()
    (maintained,) = done(results)
    assert maintained.dropped
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(audit.c.audit_id, audit.c.audit_operation).order_by(audit.c.audit_id)
        ).all()
    ids = [row.audit_id for row in rows]
    assert len(ids) == len(set(ids)), rows
    assert rows[0].audit_operation == "X"


def test_two_first_holds_of_one_schema_at_once_both_hold(engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    tables = [
        sa.Table(
            name,
            metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            info={"audit.options": {"enabled": True}},
        )
        for name in ("accounts", "ledger")
    ]
    metadata.create_all(engine)
    with engine.connect() as first:
        hold(first, tables[0], "litigation")  # creates the holds table, not committed yet
        thread, results = in_thread(lambda: hold(engine, tables[1], "litigation"))
        waiting(engine, "%", results)
        first.commit()
        thread.join()
    done(results)
    for table in tables:
        assert [h.reason for h in holds_of(engine, table)] == ["litigation"]
