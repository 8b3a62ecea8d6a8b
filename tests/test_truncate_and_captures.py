"""TRUNCATE auditing and the opt-in capture columns, on a real server."""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, AuditConfigurationError, set_session_vars
from sqlalchemy_postgresql_audit.declare.options import CAPTURES

MODES = ("statement", "row")


def declare(mode: str, **options: Any) -> sa.Table:
    return sa.Table(
        "doc",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.Text),
        sa.Column("body", sa.JSON),
        info={"audit.options": {"enabled": True, "mode": mode, **options}},
    )


def history(engine: sa.Engine, table: sa.Table) -> list[Any]:
    audit_table = table.info[AUDIT_TABLE_KEY]
    with engine.connect() as connection:
        return list(connection.execute(sa.select(audit_table).order_by(audit_table.c.audit_id)))


@pytest.mark.parametrize("mode", MODES)
def test_truncate_writes_one_marker_row_by_default(engine: sa.Engine, mode: str) -> None:
    table = declare(mode, session_settings=[sa.Column("username", sa.Text, nullable=False)])
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        set_session_vars(connection, username="ann")
        connection.execute(table.insert(), [{"id": 1, "title": "a"}, {"id": 2, "title": "b"}])
        connection.execute(sa.text("TRUNCATE doc"))
    rows = history(engine, table)
    assert [(r.audit_operation, r.id, r.title, r.audit_username) for r in rows] == [
        ("I", 1, "a", "ann"),
        ("I", 2, "b", "ann"),
        ("T", None, None, "ann"),
    ]
    with (
        pytest.raises(sa.exc.IntegrityError, match=r"audit\.username"),
        engine.begin() as connection,
    ):
        connection.execute(sa.text("TRUNCATE doc"))  # required setting missing


@pytest.mark.parametrize("mode", MODES)
def test_truncate_rows_records_every_removed_row(engine: sa.Engine, mode: str) -> None:
    table = declare(mode, truncate_rows=True)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "title": "a"}, {"id": 2, "title": "b"}])
        connection.execute(sa.text("TRUNCATE doc"))
    assert sorted((r.audit_operation, r.id, r.title) for r in history(engine, table)) == [
        ("I", 1, "a"),
        ("I", 2, "b"),
        ("T", 1, "a"),
        ("T", 2, "b"),
    ]


def test_truncate_can_be_left_out(engine: sa.Engine) -> None:
    table = declare("statement", operations=["INSERT"])
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1))
        connection.execute(sa.text("TRUNCATE doc"))
    assert [r.audit_operation for r in history(engine, table)] == ["I"]


@pytest.mark.parametrize("mode", MODES)
def test_capture_columns_record_the_writer_and_the_change(
    any_driver_engine: sa.Engine, mode: str
) -> None:
    engine = any_driver_engine
    table = declare(mode, capture=list(CAPTURES))
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL application_name = 'billing-worker'"))
        xid = connection.execute(sa.text("SELECT pg_current_xact_id()::text::bigint")).scalar_one()
        session_user = connection.execute(sa.text("SELECT session_user")).scalar_one()
        client_addr = connection.execute(sa.text("SELECT inet_client_addr()")).scalar_one()
        connection.execute(
            table.insert(),
            [{"id": 1, "title": "a", "body": {"k": 1}}, {"id": 2, "title": "b", "body": None}],
        )
        connection.execute(table.update().where(table.c.id == 1).values(title="a2", body={"k": 2}))
        connection.execute(table.update().where(table.c.id == 2).values(title="b"))  # no change
        connection.execute(table.update().where(table.c.id == 2).values(id=3))  # key change
        connection.execute(table.delete().where(table.c.id == 3))
    rows = history(engine, table)
    assert [(r.audit_operation, r.id) for r in rows] == [
        ("I", 1),
        ("I", 2),
        ("U", 1),
        ("U", 2),
        ("K", 2),  # the old key's row moved away
        ("U", 3),
        ("D", 3),
    ]
    assert {r.audit_transaction_id for r in rows} == {xid}
    assert {r.audit_session_user for r in rows} == {session_user}
    assert {r.audit_application_name for r in rows} == {"billing-worker"}
    for r in rows:
        assert r.audit_operation_timestamp >= r.audit_statement_timestamp  # written in it
        assert r.audit_clock_timestamp >= r.audit_operation_timestamp
    # The capture is the address this very connection has: NULL over a Unix socket (the
    # embedded server), the loopback address over TCP (CI's PostgreSQL 15 on 127.0.0.1).
    socket = engine.url.query.get("host", engine.url.host or "/")
    if str(socket).startswith("/"):
        assert client_addr is None
        assert {r.audit_client_addr for r in rows} == {None}
    else:
        assert str(client_addr) in {"127.0.0.1", "::1"}
        assert ipaddress.ip_address(str(client_addr)).is_loopback
        assert {str(r.audit_client_addr) for r in rows} == {str(client_addr)}
    statement_times = [r.audit_statement_timestamp for r in rows]
    assert statement_times == sorted(statement_times)
    assert isinstance(statement_times[0], datetime.datetime)
    changed = [r.audit_changed_columns for r in rows]
    assert changed[:3] == [None, None, ["title", "body"]]
    assert changed[3] == []  # an update that changed nothing is recorded with no changed column
    # A key change: row mode sees OLD and NEW together; statement mode cannot pair the rows.
    assert changed[4] is None  # the K row compares with nothing
    assert changed[5] == (["id"] if mode == "row" else None)
    assert changed[6] is None


def test_changed_columns_in_statement_mode_needs_a_primary_key() -> None:
    with pytest.raises(AuditConfigurationError, match="needs a primary key") as caught:
        sa.Table(
            "keyless",
            sa.MetaData(),
            sa.Column("a", sa.Integer),
            info={"audit.options": {"enabled": True, "capture": ["changed_columns"]}},
        )
    assert caught.value.key == "capture"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"capture": ["transaction_id", "xmin"]}, "capture"),
        ({"capture": "transaction_id"}, "capture"),
        ({"capture": ["session_user", "session_user"]}, "capture"),
        ({"truncate_rows": "yes"}, "truncate_rows"),
        ({"operations": ["truncate", "TRUNCATE"]}, "operations"),
    ],
)
def test_bad_capture_options_name_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(AuditConfigurationError) as caught:
        declare("statement", **options)
    assert (caught.value.table, caught.value.key) == ("doc", key)


def test_capture_column_colliding_with_a_source_column_is_an_error() -> None:
    with pytest.raises(AuditConfigurationError, match="transaction_id capture column"):
        sa.Table(
            "t",
            sa.MetaData(),
            sa.Column("audit_transaction_id", sa.Integer),
            info={"audit.options": {"enabled": True, "capture": ["transaction_id"]}},
        )


def test_exclude_columns_names_columns_by_name_not_key() -> None:
    table = sa.Table(
        "k",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("First Name", sa.Text, key="first_name"),
        info={"audit.options": {"enabled": True, "exclude_columns": ["First Name"]}},
    )
    assert "First Name" not in table.info[AUDIT_TABLE_KEY].c
    with pytest.raises(AuditConfigurationError, match="not a column"):
        sa.Table(
            "k",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("First Name", sa.Text, key="first_name"),
            info={"audit.options": {"enabled": True, "exclude_columns": ["first_name"]}},
        )
