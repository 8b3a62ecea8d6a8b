"""A write to an audited table without its triggers fails before it reaches the server.

Each test counts what is sent (``before_cursor_execute`` on the engine): the refused write must
not be among it, and the catalog is read at most once per engine until the check passes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from legacy_05x import install_legacy
from sqlalchemy_postgresql_audit import (
    AUDIT_TABLE_KEY,
    AuditConfigurationError,
    audit_context,
    install_audit_triggers,
)
from sqlalchemy_postgresql_audit.install.runtime_check import RUNTIME_CHECK_OPTION

CATALOG_QUERY = "AS w(schema_name, table_name, legacy_trigger"  # the runtime check's own query


class Sent:
    """The statements an engine sends, split into catalog checks and everything else."""

    def __init__(self, engine: sa.Engine) -> None:
        self.statements: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    @property
    def checks(self) -> int:
        return sum(CATALOG_QUERY in s for s in self.statements)

    def writes_to(self, table: str) -> int:
        """Statements writing to ``table`` (also behind a piggybacked ``set_config``)."""
        verbs = ("INSERT INTO", "UPDATE", "DELETE FROM")
        return sum(any(f"{verb} {table}" in s for verb in verbs) for s in self.statements)


def plain_table(engine: sa.Engine, schema: str | None = None, name: str = "account") -> None:
    """What an Alembic env.py without the library creates: the table, no audit objects."""
    metadata = sa.MetaData()
    sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String),
        schema=schema,
    )
    metadata.create_all(engine)


def declared(
    schema: str | None = None, name: str = "account", *, settings: bool = True, **options: Any
) -> sa.Table:
    """The application's model of the same table, declared audited."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String),
        schema=schema,
        info={
            "audit.options": {
                "enabled": True,
                "session_settings": [sa.Column("username", sa.String)] if settings else [],
                **options,
            }
        },
    )


def audit_rows(connection: sa.Connection, table: sa.Table) -> list[tuple[Any, ...]]:
    audit_table = table.info[AUDIT_TABLE_KEY]
    query = sa.select(
        audit_table.c.audit_operation, audit_table.c.audit_username, audit_table.c.id
    ).order_by(audit_table.c.audit_id)
    return [tuple(row) for row in connection.execute(query)]


def install(engine: sa.Engine, table: sa.Table) -> None:
    """The migration the newcomer forgot: the audit table, function and triggers."""
    with engine.begin() as connection:
        table.info[AUDIT_TABLE_KEY].create(connection)
        install_audit_triggers(table.metadata, connection)


def execute(bind: sa.Engine, *statements: sa.Executable) -> None:
    with bind.begin() as connection:
        for statement in statements:
            connection.execute(statement)


@pytest.fixture
def sent(engine: sa.Engine) -> Sent:
    return Sent(engine)


def test_newcomer_write_is_refused_until_the_triggers_are_installed(
    engine: sa.Engine, sent: Sent
) -> None:
    plain_table(engine)
    account = declared()
    for attempt in (1, 2):  # asked again while it fails
        with (
            pytest.raises(AuditConfigurationError, match=r"'account'.*no enabled audit trigger"),
            audit_context(username="alice"),
        ):
            execute(engine, account.insert().values(id=attempt, owner="alice"))
        assert sent.checks == attempt
    assert sent.writes_to("account") == 0
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM account")).scalar_one() == 0

    install(engine, account)  # a migration applied while the application runs
    for row_id in (1, 2, 3):
        with audit_context(username="alice"), engine.begin() as connection:
            connection.execute(account.insert().values(id=row_id, owner="alice"))
    assert sent.checks == 3  # one more, then none once it passed
    with engine.connect() as connection:
        assert audit_rows(connection, account) == [("I", "alice", n) for n in (1, 2, 3)]


def test_orm_flush_is_refused(engine: sa.Engine, sent: Sent) -> None:
    plain_table(engine)

    class Base(orm.DeclarativeBase):
        pass

    class Account(Base):
        __table__ = declared(name="account")

    with orm.Session(engine) as session:
        session.add(Account(id=1, owner="bob"))
        with pytest.raises(AuditConfigurationError, match="'account'"):
            session.commit()
    with orm.Session(engine) as session, pytest.raises(AuditConfigurationError, match="'account'"):
        session.execute(sa.update(Account).values(owner="carol"))
    assert sent.writes_to("account") == 0


def test_writes_through_an_alias_or_nested_in_a_cte_are_refused(
    engine: sa.Engine, sent: Sent
) -> None:
    plain_table(engine)
    plain_table(engine, name="other")
    account = declared()
    other = sa.Table(
        "other",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String),
    )
    execute(engine, other.insert().values(id=7, owner="x"))
    aliased = account.alias("a")
    inserted = account.insert().values(id=1, owner="bob").returning(account.c.id).cte("w")
    moved = other.delete().returning(other.c.id, other.c.owner).cte("moved")
    writes = [
        sa.update(aliased).values(owner="carol"),
        sa.delete(aliased).where(aliased.c.id == 1),
        sa.select(inserted.c.id),
        sa.select(other.c.id).add_cte(sa.update(account).values(owner="dave").cte("u")),
        account.insert().from_select(["id", "owner"], sa.select(moved.c.id, moved.c.owner)),
    ]
    for statement in writes:
        with pytest.raises(AuditConfigurationError, match="'account'"):
            execute(engine, statement)
    assert sent.writes_to("account") == 0
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM other")).scalar_one() == 1

    install(engine, account)
    with audit_context(username="erin"):
        execute(engine, sa.select(inserted.c.id))
        execute(engine, sa.update(aliased).values(owner="frank"))
    with engine.connect() as connection:
        assert audit_rows(connection, account) == [("I", "erin", 1), ("U", "erin", 1)]


def test_one_query_covers_every_declared_table(engine: sa.Engine, sent: Sent) -> None:
    plain_table(engine, name="first")
    plain_table(engine, name="second")
    first, second = declared(name="first"), declared(name="second")
    install(engine, first)
    install(engine, second)
    with engine.begin() as connection:
        connection.execute(first.insert().values(id=1))
        connection.execute(second.insert().values(id=1))
        connection.execute(second.update().values(owner="x"))
        connection.execute(first.delete())
    assert sent.checks == 1


def test_each_operation_needs_its_enabled_trigger(engine: sa.Engine, sent: Sent) -> None:
    plain_table(engine)
    account = declared()
    install(engine, account)
    with engine.begin() as connection:
        connection.execute(
            sa.text("ALTER TABLE account DISABLE TRIGGER public_account_audit_update")
        )
    with engine.begin() as connection:
        connection.execute(account.insert().values(id=1))
        connection.execute(account.delete().where(account.c.id == 0))
    with pytest.raises(AuditConfigurationError, match="trigger for UPDATE"):
        execute(engine, account.update().values(owner="x"))
    upsert = pg_insert(account).values(id=1, owner="y")
    with pytest.raises(AuditConfigurationError, match="trigger for UPDATE"):  # upsert updates
        execute(engine, upsert.on_conflict_do_update(index_elements=["id"], set_={"owner": "y"}))
    with engine.begin() as connection:  # DO NOTHING only inserts
        connection.execute(pg_insert(account).values(id=1).on_conflict_do_nothing())
    assert not any("DO UPDATE" in s or s.startswith("UPDATE") for s in sent.statements)


def test_an_update_needs_the_key_trigger_beside_the_statement_trigger(
    engine: sa.Engine, sent: Sent
) -> None:
    """Without it, a statement-mode installation would record the update but lose its moved
    key (the ``K`` row): refused like a missing UPDATE trigger."""
    plain_table(engine)
    account = declared()
    install(engine, account)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TRIGGER public_account_audit_update_key ON account"))
    with engine.begin() as connection:
        connection.execute(account.insert().values(id=1))
    with pytest.raises(AuditConfigurationError, match="trigger for UPDATE"):
        execute(engine, account.update().values(owner="x"))
    install_audit_triggers(account.metadata, engine)
    with audit_context(username="alice"), engine.begin() as connection:
        connection.execute(account.update().values(id=2))
        assert audit_rows(connection, account)[-2:] == [("K", "alice", 1), ("U", "alice", 2)]


def test_an_operation_not_recorded_is_not_asked_for(engine: sa.Engine, sent: Sent) -> None:
    plain_table(engine)
    account = declared(operations=["INSERT"])
    install(engine, account)
    with engine.begin() as connection:
        connection.execute(account.insert().values(id=1))
        connection.execute(account.update().values(owner="x"))
        connection.execute(account.delete())
    assert sent.checks == 1


def test_schema_translate_map_checks_each_tenant(engine: sa.Engine, sent: Sent) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE SCHEMA tenant_a; CREATE SCHEMA tenant_b"))
    account = declared()
    tenant_a = engine.execution_options(schema_translate_map={None: "tenant_a"})
    tenant_b = engine.execution_options(schema_translate_map={None: "tenant_b"})
    account.metadata.create_all(tenant_a)  # audited in tenant_a
    plain_table(tenant_b)  # tenant_b forgot
    with tenant_a.begin() as connection:
        connection.execute(account.insert().values(id=1))
    with pytest.raises(AuditConfigurationError, match=r"tenant_b\.account"):
        execute(tenant_b, account.insert().values(id=1))
    with tenant_a.begin() as connection:
        connection.execute(account.insert().values(id=2))
    assert sent.checks == 2


def test_table_in_a_schema(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text('CREATE SCHEMA "Sales"'))
    plain_table(engine, schema="Sales", name="Account")
    account = declared(schema="Sales", name="Account")
    with pytest.raises(AuditConfigurationError, match=r"Sales\.Account"):
        execute(engine, account.insert().values(id=1))
    install(engine, account)
    with engine.begin() as connection:
        connection.execute(account.insert().values(id=1))


def test_an_outdated_installation_still_counts(engine: sa.Engine) -> None:
    """Installed with other options (a rolling deploy: new code before its migration)."""
    plain_table(engine)
    install(engine, declared())
    account = declared(skip_unchanged=True, capture=["transaction_id"])
    with engine.begin() as connection:
        connection.execute(account.insert().values(id=1))


def test_a_05x_installation_still_counts(engine: sa.Engine) -> None:
    """The library upgraded, the upgrade migration not applied yet: 0.5.x still records."""
    source = sa.Table(
        "account",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String),
        schema="public",
    )
    with engine.begin() as connection:
        install_legacy(connection, source, [])
    account = declared(schema="public", settings=False)
    with engine.begin() as connection:
        connection.execute(account.insert().values(id=1))
        connection.execute(account.update().values(owner="x"))
    with engine.begin() as connection:  # a trigger of another name is not the 0.5.x one
        connection.execute(
            sa.text("ALTER TRIGGER public_account_audit ON public.account RENAME TO other")
        )
    fresh = sa.create_engine(engine.url)
    try:
        with pytest.raises(AuditConfigurationError, match=r"public\.account"):
            execute(fresh, account.insert().values(id=2))
    finally:
        fresh.dispose()


def test_a_missing_table_is_left_to_the_server(engine: sa.Engine) -> None:
    account = declared(name="nowhere")
    with pytest.raises(sa.exc.ProgrammingError, match="nowhere"), engine.begin() as connection:
        connection.execute(account.insert().values(id=1))


def test_opting_out_logs_a_warning_once(
    engine: sa.Engine, sent: Sent, caplog: pytest.LogCaptureFixture
) -> None:
    plain_table(engine)
    account = declared()
    unchecked = sa.create_engine(engine.url, execution_options={RUNTIME_CHECK_OPTION: False})
    caplog.set_level(logging.WARNING, logger="sqlalchemy_postgresql_audit")
    try:
        for row_id in (1, 2):
            with unchecked.begin() as connection:
                connection.execute(account.insert().values(id=row_id))
    finally:
        unchecked.dispose()
    warnings = [r for r in caplog.records if RUNTIME_CHECK_OPTION in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert repr(unchecked) in warnings[0].getMessage()
    with pytest.raises(AuditConfigurationError):  # other engines still check
        execute(engine, account.insert().values(id=3))


def test_async_engine(asyncpg_url: URL, engine: sa.Engine) -> None:
    plain_table(engine)
    account = declared()

    async def write(row_id: int) -> None:
        async_engine = create_async_engine(asyncpg_url)
        try:
            async with async_engine.begin() as connection:
                with audit_context(username="dave"):
                    await connection.execute(account.insert().values(id=row_id))
        finally:
            await async_engine.dispose()

    with pytest.raises(AuditConfigurationError, match="'account'"):
        asyncio.run(write(1))
    install(engine, account)
    asyncio.run(write(2))
    with engine.connect() as connection:
        assert audit_rows(connection, account) == [("I", "dave", 2)]
