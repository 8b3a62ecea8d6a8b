"""Design 1: a consumer starting beside a busy apply worker never deadlocks with it.  The worker
writes a replica, then (its trigger) the audit table, and one source transaction may reach
several tables; the start takes one table's locks per transaction, the replica's first.  Two
real servers: the source and the target."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from cdc_replica_setup import cdc_metadata, cdc_table, rows
from sqlalchemy_postgresql_audit.cdc import Consumer

_WAITING_ON = (
    "SELECT count(*) FROM pg_locks WHERE NOT granted "
    "AND relation = CAST(CAST(%(table)s AS text) AS regclass)"
)


def _wait_for_a_waiter(target: sa.Engine, table: str) -> None:
    with target.connect() as connection:
        for _ in range(600):
            if connection.exec_driver_sql(_WAITING_ON, {"table": table}).scalar():
                return
            connection.rollback()
            time.sleep(0.05)
    raise AssertionError(f"nothing came to wait for {table}")


def test_a_consumer_starting_while_the_worker_holds_a_replica_does_not_deadlock(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """The worker holds ``beta``'s replica and goes on to ``alpha``'s, as applying one source
    transaction that wrote both: a start holding ``alpha``'s trigger lock while it waited for
    ``beta`` deadlocked (and failed)."""
    metadata = cdc_metadata()
    alpha = cdc_table(metadata, "alpha")
    cdc_table(metadata, "beta")
    metadata.create_all(source)
    first = Consumer(source, target, metadata=metadata, timeout=60)
    consumers.append(first)
    first.run_once()
    failures: list[BaseException] = []
    restarted = Consumer(source, target, metadata=metadata, timeout=60)
    consumers.append(restarted)

    def start() -> None:
        try:
            restarted.run_once()
        except BaseException as error:  # reported by the test's thread
            failures.append(error)

    with target.connect() as worker:
        worker.exec_driver_sql("SET lock_timeout = '20s'")
        worker.exec_driver_sql("UPDATE beta SET value = value WHERE false")
        thread = threading.Thread(target=start)
        thread.start()
        _wait_for_a_waiter(target, "beta")
        worker.exec_driver_sql("UPDATE alpha SET value = value WHERE false")
        worker.commit()
    thread.join(120)
    assert not thread.is_alive()
    assert failures == []
    with source.begin() as connection:
        connection.execute(alpha.insert().values(id=1, value=1))
    assert restarted.run_once() == 1
    assert rows(target, "SELECT audit_operation, id FROM alpha_audit") == [("I", 1)]
