"""set_session_vars refuses misuse before anything is written, on a real server."""

from __future__ import annotations

import asyncio
import datetime
import subprocess
import sys
import textwrap
import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, CIDR, INET, JSONB
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from sqlalchemy_postgresql_audit import (
    AUDIT_TABLE_KEY,
    AuditConfigurationError,
    AuditSettingError,
    aset_session_vars,
    set_session_vars,
)


def declare(*settings: sa.Column[Any]) -> sa.Table:
    return sa.Table(
        "ticket",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        info={"audit.options": {"enabled": True, "session_settings": list(settings)}},
    )


def history(connection: sa.Connection, table: sa.Table) -> list[sa.Row[Any]]:
    audit_table = table.info[AUDIT_TABLE_KEY]
    return list(connection.execute(sa.select(audit_table).order_by(audit_table.c.audit_id)))


@pytest.fixture
def ticket(engine: sa.Engine) -> sa.Table:
    table = declare(
        sa.Column("username", sa.String),
        sa.Column("short_code", sa.String(8)),
        sa.Column("ticket_request_id", sa.UUID),
        sa.Column("attempt", sa.SmallInteger),
        sa.Column("meta", JSONB),
        sa.Column("tags", ARRAY(sa.String)),
    )
    table.metadata.create_all(engine)
    return table


def test_an_engine_is_refused_with_what_to_pass(engine: sa.Engine, ticket: sa.Table) -> None:
    with pytest.raises(TypeError, match=r"not an Engine.*engine\.begin"):
        set_session_vars(engine, username="ann")  # type: ignore[arg-type]


def test_sync_and_async_helpers_refuse_each_others_objects(engine: sa.Engine) -> None:
    async def main() -> None:
        with engine.begin() as connection:
            with pytest.raises(TypeError, match="use set_session_vars"):
                await aset_session_vars(connection, username="ann")  # type: ignore[arg-type]
            assert connection.execute(
                sa.select(sa.func.current_setting("audit.username", True))
            ).scalar() in (None, "")

    asyncio.run(main())


def test_an_async_engine_is_refused(asyncpg_url: URL) -> None:
    async def main() -> None:
        async_engine = create_async_engine(asyncpg_url)
        try:
            with pytest.raises(TypeError, match="not an AsyncEngine"):
                await aset_session_vars(async_engine, username="ann")  # type: ignore[arg-type]
        finally:
            await async_engine.dispose()

    asyncio.run(main())


def test_an_unknown_setting_is_refused_naming_it_and_the_known_ones(
    engine: sa.Engine, ticket: sa.Table
) -> None:
    with engine.begin() as connection:
        with pytest.raises(
            AuditSettingError, match=r"'requestid'.*known settings.*'ticket_request_id'"
        ):
            set_session_vars(connection, requestid=uuid.uuid4())
        # Nothing was sent: the transaction is still usable.
        connection.execute(ticket.insert().values(id=1))
    with engine.connect() as connection:
        assert [row.id for row in history(connection, ticket)] == [1]


def test_setting_names_ignore_case(engine: sa.Engine, ticket: sa.Table) -> None:
    with engine.begin() as connection:
        set_session_vars(connection, UserName="ann")
        connection.execute(ticket.insert().values(id=1))
        assert history(connection, ticket)[0].audit_username == "ann"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ticket_request_id": "req-123"}, r"'ticket_request_id'.*not a UUID"),
        ({"ticket_request_id": 42}, r"'ticket_request_id'.*UUID"),
        ({"attempt": 40000}, r"'attempt'.*out of range"),
        ({"attempt": "two"}, r"'attempt'"),
        ({"attempt": True}, r"'attempt'"),
        ({"short_code": "far too long"}, r"'short_code'.*longer than 8"),
        ({"meta": "{not json"}, r"'meta'"),
        ({"meta": {"at": object()}}, r"'meta'"),
        ({"tags": "a,b"}, r"'tags'.*list"),
        ({"username": ["a"]}, r"'username'"),
    ],
)
def test_a_value_the_column_type_cannot_hold_fails_when_set(
    engine: sa.Engine, ticket: sa.Table, values: dict[str, object], message: str
) -> None:
    with engine.begin() as connection:
        with pytest.raises(AuditSettingError, match=message):
            set_session_vars(connection, **values)
        connection.execute(ticket.insert().values(id=1))  # nothing was sent


def test_a_value_must_fit_every_type_its_setting_has_in_one_metadata(engine: sa.Engine) -> None:
    """Settings reach every table a transaction writes: in one MetaData, every type counts."""
    metadata = sa.MetaData()
    narrow, wide = (
        sa.Table(
            name,
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            info={"audit.options": {"enabled": True, "session_settings": [setting]}},
        )
        for name, setting in (
            ("ledger_narrow", sa.Column("ledger_ref", sa.Integer)),
            ("ledger_wide", sa.Column("ledger_ref", sa.String)),
        )
    )
    metadata.create_all(engine)
    with engine.begin() as connection:
        with pytest.raises(AuditSettingError, match=r"'ledger_ref'.*every type.*INTEGER"):
            set_session_vars(connection, ledger_ref="R-7")  # the write to ledger_narrow would fail
        set_session_vars(connection, ledger_ref=7)  # fits both, and reads alike in both
        connection.execute(wide.insert().values(id=1))
        connection.execute(narrow.insert().values(id=1))
        assert history(connection, wide)[0].audit_ledger_ref == "7"
        assert history(connection, narrow)[0].audit_ledger_ref == 7
        with pytest.raises(AuditSettingError, match=r"'ledger_ref'.*store it differently"):
            set_session_vars(connection, ledger_ref=" 7")  # 7 for INTEGER, ' 7' for text


def test_separate_metadata_are_separate_models(engine: sa.Engine) -> None:
    """Another MetaData (another application's model, a test's own tables) declaring the same
    name with another type neither loosens nor tightens the check of this one."""
    numbered = declare(sa.Column("ref_code", sa.Integer))
    named = sa.Table(
        "ledger",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        info={
            "audit.options": {
                "enabled": True,
                "session_settings": [sa.Column("ref_code", sa.Text)],
            }
        },
    )
    numbered.metadata.create_all(engine)
    named.metadata.create_all(engine)
    with engine.begin() as connection:
        set_session_vars(connection, ref_code="R-7")  # the text model takes it
        connection.execute(named.insert().values(id=1))
        assert history(connection, named)[0].audit_ref_code == "R-7"
    with engine.begin() as connection, pytest.raises(AuditSettingError, match="'ref_code'"):
        set_session_vars(connection, ref_code=["R-7"])  # fits neither


def test_json_and_array_values_are_encoded_as_their_column_types(
    any_driver_engine: sa.Engine,
) -> None:
    table = declare(sa.Column("meta", JSONB), sa.Column("tags", ARRAY(sa.String)))
    table.metadata.create_all(any_driver_engine)
    meta = {"user": {"id": 7, "roles": ["a", 'q"uote']}, "ok": True, "none": None}
    tags = ["a,b", 'q"uote', "back\\slash", None, "{}", " spaced ", "NULL", ""]
    with any_driver_engine.begin() as connection:
        set_session_vars(connection, meta=meta, tags=tags)
        connection.execute(table.insert().values(id=1))
        set_session_vars(connection, meta='{"already": "json"}', tags=[["x", "y"], ["z", None]])
        connection.execute(table.insert().values(id=2))
        rows = history(connection, table)
    assert (rows[0].audit_meta, rows[0].audit_tags) == (meta, tags)
    assert (rows[1].audit_meta, rows[1].audit_tags) == (
        {"already": "json"},
        [["x", "y"], ["z", None]],
    )


def test_typed_values_round_trip(any_driver_engine: sa.Engine) -> None:
    table = declare(
        sa.Column("ticket_request_id", sa.UUID),
        sa.Column("amount", sa.Numeric(10, 2)),
        sa.Column("flag", sa.Boolean),
        sa.Column("ids", ARRAY(sa.Integer)),
        sa.Column("at", sa.DateTime(timezone=True)),
    )
    table.metadata.create_all(any_driver_engine)
    ticket_request_id = uuid.uuid4()
    with any_driver_engine.begin() as connection:
        set_session_vars(
            connection,
            ticket_request_id="{" + str(ticket_request_id).upper() + "}",
            amount="12.50",
            flag=False,
            ids=[1, 2, 3],
            at="2026-01-02T03:04:05Z",
        )
        connection.execute(table.insert().values(id=1))
        row = history(connection, table)[0]
    assert row.audit_ticket_request_id == ticket_request_id
    assert str(row.audit_amount) == "12.50"
    assert row.audit_flag is False
    assert row.audit_ids == [1, 2, 3]
    assert row.audit_at.isoformat().startswith("2026-01-02T03:04:05")


def test_autocommit_connection_is_refused(engine: sa.Engine, ticket: sa.Table) -> None:
    with (
        engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection,
        pytest.raises(AuditSettingError, match="AUTOCOMMIT"),
    ):
        set_session_vars(connection, username="ann")
    autocommit_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    with (
        Session(autocommit_engine) as session,
        pytest.raises(AuditSettingError, match="AUTOCOMMIT"),
    ):
        set_session_vars(session, username="ann")


def test_autocommit_async_session_is_refused(asyncpg_url: URL) -> None:
    declare(sa.Column("username", sa.String))

    async def main() -> None:
        async_engine = create_async_engine(asyncpg_url, isolation_level="AUTOCOMMIT")
        try:
            async with AsyncSession(async_engine) as session:
                with pytest.raises(AuditSettingError, match="AUTOCOMMIT"):
                    await aset_session_vars(session, username="ann")
        finally:
            await async_engine.dispose()

    asyncio.run(main())


def test_async_session_settings_are_recorded(asyncpg_url: URL, engine: sa.Engine) -> None:
    table = declare(sa.Column("username", sa.String), sa.Column("ticket_request_id", sa.UUID))
    table.metadata.create_all(engine)
    ticket_request_id = uuid.uuid4()

    async def main() -> None:
        async_engine = create_async_engine(asyncpg_url)
        try:
            async with AsyncSession(async_engine) as session, session.begin():
                await aset_session_vars(
                    session, username="ann", ticket_request_id=ticket_request_id
                )
                await session.execute(table.insert().values(id=1))
        finally:
            await async_engine.dispose()

    asyncio.run(main())
    with engine.connect() as connection:
        row = history(connection, table)[0]
    assert (row.audit_username, row.audit_ticket_request_id) == ("ann", ticket_request_id)


def test_settings_of_models_not_declared_yet_are_found_in_their_registry(
    engine: sa.Engine,
) -> None:
    from sqlalchemy.orm import DeclarativeBase

    from sqlalchemy_postgresql_audit.declare.declaration import declared_specs
    from sqlalchemy_postgresql_audit.listeners import _on_table_attached

    sa.event.remove(sa.Table, "after_parent_attach", _on_table_attached)  # as if lazy
    try:

        class Base(DeclarativeBase):
            pass

        class Parcel(Base):
            __tablename__ = "parcel"
            __table_args__ = {
                "info": {
                    "audit.options": {
                        "enabled": True,
                        "session_settings": [sa.Column("courier_code", sa.Integer)],
                    }
                }
            }
            id = sa.Column(sa.Integer, primary_key=True)

    finally:
        sa.event.listen(sa.Table, "after_parent_attach", _on_table_attached)
    assert not any(spec.table == "parcel" for spec in declared_specs())
    with engine.begin() as connection:
        set_session_vars(connection, courier_code=7)  # found: the registry was declared
        with pytest.raises(AuditSettingError, match="'courier_code'"):
            set_session_vars(connection, courier_code="seven")
    assert any(spec.table == "parcel" for spec in declared_specs())
    assert AUDIT_TABLE_KEY in Parcel.__table__.info


@pytest.mark.parametrize(
    ("column_type", "bits"), [(sa.SmallInteger, 16), (sa.Integer, 32), (sa.BigInteger, 64)]
)
def test_integer_settings_take_both_edges_of_their_range_and_nothing_beyond(
    engine: sa.Engine, column_type: type[sa.Integer], bits: int
) -> None:
    name = f"count_{bits}"
    table = declare(sa.Column(name, column_type))
    table.metadata.create_all(engine)
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    with engine.begin() as connection:
        for beyond in (low - 1, high + 1):
            with pytest.raises(AuditSettingError, match=rf"'{name}'.*out of range"):
                set_session_vars(connection, **{name: beyond})
        for key, edge in enumerate((low, high, str(high))):
            set_session_vars(connection, **{name: edge})
            connection.execute(table.insert().values(id=key))
        stored = [getattr(row, f"audit_{name}") for row in history(connection, table)]
    assert stored == [low, high, high]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (sa.Column("client_ip", INET), "192.168.0.1/255.255.255.0", "netmask"),
        (sa.Column("client_ip", INET), "fe80::1%eth0", "zone id"),
        (sa.Column("client_net", CIDR), "192.168.0.1/24", "bits set right of the prefix"),
        (sa.Column("client_meta", JSONB), {"score": float("nan")}, "JSON"),
        (sa.Column("client_meta", JSONB), '{"score": NaN}', "NaN"),
        (sa.Column("client_meta", JSONB), {"nul": "\x00"}, "u0000"),
        (sa.Column("client_amount", sa.Numeric(5, 2)), 1234.5, "out of range"),
        (sa.Column("client_amount", sa.Numeric(5, 2)), "1.005", "would round"),
        (sa.Column("client_score", sa.Float), "1e400", "out of range"),
        (sa.Column("client_score", sa.REAL), 1e39, "out of range"),
        (sa.Column("client_at", sa.DateTime), "2026-01-02T03:04:05+02:00", "offset"),
        (
            sa.Column("client_at", sa.DateTime),
            datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc),
            "offset",
        ),
        (
            sa.Column("client_at", sa.DateTime(timezone=True)),
            datetime.datetime(2026, 1, 2, 3, 4, 5),
            "no time zone offset",
        ),
        (sa.Column("client_at", sa.DateTime(timezone=True)), "2026-01-02T03:04:05", "no time"),
        (sa.Column("client_at", sa.Time(timezone=True)), datetime.time(3, 4, 5), "no time zone"),
        (sa.Column("client_name", sa.String), "nul\x00byte", "NUL"),
        (sa.Column("client_name", sa.String), object(), "repr"),
    ],
)
def test_a_value_postgresql_would_read_differently_is_refused_naming_the_setting(
    engine: sa.Engine, column: sa.Column[Any], value: object, message: str
) -> None:
    name = f"{column.name}_{uuid.uuid4().hex[:8]}"  # a name no other live table declares
    table = declare(sa.Column(name, column.type))
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        with pytest.raises(AuditSettingError, match=rf"'{name}'.*{message}"):
            set_session_vars(connection, **{name: value})
        connection.execute(table.insert().values(id=1))  # nothing was sent


def test_values_python_reads_leniently_are_stored_as_python_read_them(
    any_driver_engine: sa.Engine,
) -> None:
    table = declare(
        sa.Column("week_day", sa.Date),
        sa.Column("host", INET),
        sa.Column("net", CIDR),
        sa.Column("ratio", sa.Float),
        sa.Column("price", sa.Numeric(5, 2)),
        sa.Column("note", sa.String),
        sa.Column("waited", sa.Interval),
    )
    table.metadata.create_all(any_driver_engine)
    values: dict[str, object] = {
        "host": "fe80::1/64",
        "net": "192.168.0.0/24",
        "ratio": 0.1,
        "price": "999.990",
        "note": uuid.UUID(int=7),
        "waited": datetime.timedelta(days=-1, seconds=5, microseconds=7),
    }
    week_date = "2026-W01-1"  # Python 3.11 reads it; PostgreSQL does not
    try:
        week_day = datetime.date.fromisoformat(week_date)
    except ValueError:  # Python 3.10: refused at the call instead
        with any_driver_engine.begin() as connection, pytest.raises(AuditSettingError):
            set_session_vars(connection, week_day=week_date)
    else:
        values["week_day"] = week_date
    with any_driver_engine.begin() as connection:
        set_session_vars(connection, **values)
        connection.execute(table.insert().values(id=1))
        row = history(connection, table)[0]
    if "week_day" in values:
        assert row.audit_week_day == week_day == datetime.date(2025, 12, 29)
    assert str(row.audit_host) == "fe80::1/64"
    assert str(row.audit_net) == "192.168.0.0/24"
    assert row.audit_ratio == 0.1
    assert row.audit_price == Decimal("999.99")
    assert row.audit_note == str(uuid.UUID(int=7))
    assert row.audit_waited == datetime.timedelta(days=-1, seconds=5, microseconds=7)


def test_names_are_checked_when_the_audited_tables_declare_no_settings() -> None:
    """Only when no audited table is known at all are names left unchecked (a fresh process:
    this one has declared settings in other test modules)."""
    script = textwrap.dedent(
        """
        import sqlalchemy as sa
        import sqlalchemy_postgresql_audit as audit

        audit.audit_context(anything="goes")  # no audited table known yet: unchecked
        audit.enable()
        metadata = sa.MetaData()
        sa.Table("audited", metadata, sa.Column("id", sa.Integer, primary_key=True),
                 info={"audit.options": {"enabled": True}})  # declares no settings
        try:
            audit.audit_context(usernme="alice")
        except audit.AuditSettingError as error:
            print(error)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert "unknown audit setting(s) ['usernme']" in result.stdout
    assert "known settings: []" in result.stdout


@pytest.mark.parametrize(
    "setting_type",
    [
        sa.Enum("admin", "clerk", name="role"),
        ARRAY(sa.Enum("admin", "clerk", name="role")),
    ],
    ids=["enum", "array of enum"],
)
def test_an_enum_setting_without_schema_is_refused_at_declaration(
    engine: sa.Engine, setting_type: sa.types.TypeEngine[Any]
) -> None:
    with pytest.raises(AuditConfigurationError, match=r"'ticket'.*'acting_role'.*'role'.*schema"):
        declare(sa.Column("acting_role", setting_type))
    table = declare(
        sa.Column("acting_role", sa.Enum("admin", "clerk", name="role", schema="public"))
    )
    table.metadata.create_all(engine)  # the qualified type is what the function reads
    with engine.begin() as connection:
        set_session_vars(connection, acting_role="clerk")
        connection.execute(table.insert().values(id=1))
        assert history(connection, table)[0].audit_acting_role == "clerk"
