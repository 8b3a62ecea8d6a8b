"""Faults: a backend terminated mid-transaction leaves nothing half-written.

A victim connection runs a bulk write (its audit rows are written by the trigger inside the same
transaction) and then waits before committing; another connection terminates it with
``pg_terminate_backend`` at varying moments: during the bulk statement (in statement mode often
inside the trigger's own INSERT) or while idle in the transaction.  Afterwards there must be no
change without its audit row and no audit row without its change.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, set_session_vars

BASE_ROWS = 2000
BULK = {
    "insert": "INSERT INTO item (id, v) SELECT g, 0 FROM generate_series(100001, 400000) AS g",
    "update": "UPDATE item SET v = v + 1",
    "delete": "DELETE FROM item WHERE id % 2 = 0",
}
DELAYS = (0.0, 0.02, 0.08, 0.3)


def declare(mode: str) -> sa.Table:
    return sa.Table(
        "item",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Integer),
        info={
            "audit.options": {
                "enabled": True,
                "mode": mode,
                "session_settings": [sa.Column("username", sa.Text, nullable=False)],
                "capture": ["changed_columns"],
            }
        },
    )


def snapshot(engine: sa.Engine, table: sa.Table) -> tuple[list[Any], list[Any]]:
    audit = table.info[AUDIT_TABLE_KEY]
    with engine.connect() as connection:
        data = connection.execute(sa.select(table).order_by(table.c.id)).all()
        trail = connection.execute(
            sa.select(audit.c.audit_operation, audit.c.id, audit.c.v).order_by(audit.c.audit_id)
        ).all()
    return data, trail


def kill_mid_transaction(engine: sa.Engine, statement: str, delay: float) -> str:
    """Run ``statement`` in a transaction that is terminated before it can commit; returns
    where the kill landed (``active``: during the statement, ``idle``: after it)."""
    pid: list[int] = []
    failure: list[BaseException] = []
    ready = threading.Event()

    def victim() -> None:
        try:
            with engine.begin() as connection:
                pid.append(connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
                set_session_vars(connection, username="victim")
                ready.set()
                connection.execute(sa.text(statement))
                connection.execute(sa.text("SELECT pg_sleep(20)"))  # never reached commit
        except BaseException as error:
            failure.append(error)
        finally:
            ready.set()

    thread = threading.Thread(target=victim)
    thread.start()
    assert ready.wait(20)
    time.sleep(delay)
    with engine.connect() as killer:
        state = killer.execute(
            sa.text("SELECT query FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid[0]}
        ).scalar_one()
        assert killer.execute(
            sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid[0]}
        ).scalar_one()
    thread.join(30)
    assert not thread.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], sa.exc.OperationalError), failure
    return "idle" if "pg_sleep" in str(state) else "active"


@pytest.mark.parametrize("mode", ["statement", "row"])
def test_terminated_backend_leaves_no_half_written_change(engine: sa.Engine, mode: str) -> None:
    table = declare(mode)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        set_session_vars(connection, username="seed")
        connection.execute(table.insert(), [{"id": i, "v": 0} for i in range(1, BASE_ROWS + 1)])
    before = snapshot(engine, table)
    assert len(before[0]) == BASE_ROWS and len(before[1]) == BASE_ROWS
    landed: list[str] = []
    for kind, statement in BULK.items():
        for delay in DELAYS:
            landed.append(kill_mid_transaction(engine, statement, delay))
            assert snapshot(engine, table) == before, (kind, delay)
    assert "active" in landed  # at least one kill interrupted a bulk statement
    # Auditing still works after the kills.
    with engine.begin() as connection:
        set_session_vars(connection, username="after")
        connection.execute(table.update().where(table.c.id == 1).values(v=5))
    _, trail = snapshot(engine, table)
    assert trail[-1] == ("U", 1, 5) and len(trail) == BASE_ROWS + 1
    print(f"\n{mode}: kills landed {landed}")
