"""Design 1: a table that joins change-data-capture after the subscription exists, or switches to
it from trigger mode, loses no change committed before the consumer's next run.  The subscription
is held at the transaction that published the table until the consumer seeded its replica from
that transaction's baseline.  Two real servers: the source and the target."""

from __future__ import annotations

import time
import uuid

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import install_audit_triggers, maintain
from sqlalchemy_postgresql_audit.cdc import CdcError, Consumer
from sqlalchemy_postgresql_audit.cdc.joins import committed_after
from sqlalchemy_postgresql_audit.cdc.replica import Replica
from sqlalchemy_postgresql_audit.cdc.status import cdc_status


def _account(metadata: sa.MetaData, mode: str = "cdc") -> sa.Table:
    return sa.Table(
        "account",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": mode}},
    )


def _ledger(metadata: sa.MetaData, **options: object) -> sa.Table:
    return sa.Table(
        "ledger",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("amount", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": "cdc", **options}},
    )


def _metadata(slot: str) -> sa.MetaData:
    return sa.MetaData(naming_convention={"audit.slot": slot})


def _slot() -> str:
    return f"cdc_{uuid.uuid4().hex[:12]}"


def _trail(engine: sa.Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(sql)]


def _ledger_trail(engine: sa.Engine) -> list[tuple[object, ...]]:
    return _trail(engine, "SELECT audit_operation, id, amount FROM ledger_audit ORDER BY audit_id")


def _account_trail(engine: sa.Engine) -> list[tuple[object, ...]]:
    return _trail(
        engine, "SELECT audit_operation, id, owner, balance FROM account_audit ORDER BY audit_id"
    )


def _ledger_with_rows(source: sa.Engine) -> None:
    """The new table exists with rows before it is audited (no slot saw them)."""
    with source.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE ledger (id integer PRIMARY KEY, amount integer)")
        connection.exec_driver_sql("INSERT INTO ledger VALUES (1, 10), (2, 20), (3, 30)")


def _changes_after_the_join(source: sa.Engine, ledger: sa.Table) -> None:
    with source.begin() as connection:
        connection.execute(ledger.insert().values(id=4, amount=40))
    with source.begin() as connection:
        connection.execute(ledger.update().where(ledger.c.id == 1).values(amount=11))
    with source.begin() as connection:
        connection.execute(ledger.delete().where(ledger.c.id == 2))


_EXPECTED = [
    ("B", 1, 10),
    ("B", 2, 20),
    ("B", 3, 30),
    ("I", 4, 40),
    ("U", 1, 11),
    ("D", 2, 20),
]


def _wait_held(source: sa.Engine, metadata: sa.MetaData, target: sa.Engine) -> None:
    """Until the apply worker has met the join and failed on it at least once."""
    deadline = time.monotonic() + 60
    while not cdc_status(source, metadata, target).apply_error_count:
        assert time.monotonic() < deadline, "the subscription was never held at the join"
        time.sleep(0.2)


def _started(source: sa.Engine, target: sa.Engine, consumers: list[Consumer]) -> sa.MetaData:
    """Design 1 running on ``account``: its subscription exists."""
    metadata = _metadata(_slot())
    _account(metadata)
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    return metadata


def test_changes_of_a_table_joining_after_the_subscription_are_all_recorded(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    metadata = _started(source, target, consumers)
    _ledger_with_rows(source)
    ledger = _ledger(metadata)
    metadata.create_all(source)
    _changes_after_the_join(source, ledger)
    deployed = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(deployed)
    assert deployed.run_once() == 6
    assert _ledger_trail(target) == _EXPECTED
    assert _trail(target, "SELECT id, amount FROM ledger ORDER BY id") == [(1, 11), (3, 30), (4, 40)]
    status = cdc_status(source, metadata, target)
    assert (status.waiting_joins, status.problems) == ((), ())


def test_a_join_on_a_source_past_its_first_transaction_id_epoch_is_seeded_from_its_rows(
    epoch_source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """Rows' ``xmin`` hold 32 bits of a transaction id, ``pg_current_xact_id()`` 64 with the
    epoch on top: past 2^32 transactions the join must still find its install's rows."""
    with epoch_source.connect() as connection:
        full = int(connection.exec_driver_sql("SELECT pg_current_xact_id()::text").scalar_one())
    assert full >= 2**32  # the server really is past its first epoch
    metadata = _started(epoch_source, target, consumers)
    _ledger_with_rows(epoch_source)
    ledger = _ledger(metadata)
    metadata.create_all(epoch_source)
    _changes_after_the_join(epoch_source, ledger)
    deployed = Consumer(epoch_source, target, metadata=metadata, timeout=120)
    consumers.append(deployed)
    assert deployed.run_once() == 6
    assert _ledger_trail(target) == _EXPECTED


def test_a_join_whose_baseline_maintain_moved_is_seeded_from_its_rows(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """``maintain`` on the source (its schedule) before the consumer's next run drains the
    install's versions out of the DEFAULT partition of a partitioned audit table: other rows,
    another ``xmin``, the same values.  The join still finds them."""
    metadata = _started(source, target, consumers)
    _ledger_with_rows(source)
    ledger = _ledger(metadata, partition="week")
    metadata.create_all(source)
    with source.connect() as connection:
        before = connection.exec_driver_sql(
            "SELECT count(*) FROM ONLY ledger_audit_default"
        ).scalar_one()
    maintain(source, metadata)
    with source.connect() as connection:
        after = connection.exec_driver_sql(
            "SELECT count(*) FROM ONLY ledger_audit_default"
        ).scalar_one()
    assert (before, after) == (3, 0)  # the versions were moved
    _changes_after_the_join(source, ledger)
    deployed = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(deployed)
    deployed.run_once()
    assert _ledger_trail(target) == _EXPECTED


def test_changes_of_other_tables_wait_at_the_join_and_arrive_in_order_after_the_seed(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    metadata = _started(source, target, consumers)
    account = metadata.tables["account"]
    _ledger_with_rows(source)
    ledger = _ledger(metadata)
    metadata.create_all(source)
    with source.begin() as connection:
        connection.execute(account.insert().values(id=1, owner="a"))
    _changes_after_the_join(source, ledger)
    with source.begin() as connection:
        connection.execute(account.update().where(account.c.id == 1).values(balance=5))
    _wait_held(source, metadata, target)
    assert _account_trail(target) == []  # waiting, not skipped
    status = cdc_status(source, metadata, target)
    assert status.waiting_joins == ('"public"."ledger"',)
    assert [p for p in status.problems if "waiting for the consumer to seed" in p]
    assert not [p for p in status.problems if "apply errors" in p]
    # the worker is between retries after the join's error: not out of worker slots
    assert not [p for p in status.problems if "no apply worker" in p]
    deployed = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(deployed)
    deployed.run_once()
    assert _account_trail(target) == [("I", 1, "a", None), ("U", 1, "a", 5)]
    assert _ledger_trail(target) == _EXPECTED
    with target.connect() as connection:
        ids = connection.exec_driver_sql(
            "SELECT a.audit_id FROM account_audit a UNION ALL SELECT l.audit_id FROM ledger_audit l"
        ).all()
    assert len(ids) == 8


def test_a_consumer_killed_between_the_refresh_and_the_seed_is_followed_by_one_that_seeds(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    metadata = _started(source, target, consumers)
    _ledger_with_rows(source)
    ledger = _ledger(metadata)
    metadata.create_all(source)
    _changes_after_the_join(source, ledger)
    # What a consumer killed right after its refresh leaves: the subscription knows the table,
    # the replica lacks its rows.
    replica = Replica(source, target, metadata)
    replica.prepare()
    assert replica.refresh()
    _wait_held(source, metadata, target)
    assert _ledger_trail(target) == []
    assert cdc_status(source, metadata, target).waiting_joins == ('"public"."ledger"',)
    deployed = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(deployed)
    assert deployed.run_once() == 6
    assert _ledger_trail(target) == _EXPECTED


def test_a_join_the_install_baseline_cannot_seed_is_left_to_the_copy_and_never_holds_the_trail(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """An excluded column: the install's versions do not hold its values, so the replica gets
    the locked copy's rows; the join is recorded as seeded all the same."""
    metadata = _started(source, target, consumers)
    account = metadata.tables["account"]
    _ledger_with_rows(source)
    _ledger(metadata, exclude_columns=["amount"])
    metadata.create_all(source)
    deployed = Consumer(source, target, metadata=metadata, timeout=30)
    consumers.append(deployed)
    deployed.run_once()
    with source.begin() as connection:
        connection.execute(account.insert().values(id=1, owner="a"))
    deployed.run_once()
    assert _account_trail(target) == [("I", 1, "a", None)]
    assert _trail(target, "SELECT id, amount FROM ledger ORDER BY id") == [
        (1, 10),
        (2, 20),
        (3, 30),
    ]
    assert cdc_status(source, metadata, target).waiting_joins == ()


@pytest.mark.parametrize("subscribed_before", [False, True])
def test_a_table_switched_from_trigger_mode_keeps_changes_made_before_the_consumer_runs(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer], subscribed_before: bool
) -> None:
    slot = _slot()
    if subscribed_before:
        started = _metadata(slot)
        _ledger(started)
        started.create_all(source)
        consumers.append(Consumer(source, target, metadata=started, timeout=120))
        consumers[-1].run_once()
    triggers = _metadata(slot)
    account = _account(triggers, mode="row")
    triggers.create_all(source)
    with source.begin() as connection:
        connection.execute(account.insert().values([(1, "a", None), (2, "b", None)]))
    with source.begin() as connection:
        connection.execute(account.update().where(account.c.id == 1).values(balance=1))
    switched = _metadata(slot)
    account = _account(switched)
    if subscribed_before:
        _ledger(switched)
    install_audit_triggers(switched, source)
    with source.begin() as connection:
        connection.execute(account.update().where(account.c.id == 1).values(balance=2))
    with source.begin() as connection:
        connection.execute(account.delete().where(account.c.id == 2))
    consumer = Consumer(source, target, metadata=switched, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    assert _account_trail(target) == [
        ("B", 1, "a", 1),
        ("B", 2, "b", None),
        ("U", 1, "a", 2),
        ("D", 2, "b", None),
    ]
    # The source's trail keeps the trigger era, then the switch's baseline of every row.
    assert [row[0] for row in _account_trail(source)] == ["I", "I", "U", "B", "B"]


def test_joins_the_subscription_skipped_before_it_applied_the_joins_table_are_left_to_the_copy(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """A source set up before the joins table existed: the table's install creates it and
    publishes it, but the subscription applies it only from the refresh on, so the apply worker
    went past the join; the replica gets the rows as they are, not the install's."""
    metadata = _started(source, target, consumers)
    subscription = consumers[-1].metadata.naming_convention["audit.slot"]
    with source.begin() as connection:
        connection.exec_driver_sql("DROP TABLE audit_cdc_context_joins")
    with target.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(
            f"ALTER SUBSCRIPTION {subscription} REFRESH PUBLICATION WITH (copy_data = false)"
        )
    _ledger_with_rows(source)
    ledger = _ledger(metadata)
    Replica(source, target, metadata).prepare()  # else the worker waits for the target's table
    metadata.create_all(source)
    _changes_after_the_join(source, ledger)
    with source.begin() as connection:
        connection.execute(metadata.tables["account"].insert().values(id=1, owner="after"))
    deadline = time.monotonic() + 60
    while not _account_trail(target):  # the apply worker went past the join and the changes
        assert time.monotonic() < deadline, "the apply worker never went past the join"
        time.sleep(0.2)
    deployed = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(deployed)
    deployed.run_once()
    assert _trail(target, "SELECT id, amount FROM ledger ORDER BY id") == [(1, 11), (3, 30), (4, 40)]
    assert cdc_status(source, metadata, target).waiting_joins == ()


def test_a_new_subscription_with_models_lacking_a_published_table_names_it(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """PostgreSQL refuses the subscription with a bare "relation ... does not exist": the
    consumer names the table and the two ways to get there."""
    slot = _slot()
    migrated = _metadata(slot)
    _account(migrated)
    _ledger(migrated)
    migrated.create_all(source)
    older = _metadata(slot)
    _account(older)
    consumer = Consumer(source, target, metadata=older, timeout=60)
    consumers.append(consumer)
    with pytest.raises(CdcError, match=r"hold public\.ledger, which the target lacks"):
        consumer.run_once()


def test_a_table_dropped_and_made_again_replaces_its_old_rows_in_the_replica(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """DROP TABLE never reaches the replica: the join of the table made again brings its whole
    state, and the old table's rows go, so no change is applied onto them."""
    metadata = _started(source, target, consumers)
    account = metadata.tables["account"]
    with source.begin() as connection:
        connection.execute(
            account.insert(),
            [{"id": i, "owner": o, "balance": i} for i, o in ((1, "a"), (2, "b"), (3, "c"))],
        )
    assert consumers[0].run_once() == 3
    with source.begin() as connection:
        connection.exec_driver_sql("DROP TABLE account, account_audit")
        connection.exec_driver_sql(
            "CREATE TABLE account (id integer PRIMARY KEY, owner text NOT NULL, balance integer)"
        )
        connection.exec_driver_sql("INSERT INTO account VALUES (1, 'x', 100), (4, 'y', 400)")
    metadata.create_all(source)
    with source.begin() as connection:
        connection.execute(account.delete().where(account.c.id == 1))
    with source.begin() as connection:
        connection.execute(account.update().where(account.c.id == 4).values(balance=401))
    with source.begin() as connection:
        connection.execute(account.insert().values(id=2, owner="z", balance=222))
    deployed = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(deployed)
    deployed.run_once()
    assert _account_trail(target) == [
        ("I", 1, "a", 1),
        ("I", 2, "b", 2),
        ("I", 3, "c", 3),
        ("B", 1, "x", 100),
        ("B", 4, "y", 400),
        ("D", 1, "x", 100),
        ("U", 4, "y", 401),
        ("I", 2, "z", 222),
    ]
    rows = _trail(target, "SELECT id, owner, balance FROM account ORDER BY id")
    assert rows == [(2, "z", 222), (4, "y", 401)]


def test_a_join_recorded_after_the_transaction_counter_wrapped_is_later() -> None:
    """Joins record 32 bits of a transaction id: one recorded after the counter passed 2^32
    is later than the install, as PostgreSQL compares them (modulo 2^32)."""
    install = 2**32 - 10
    assert committed_after(5, install)
    assert not committed_after(install, 5)
    assert committed_after(install + 1, install) and not committed_after(install, install)
