"""Design 1: a subscription with ``disable_on_error = true`` (PostgreSQL 15+), or disabled while a
join waits, would stop the trail for good at the next join (its hold makes the apply worker
fail).  Each run refuses it, naming the subscription and the statement that lets the trail go
on, and ``cdc status`` reports it; once fixed, the join is seeded and nothing is lost.  Two real
servers: the source and the target."""

from __future__ import annotations

import time
import uuid

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit.cdc import CdcError, Consumer
from sqlalchemy_postgresql_audit.cdc.status import cdc_status


@pytest.fixture(autouse=True)
def _has_disable_on_error(target: sa.Engine) -> None:
    with target.connect() as connection:
        if (connection.dialect.server_version_info or (0,)) < (15,):
            pytest.skip("disable_on_error came with PostgreSQL 15")


def _models(slot: str, *, with_ledger: bool = False) -> sa.MetaData:
    metadata = sa.MetaData(naming_convention={"audit.slot": slot})
    sa.Table(
        "acct",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    if with_ledger:
        sa.Table(
            "ledger",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("amount", sa.Integer),
            info={"audit.options": {"enabled": True, "mode": "cdc"}},
        )
    return metadata


def _alter(target: sa.Engine, slot: str, change: str) -> None:
    with target.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f'ALTER SUBSCRIPTION "{slot}" {change}')


def _rows(engine: sa.Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(sql)]


def _running(source: sa.Engine, target: sa.Engine, consumers: list[Consumer]) -> str:
    """Design 1 running on ``acct``; returns the slot (and subscription) name."""
    slot = f"cdc_{uuid.uuid4().hex[:12]}"
    first = _models(slot)
    first.create_all(source)
    consumers.append(Consumer(source, target, metadata=first, timeout=120))
    consumers[-1].run_once()
    return slot


def test_a_run_refuses_disable_on_error_naming_the_statement_that_fixes_it(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    slot = _running(source, target, consumers)
    _alter(target, slot, "SET (disable_on_error = true)")
    with pytest.raises(CdcError) as refused:
        consumers[-1].run_once()
    message = str(refused.value)
    assert f"subscription {slot!r} has disable_on_error = true" in message
    assert "by making it fail and retry" in message
    fix = f"Run on the target: ALTER SUBSCRIPTION {slot} SET (disable_on_error = false)"
    assert message.endswith(fix)
    status = cdc_status(source, consumers[-1].metadata, target)
    assert status.disable_on_error is True
    assert [p for p in status.problems if p.startswith(message.split(":")[0])] != []
    _alter(target, slot, "SET (disable_on_error = false)")
    with source.begin() as connection:
        connection.exec_driver_sql("INSERT INTO acct VALUES (1)")
    assert consumers[-1].run_once() == 1


def test_a_join_that_disabled_the_subscription_is_seeded_once_it_is_fixed(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """The hold's first failure disabled it: each run says what to do, and after the operator
    did it, the join is seeded and every change made meanwhile is in the trail, in order."""
    slot = _running(source, target, consumers)
    _alter(target, slot, "SET (disable_on_error = true)")
    with source.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE ledger (id integer PRIMARY KEY, amount integer)")
        connection.exec_driver_sql("INSERT INTO ledger VALUES (1, 10), (2, 20)")
    joined = _models(slot, with_ledger=True)
    joined.create_all(source)
    with source.begin() as connection:
        connection.exec_driver_sql("UPDATE ledger SET amount = 11 WHERE id = 1")
    with source.begin() as connection:
        connection.exec_driver_sql("INSERT INTO acct VALUES (3)")
    enabled = f"SELECT subenabled FROM pg_subscription WHERE subname = '{slot}'"
    deadline = time.monotonic() + 60
    while _rows(target, enabled) != [(False,)]:  # the hold's first failure disables it
        assert time.monotonic() < deadline, "the subscription was not disabled"
        time.sleep(0.2)
    consumer = Consumer(source, target, metadata=joined, timeout=120)
    consumers.append(consumer)
    with pytest.raises(CdcError, match="has disable_on_error = true") as refused:
        consumer.run_once()
    assert str(refused.value).endswith(
        f"SET (disable_on_error = false), then ALTER SUBSCRIPTION {slot} ENABLE"
    )
    _alter(target, slot, "SET (disable_on_error = false)")
    waits = f'subscription {slot!r} is disabled while "public"."ledger" waits'
    with pytest.raises(CdcError) as refused:
        consumer.run_once()
    assert str(refused.value).startswith(waits)
    assert f"Enable it on the target (ALTER SUBSCRIPTION {slot} ENABLE)" in str(refused.value)
    problems = cdc_status(source, joined, target).problems
    assert [p for p in problems if p.startswith(waits)] != []
    assert [p for p in problems if "Run the consumer with models that declare it" in p] == []
    _alter(target, slot, "ENABLE")
    consumer.run_once()
    ledger = "SELECT audit_operation, id, amount FROM ledger_audit ORDER BY audit_id"
    assert _rows(target, ledger) == [("B", 1, 10), ("B", 2, 20), ("U", 1, 11)]
    assert _rows(target, "SELECT audit_operation, id FROM acct_audit ORDER BY audit_id") == [
        ("I", 3)
    ]
