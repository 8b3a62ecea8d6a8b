"""What the triggers record, on a real server, through psycopg2 and psycopg 3."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, set_session_vars

MODES = ("statement", "row")


def declare(
    mode: str, *, schema: str | None = None, name: str = "account", **options: Any
) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(40), nullable=False),
        sa.Column("balance", sa.Numeric(12, 2)),
        schema=schema,
        info={"audit.options": {"enabled": True, "mode": mode, **options}},
    )


def history(connection: sa.Connection, table: sa.Table) -> list[sa.Row[Any]]:
    audit_table = table.info[AUDIT_TABLE_KEY]
    return list(connection.execute(sa.select(audit_table).order_by(audit_table.c.audit_id)))


@pytest.mark.parametrize("mode", MODES)
def test_insert_update_delete_are_recorded_in_order(
    any_driver_engine: sa.Engine, mode: str
) -> None:
    table = declare(mode)
    table.metadata.create_all(any_driver_engine)
    with any_driver_engine.begin() as connection:
        connection.execute(
            table.insert(),
            [{"id": 1, "owner": "ann", "balance": 10}, {"id": 2, "owner": "bob", "balance": None}],
        )
        connection.execute(table.update().where(table.c.id == 1).values(balance=25))
        connection.execute(table.delete().where(table.c.id == 2))
    with any_driver_engine.connect() as connection:
        rows = history(connection, table)
        user = connection.execute(sa.text("SELECT current_user")).scalar_one()
    assert [(r.audit_operation, r.id, r.owner, r.balance) for r in rows] == [
        ("I", 1, "ann", 10),
        ("I", 2, "bob", None),
        ("U", 1, "ann", 25),
        ("D", 2, "bob", None),
    ]
    assert {r.audit_current_user for r in rows} == {user}
    stamps = [r.audit_operation_timestamp for r in rows]
    assert stamps == sorted(stamps)  # when each change was written
    assert all(stamp.tzinfo is not None for stamp in stamps)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert all(abs(stamp - now) < datetime.timedelta(minutes=5) for stamp in stamps)


@pytest.mark.parametrize("mode", MODES)
def test_each_changed_row_gives_one_audit_row_and_no_change_gives_none(
    engine: sa.Engine, mode: str
) -> None:
    table = declare(mode)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": i, "owner": f"o{i}"} for i in range(1, 501)])
        connection.execute(table.update().where(table.c.id > 1000).values(balance=1))
        connection.execute(table.update().where(table.c.id <= 100).values(balance=1))
    with engine.connect() as connection:
        operation = table.info[AUDIT_TABLE_KEY].c.audit_operation
        counts = dict(
            connection.execute(sa.select(operation, sa.func.count()).group_by(operation)).all()
        )
    assert counts == {"I": 500, "U": 100}


@pytest.mark.parametrize("mode", MODES)
def test_session_settings_are_recorded_and_end_with_the_transaction(
    any_driver_engine: sa.Engine, mode: str
) -> None:
    settings = [
        sa.Column("username", sa.String),
        sa.Column("request_id", sa.UUID),
        sa.Column("tenant", sa.Integer),
    ]
    table = declare(mode, session_settings=settings)
    table.metadata.create_all(any_driver_engine)
    request_id = uuid.uuid4()
    with any_driver_engine.connect() as connection:  # one connection reused across transactions
        with connection.begin():
            set_session_vars(
                connection,
                username="o'brien; DROP TABLE account; --%s",
                request_id=request_id,
                tenant=7,
            )
            connection.execute(table.insert().values(id=1, owner="ann"))
        with connection.begin():
            connection.execute(table.insert().values(id=2, owner="bob"))  # settings were reset
        with connection.begin():
            set_session_vars(connection, username=None, tenant="")
            connection.execute(table.insert().values(id=3, owner="cy"))
        rows = history(connection, table)
    assert [(r.audit_username, r.audit_request_id, r.audit_tenant) for r in rows] == [
        ("o'brien; DROP TABLE account; --%s", request_id, 7),
        (None, None, None),
        (None, None, None),
    ]


def test_settings_work_through_an_orm_session(any_driver_engine: sa.Engine) -> None:
    table = declare(
        "statement", session_settings=[sa.Column("username", sa.String, nullable=False)]
    )
    table.metadata.create_all(any_driver_engine)
    with Session(any_driver_engine) as session, session.begin():
        set_session_vars(session, username="ann")
        session.execute(table.insert().values(id=1, owner="ann"))
    with any_driver_engine.connect() as connection:
        assert [r.audit_username for r in history(connection, table)] == ["ann"]


@pytest.mark.parametrize("mode", MODES)
def test_missing_required_setting_fails_the_write(any_driver_engine: sa.Engine, mode: str) -> None:
    table = declare(mode, session_settings=[sa.Column("username", sa.String, nullable=False)])
    table.metadata.create_all(any_driver_engine)
    with any_driver_engine.connect() as connection:
        for attempt in range(2):  # a fresh connection, then the same one reused
            with pytest.raises(sa.exc.IntegrityError) as caught, connection.begin():
                connection.execute(table.insert().values(id=attempt, owner="ann"))
            message = str(caught.value)
            assert "audit.username" in message
            assert "account" in message
        with connection.begin():
            set_session_vars(connection, username="ann")
            connection.execute(table.insert().values(id=9, owner="ann"))
        with connection.begin():  # a statement that changes nothing needs no setting
            connection.execute(table.update().where(table.c.id == -1).values(owner="x"))
        assert connection.execute(sa.select(table.c.id)).scalars().all() == [9]
        assert [r.id for r in history(connection, table)] == [9]


def test_set_session_vars_rejects_bad_names_before_sending_sql(engine: sa.Engine) -> None:
    sent: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    with engine.connect() as connection:
        with pytest.raises(ValueError, match="invalid audit setting name"):
            set_session_vars(connection, **{"user'; DROP TABLE x; --": "v"})
        with pytest.raises(ValueError, match="invalid audit setting name"):
            set_session_vars(connection, **{"a.b": "v"})
    assert sent == []


def test_set_session_vars_sends_values_as_bound_parameters(engine: sa.Engine) -> None:
    sent: list[tuple[str, Any]] = []
    sa.event.listen(
        engine,
        "before_cursor_execute",
        lambda c, cur, stmt, params, *a: sent.append((stmt, params)),
    )
    with engine.connect() as connection, connection.begin():
        set_session_vars(connection, username="x'); DROP TABLE t; --")
        assert connection.execute(
            sa.text("SELECT current_setting('audit.username')")
        ).scalar_one() == ("x'); DROP TABLE t; --")
    statement, params = sent[0]
    assert "DROP" not in statement
    assert "x'); DROP TABLE t; --" in dict(params).values()


def test_legacy_timestamp_stores_zone_less_local_time(engine: sa.Engine) -> None:
    table = declare("statement", legacy_timestamp=True)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL TIME ZONE 'America/New_York'"))
        connection.execute(table.insert().values(id=1, owner="ann"))
        local_now = connection.execute(sa.text("SELECT localtimestamp")).scalar_one()
    with engine.connect() as connection:
        (row,) = history(connection, table)
    assert row.audit_operation_timestamp.tzinfo is None
    assert abs(row.audit_operation_timestamp - local_now) < datetime.timedelta(seconds=5)


@pytest.mark.parametrize("mode", MODES)
def test_awkward_identifiers_and_values(any_driver_engine: sa.Engine, mode: str) -> None:
    metadata = sa.MetaData()
    table = sa.Table(
        "Order Items",
        metadata,
        sa.Column("select", sa.Integer, primary_key=True),
        sa.Column('a"b', sa.Text),
        sa.Column("CamelCase", sa.Text),
        sa.Column("$audit$", sa.Text),
        sa.Column("50%", sa.Text),
        schema="Sales Dept",
        info={
            "audit.options": {
                "enabled": True,
                "mode": mode,
                "session_settings": [sa.Column("User", sa.Text, nullable=False)],
            }
        },
    )
    with any_driver_engine.begin() as connection:
        connection.execute(sa.schema.CreateSchema("Sales Dept"))
    metadata.create_all(any_driver_engine)
    value = 'it\'s \\ 50% $audit$ "quoted" ; DROP TABLE x'
    with any_driver_engine.begin() as connection:
        set_session_vars(connection, User=value)
        connection.execute(
            table.insert().values(
                {"select": 1, 'a"b': value, "CamelCase": value, "$audit$": value, "50%": value}
            )
        )
        connection.execute(table.delete())
    with any_driver_engine.connect() as connection:
        rows = history(connection, table)
    assert [r.audit_operation for r in rows] == ["I", "D"]
    for row in rows:
        assert row._mapping["audit_user"] == value
        assert [row._mapping[c] for c in ('a"b', "CamelCase", "$audit$", "50%")] == [value] * 4


def test_update_changing_the_primary_key_is_recorded_with_the_new_key(engine: sa.Engine) -> None:
    """The old key gets a ``K`` row (its row moved away), then the new key its ``U`` row."""
    table = declare("statement")
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, owner="ann"))
        connection.execute(table.update().values(id=2))
    with engine.connect() as connection:
        assert [(r.audit_operation, r.id) for r in history(connection, table)] == [
            ("I", 1),
            ("K", 1),
            ("U", 2),
        ]


def test_rolled_back_writes_leave_no_audit_rows(engine: sa.Engine) -> None:
    table = declare("statement")
    table.metadata.create_all(engine)
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(table.insert().values(id=1, owner="ann"))
        transaction.rollback()
        assert history(connection, table) == []


def test_operations_subset_installs_only_those_triggers(engine: sa.Engine) -> None:
    table = declare("statement", operations=["delete"])
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, owner="ann"))
        connection.execute(table.update().values(owner="bob"))
        connection.execute(table.delete())
    with engine.connect() as connection:
        assert [(r.audit_operation, r.owner) for r in history(connection, table)] == [("D", "bob")]


def test_async_connections_and_sessions(database_url: Any) -> None:
    import asyncio

    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from sqlalchemy_postgresql_audit import aset_session_vars

    table = declare(
        "statement", session_settings=[sa.Column("username", sa.String, nullable=False)]
    )
    sync_engine = sa.create_engine(database_url)
    table.metadata.create_all(sync_engine)

    async def scenario() -> None:
        engine = create_async_engine(database_url.set(drivername="postgresql+psycopg"))
        async with engine.begin() as connection:
            with pytest.raises(TypeError, match="aset_session_vars"):
                set_session_vars(connection, username="wrong")  # type: ignore[arg-type]
            await aset_session_vars(connection, username="core")
            await connection.execute(table.insert().values(id=1, owner="a"))
        async with AsyncSession(engine) as session, session.begin():
            await aset_session_vars(session, username="orm")
            await session.execute(table.insert().values(id=2, owner="b"))
        await engine.dispose()

    asyncio.run(scenario())
    with sync_engine.connect() as connection:
        assert [r.audit_username for r in history(connection, table)] == ["core", "orm"]
    sync_engine.dispose()
