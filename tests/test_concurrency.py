"""Concurrent writers on real connections: the trail replays to exactly the committed state.

Every loop is bounded in count and in time; threads share nothing but the server.  Errors a
writer may see are the ones PostgreSQL's locking produces (deadlocks between transactions that
lock the same rows in different orders) and, for the ORM's select-then-insert ``merge``, a
unique violation against a concurrent insert, or its StaleDataError when a concurrent delete
removed the row it had just read; anything else fails the test.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, registry
from sqlalchemy.orm.exc import StaleDataError

from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, install_audit_triggers, set_session_vars

WRITERS = 8
KEYS = 16
TRANSACTIONS_PER_WRITER = 40
TIME_LIMIT = 60.0
DEADLOCK, UNIQUE_VIOLATION = "40P01", "23505"
#: The ORM's own report that a row it had read was deleted before its UPDATE (read committed).
STALE = "orm-stale-data"


def declare(mode: str, metadata: sa.MetaData | None = None, **options: Any) -> sa.Table:
    return sa.Table(
        "account",
        metadata or sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("note", sa.Text),
        sa.Column("balance", sa.Integer),
        info={
            "audit.options": {
                "enabled": True,
                "mode": mode,
                "session_settings": [sa.Column("username", sa.Text)],
                **options,
            }
        },
    )


class Account:
    id: int
    note: str
    balance: int

    def __init__(self, **values: Any) -> None:
        for key, value in values.items():
            setattr(self, key, value)


@dataclass
class Outcome:
    """What one writer did: (key, note) written by committed inserts/updates, deletes per key,
    notes written by rolled-back work, and errors by SQLSTATE."""

    written: set[tuple[int, str]] = field(default_factory=set)
    deleted: Counter[int] = field(default_factory=Counter)
    rolled_back: set[str] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)
    commits: int = 0


def sqlstate(error: sa.exc.DBAPIError) -> str:
    orig = error.orig
    return str(getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None))


def writer(engine: sa.Engine, table: sa.Table, number: int, deadline: float) -> Outcome:
    rng = random.Random(number)
    outcome = Outcome()
    mapper_registry = registry()
    mapped = type(f"Account{number}", (Account,), {})
    mapper_registry.map_imperatively(mapped, table)
    for txn in range(TRANSACTIONS_PER_WRITER):
        if time.monotonic() > deadline:
            break
        written: set[tuple[int, str]] = set()
        deleted: Counter[int] = Counter()
        notes: set[str] = set()
        try:
            with Session(engine) as session, session.begin() as transaction:
                set_session_vars(session, username=f"writer-{number}")
                for step in range(rng.randint(1, 4)):
                    key, note = rng.randrange(KEYS), f"w{number}-t{txn}-s{step}"
                    notes.add(note)
                    kind = rng.choice(["insert", "update", "delete", "upsert", "savepoint"])
                    values = {"id": key, "note": note, "balance": rng.randrange(1000)}
                    if kind == "insert":
                        hit = session.execute(
                            insert(table)
                            .values(**values)
                            .on_conflict_do_nothing()
                            .returning(table.c.id)
                        ).first()
                        if hit:
                            written.add((key, note))
                    elif kind == "upsert":
                        statement = insert(table).values(**values)
                        session.execute(
                            statement.on_conflict_do_update(
                                index_elements=[table.c.id],
                                set_={"note": note, "balance": statement.excluded.balance},
                            )
                        )
                        written.add((key, note))
                    elif kind == "update":
                        hit = session.execute(
                            table.update()
                            .where(table.c.id == key)
                            .values(note=note, balance=table.c.balance + 1)
                            .returning(table.c.id)
                        ).first()
                        if hit:
                            written.add((key, note))
                    elif kind == "delete":
                        if session.execute(
                            table.delete().where(table.c.id == key).returning(table.c.id)
                        ).first():
                            deleted[key] += 1
                    else:  # an ORM unit of work inside a savepoint, mostly rolled back
                        savepoint = session.begin_nested()
                        session.merge(mapped(**values))
                        session.flush()
                        if rng.random() < 0.7:
                            savepoint.rollback()
                            outcome.rolled_back.add(note)
                            notes.discard(note)
                        else:
                            savepoint.commit()
                            written.add((key, note))
                        session.expunge_all()
                if rng.random() < 0.2:
                    transaction.rollback()
                    outcome.rolled_back |= notes
                    continue
            outcome.written |= written
            outcome.deleted.update(deleted)
            outcome.commits += 1
        except sa.exc.DBAPIError as error:
            outcome.errors[sqlstate(error)] += 1
            outcome.rolled_back |= notes
        except StaleDataError:  # merge's row was deleted between its SELECT and its UPDATE
            outcome.errors[STALE] += 1
            outcome.rolled_back |= notes
    return outcome


def run_writers(engine: sa.Engine, table: sa.Table) -> list[Outcome]:
    deadline = time.monotonic() + TIME_LIMIT
    outcomes: list[Outcome | BaseException] = [RuntimeError("writer did not finish")] * WRITERS

    def run(number: int) -> None:
        try:
            outcomes[number] = writer(engine, table, number, deadline)
        except BaseException as error:  # reported below, never swallowed
            outcomes[number] = error

    threads = [threading.Thread(target=run, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIME_LIMIT + 30)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return [o for o in outcomes if isinstance(o, Outcome)]


def replay(rows: list[Any]) -> dict[int, tuple[str, int] | None]:
    state: dict[int, tuple[str, int] | None] = {}
    for row in rows:
        state[row.id] = None if row.audit_operation == "D" else (row.note, row.balance)
    return {key: value for key, value in state.items() if value is not None}


@pytest.mark.parametrize("mode", ["statement", "row"])
def test_concurrent_writers_replay_to_the_committed_state(database_url: URL, mode: str) -> None:
    engine = sa.create_engine(database_url, pool_size=WRITERS, max_overflow=0)
    table = declare(mode)
    audit = table.info[AUDIT_TABLE_KEY]
    table.metadata.create_all(engine)
    try:
        outcomes = run_writers(engine, table)
        with engine.connect() as connection:
            rows = connection.execute(sa.select(audit).order_by(audit.c.audit_id)).all()
            final = {r.id: (r.note, r.balance) for r in connection.execute(sa.select(table))}
    finally:
        engine.dispose()
    errors = sum((o.errors for o in outcomes), Counter())
    assert set(errors) <= {DEADLOCK, UNIQUE_VIOLATION, STALE}, errors
    print(f"\n{mode}: {sum(o.commits for o in outcomes)} commits, errors {dict(errors)}")
    assert sum(o.commits for o in outcomes) >= WRITERS * TRANSACTIONS_PER_WRITER // 2
    assert replay(rows) == final
    recorded_notes = {r.note for r in rows if r.audit_operation in "IU"}
    assert not recorded_notes & set().union(*(o.rolled_back for o in outcomes))
    assert {(r.id, r.note) for r in rows if r.audit_operation in "IU"} == set().union(
        *(o.written for o in outcomes)
    )
    deletes = Counter(r.id for r in rows if r.audit_operation == "D")
    assert deletes == sum((o.deleted for o in outcomes), Counter())
    assert {r.audit_username for r in rows} <= {f"writer-{n}" for n in range(WRITERS)}


def test_trigger_replace_under_eight_writers_loses_no_write(database_url: URL) -> None:
    """An Alembic-style upgrade (audit column added, function and triggers replaced with a
    changed spec) and repeated replaces between the two specs, while 8 writers insert."""
    url = database_url.set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url, pool_size=WRITERS + 1, max_overflow=0)
    old = declare("statement")
    new_spec_table = declare(  # the same table; the new spec records two more columns
        "statement",
        session_settings=[sa.Column("username", sa.Text), sa.Column("tenant", sa.Text)],
        capture=["transaction_id"],
    )
    audit = new_spec_table.info[AUDIT_TABLE_KEY]
    old.metadata.create_all(engine)
    stop = threading.Event()
    deadline = time.monotonic() + TIME_LIMIT
    committed: list[list[int]] = [[] for _ in range(WRITERS)]
    failures: list[Counter[str]] = [Counter() for _ in range(WRITERS)]
    crashed: list[BaseException] = []

    def write(number: int) -> None:
        try:
            for i in range(2000):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                key = number * 100_000 + i
                try:
                    with engine.begin() as connection:
                        set_session_vars(connection, username=f"w{number}", tenant="t")
                        connection.execute(old.insert().values(id=key, note="n", balance=i))
                    committed[number].append(key)
                except sa.exc.DBAPIError as error:
                    failures[number][sqlstate(error)] += 1
        except BaseException as error:
            crashed.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    replaced, migrator_deadlocks = 0, 0
    try:
        time.sleep(0.3)
        for round_ in range(12):
            if time.monotonic() > deadline - 5:
                break
            target = new_spec_table if round_ % 2 == 0 else old
            for _attempt in range(5):
                try:
                    with engine.begin() as connection:
                        if round_ == 0:  # the upgrade's table operations, then the replace
                            connection.execute(
                                sa.text(
                                    "ALTER TABLE account_audit ADD COLUMN audit_tenant text,"
                                    " ADD COLUMN audit_transaction_id bigint"
                                )
                            )
                        install_audit_triggers(target.metadata, connection)
                    replaced += 1
                    break
                except sa.exc.DBAPIError as error:
                    if sqlstate(error) != DEADLOCK:
                        raise
                    migrator_deadlocks += 1
            time.sleep(0.1)
        # Finish on the new spec, then let every writer write under it.
        with engine.begin() as connection:
            install_audit_triggers(new_spec_table.metadata, connection)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(TIME_LIMIT)
    try:
        assert not crashed, crashed
        with engine.connect() as connection:
            rows = connection.execute(sa.select(audit).order_by(audit.c.audit_id)).all()
            stored = set(connection.execute(sa.select(old.c.id)).scalars())
    finally:
        engine.dispose()
    errors = sum(failures, Counter())
    assert set(errors) <= {DEADLOCK}, errors
    writes = {key for keys in committed for key in keys}
    assert replaced >= 6
    assert stored == writes
    assert Counter(r.id for r in rows) == Counter(writes)  # exactly one audit row per write
    assert {r.audit_operation for r in rows} == {"I"}
    under_new = [r for r in rows if r.audit_transaction_id is not None]
    assert under_new and {r.audit_tenant for r in under_new} == {"t"}
    assert rows[-1].audit_transaction_id is not None  # the last writes ran under the new spec
    print(
        f"\nreplace under load: {replaced} replaces, {migrator_deadlocks} migrator deadlocks,"
        f" {len(writes)} writes, writer errors {dict(errors)}"
    )


def test_asyncpg_writers_are_audited(database_url: URL) -> None:
    """The third driver: 8 concurrent asyncpg connections, settings sent with
    ``aset_session_vars``, every committed write audited with its own settings."""
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    from sqlalchemy_postgresql_audit import aset_session_vars

    table = declare("statement")
    audit = table.info[AUDIT_TABLE_KEY]
    sync = sa.create_engine(database_url)
    table.metadata.create_all(sync)

    async def scenario() -> None:
        engine = create_async_engine(
            database_url.set(drivername="postgresql+asyncpg"), pool_size=WRITERS
        )

        async def one(number: int) -> None:
            for i in range(25):
                async with engine.begin() as connection:
                    await aset_session_vars(connection, username=f"a{number}")
                    await connection.execute(
                        table.insert().values(id=number * 1000 + i, note="x", balance=i)
                    )

        try:
            await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(WRITERS))), 60)
        finally:
            await engine.dispose()

    asyncio.run(scenario())
    with sync.connect() as connection:
        rows = connection.execute(sa.select(audit.c.id, audit.c.audit_username)).all()
    sync.dispose()
    assert sorted(rows) == sorted(
        (n * 1000 + i, f"a{n}") for n in range(WRITERS) for i in range(25)
    )
