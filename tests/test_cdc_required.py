"""A required session setting on a CDC table: the library refuses a write without it before the
statement is sent, with the error trigger mode gives, since no trigger can refuse it on the
server and the consumer sees the change only after it committed."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from cdc_decoder_setup import drop_slot
from sqlalchemy_postgresql_audit import (
    AuditSettingError,
    aset_session_vars,
    audit_context,
    default_context,
    set_session_vars,
)
from sqlalchemy_postgresql_audit.cdc import Consumer
from sqlalchemy_postgresql_audit.declare.declaration import _DECLARED


@pytest.fixture(autouse=True)
def forget_declarations() -> Iterator[None]:
    """The CDC tables declared here must not outlive their test (they send context rows)."""
    before = set(_DECLARED)
    yield
    for table in set(_DECLARED) - before:
        _DECLARED.discard(table)
    gc.collect()


def _ledger(**options: object) -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData(naming_convention={"audit.slot": f"req_{uuid.uuid4().hex[:12]}"})
    ledger = sa.Table(
        "ledger",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("amount", sa.Integer),
        info={
            "audit.options": {
                "enabled": True,
                "mode": "cdc",
                "session_settings": [
                    sa.Column("username", sa.Text, nullable=False),
                    sa.Column("reason", sa.Text),
                ],
                **options,
            }
        },
    )
    return metadata, ledger


@pytest.fixture(params=["psycopg2", "psycopg"])
def source(logical_database_url: URL, request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    engine = sa.create_engine(logical_database_url.set(drivername=f"postgresql+{request.param}"))
    yield engine
    engine.dispose()


@pytest.fixture
def ledger(source: sa.Engine) -> Iterator[sa.Table]:
    metadata, table = _ledger()
    metadata.create_all(source)
    with source.begin() as connection:
        set_session_vars(connection, username="setup")
        connection.execute(table.insert().values(id=1, amount=1))
    yield table
    drop_slot(source, metadata)


def _rows(engine: sa.Engine) -> list[tuple[int, int]]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.exec_driver_sql("SELECT * FROM ledger ORDER BY id")]  # type: ignore[misc]


def _writes(table: sa.Table) -> dict[str, Callable[[sa.Connection], object]]:
    alias = table.alias("l")
    return {
        "insert": lambda c: c.execute(table.insert().values(id=2, amount=2)),
        "update": lambda c: c.execute(table.update().values(amount=5)),
        "delete": lambda c: c.execute(table.delete()),
        "upsert": lambda c: c.execute(
            pg_insert(table)
            .values(id=1, amount=9)
            .on_conflict_do_update(index_elements=["id"], set_={"amount": 9})
        ),
        "alias": lambda c: c.execute(sa.update(alias).values(amount=6)),
        "cte": lambda c: c.execute(
            sa.select(sa.literal(1)).add_cte(table.update().values(amount=7).cte("moved"))
        ),
        "orm": lambda c: _orm_insert(c, table),
    }


def _orm_insert(connection: sa.Connection, table: sa.Table) -> None:
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    session.execute(sa.insert(table), [{"id": 3, "amount": 3}])
    session.flush()


WRITES = ["insert", "update", "delete", "upsert", "alias", "cte", "orm"]


@pytest.mark.parametrize("write", WRITES)
def test_a_write_without_the_required_setting_is_refused_before_it_is_sent(
    source: sa.Engine, ledger: sa.Table, write: str
) -> None:
    with audit_context(reason="no user"), source.begin() as connection:
        with pytest.raises(AuditSettingError) as refused:
            _writes(ledger)[write](connection)
        assert "audit.username is required to write to table ledger" in str(refused.value)
        assert "mode='cdc'" in str(refused.value)
        # refused before anything was sent: the transaction is still usable
        assert connection.exec_driver_sql("SELECT count(*) FROM audit_cdc_context").scalar() == 1
    assert _rows(source) == [(1, 1)]


@pytest.mark.parametrize("write", WRITES)
def test_a_write_with_the_required_setting_goes_through(
    source: sa.Engine, ledger: sa.Table, write: str
) -> None:
    with audit_context(username="alice"), source.begin() as connection:
        _writes(ledger)[write](connection)


def test_every_way_of_setting_it_counts_and_the_consumer_records_it(
    source: sa.Engine, ledger: sa.Table
) -> None:
    with audit_context(username="alice"), source.begin() as connection:
        connection.execute(ledger.update().values(amount=2))
    with source.begin() as connection:
        set_session_vars(connection, username="bob")
        connection.execute(ledger.update().values(amount=3))
    default_context(username="worker")
    try:
        with source.begin() as connection:
            connection.execute(ledger.update().values(amount=4))
    finally:
        default_context()
    with Session(source) as session, audit_context(username="carol"):
        session.execute(ledger.update().values(amount=5))
        session.commit()
    metadata = ledger.metadata
    assert Consumer(source, metadata=metadata, timeout=60).run_once() == 5
    with source.connect() as connection:
        trail = connection.exec_driver_sql(
            "SELECT audit_operation, amount, audit_username FROM ledger_audit ORDER BY audit_id"
        ).all()
    assert [tuple(r) for r in trail] == [
        ("I", 1, "setup"),
        ("U", 2, "alice"),
        ("U", 3, "bob"),
        ("U", 4, "worker"),
        ("U", 5, "carol"),
    ]


def test_what_the_server_no_longer_holds_does_not_count(
    source: sa.Engine, ledger: sa.Table
) -> None:
    """A value reset to NULL, undone by a rolled back savepoint, or set in an earlier
    transaction is missing, as the trigger would find it."""
    update = ledger.update().values(amount=2)
    with source.begin() as connection:
        set_session_vars(connection, username="bob")
    # an earlier transaction's value is gone
    with source.begin() as connection, pytest.raises(AuditSettingError):
        connection.execute(update)
    with source.begin() as connection:
        savepoint = connection.begin_nested()
        set_session_vars(connection, username="bob")
        savepoint.rollback()
        with pytest.raises(AuditSettingError):
            connection.execute(update)
        set_session_vars(connection, username=None)
        with pytest.raises(AuditSettingError):
            connection.execute(update)
        set_session_vars(connection, username="bob")
        # the context sends NULL over bob
        with audit_context(username=None), pytest.raises(AuditSettingError):
            connection.execute(update)
        with audit_context(username="alice"):
            connection.execute(update)
    with source.begin() as connection:
        savepoint = connection.begin_nested()
        set_session_vars(connection, username="bob")
        savepoint.commit()
        connection.execute(update)  # a released savepoint keeps it


def test_operations_not_recorded_and_the_opt_out_are_not_refused(source: sa.Engine) -> None:
    metadata, ledger = _ledger(operations=["insert"])
    metadata.create_all(source)
    try:
        with source.begin() as connection:
            with pytest.raises(AuditSettingError):
                connection.execute(ledger.insert().values(id=1, amount=1))
            connection.execute(ledger.delete())  # DELETE is not recorded: not required
            opted_out = connection.execution_options(audit_runtime_check=False)
            opted_out.execute(ledger.insert().values(id=1, amount=1))
    finally:
        drop_slot(source, metadata)
    assert _rows(source) == [(1, 1)]


def test_textual_sql_is_not_refused(source: sa.Engine, ledger: sa.Table) -> None:
    """Documented limit: textual SQL is not parsed, so it is not tied to the table."""
    with source.begin() as connection:
        connection.exec_driver_sql("UPDATE ledger SET amount = 8")
    assert _rows(source) == [(1, 8)]


def test_aset_session_vars_counts_on_async_connections_and_sessions(
    logical_database_url: URL,
) -> None:
    metadata, ledger = _ledger()
    sync = sa.create_engine(logical_database_url)
    metadata.create_all(sync)
    url = logical_database_url.set(drivername="postgresql+asyncpg")

    async def main() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                with pytest.raises(AuditSettingError, match=r"audit\.username is required"):
                    await connection.execute(ledger.insert().values(id=1, amount=1))
                await aset_session_vars(connection, username="ann")
                await connection.execute(ledger.insert().values(id=1, amount=1))
            async with AsyncSession(engine) as session:
                await aset_session_vars(session, username="bob")
                await session.execute(ledger.update().values(amount=2))
                await session.commit()
        finally:
            await engine.dispose()

    try:
        asyncio.run(main())
    finally:
        drop_slot(sync, metadata)
        sync.dispose()
