"""Least privilege with change-data-capture tables: writers may add context rows, and only the
server says who wrote them; nobody but the owner and the consumer touches the context and
progress tables."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from cdc_decoder_setup import drop_slot
from sqlalchemy_postgresql_audit import audit_context, install_audit_triggers
from sqlalchemy_postgresql_audit.cdc import Consumer
from sqlalchemy_postgresql_audit.install.grants import grant_least_privilege

_TABLE_RIGHTS = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def _models() -> tuple[sa.MetaData, sa.Table, sa.Table]:
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdcp_{uuid.uuid4().hex[:12]}"})
    settings = {"session_settings": [sa.Column("username", sa.Text)]}
    ledger = sa.Table(
        "ledger",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={"audit.options": {"enabled": True, "mode": "cdc", **settings}},
    )
    trig = sa.Table(
        "trig",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={"audit.options": {"enabled": True, **settings}},
    )
    return metadata, ledger, trig


@pytest.fixture
def installed(logical_database_url: URL) -> Iterator[tuple[sa.Engine, sa.MetaData]]:
    engine = sa.create_engine(logical_database_url)
    metadata, _, _ = _models()
    metadata.create_all(engine)
    yield engine, metadata
    drop_slot(engine, metadata)
    engine.dispose()


def _rights(connection: sa.Connection, role: str, table: str) -> set[str]:
    held = set()
    for right in _TABLE_RIGHTS:
        if connection.execute(
            sa.text("SELECT has_table_privilege(:r, :t, :p)"), {"r": role, "t": table, "p": right}
        ).scalar():
            held.add(right)
    for column in ("id", "xact", "settings", "writer"):
        for right in ("SELECT", "INSERT", "UPDATE"):
            if (
                table == "audit_cdc_context"
                and connection.execute(
                    sa.text("SELECT has_column_privilege(:r, :t, :c, :p)"),
                    {"r": role, "t": table, "c": column, "p": right},
                ).scalar()
            ):
                held.add(f"{right} ({column})")
    return held


def test_least_privilege_with_a_cdc_table_lets_writers_insert_only_context(
    installed: tuple[sa.Engine, sa.MetaData],
    logical_database_url: URL,
    make_role: Callable[[str], str],
) -> None:
    engine, metadata = installed
    writer, reader = make_role("cdc_writer"), make_role("cdc_reader")
    Consumer(engine, metadata=metadata, timeout=60).run_once()  # makes the progress table
    with engine.begin() as connection:  # a hostile pre-state: default privileges to everyone
        for table in ("audit_cdc_context", "audit_cdc_progress"):
            connection.exec_driver_sql(f"GRANT ALL ON {table} TO PUBLIC")
    grant_least_privilege(engine, metadata, writers=[writer], readers=[reader])
    grant_least_privilege(engine, metadata, writers=[writer], readers=[reader])  # idempotent
    with engine.connect() as connection:
        assert _rights(connection, writer, "audit_cdc_context") == {"INSERT (settings)"}
        assert _rights(connection, reader, "audit_cdc_context") == set()
        assert _rights(connection, writer, "audit_cdc_progress") == set()
        assert _rights(connection, reader, "audit_cdc_progress") == set()
    as_writer = sa.create_engine(logical_database_url.set(username=writer))
    try:
        with audit_context(username="alice"), as_writer.begin() as connection:
            connection.exec_driver_sql("INSERT INTO ledger (id) VALUES (1)")
            connection.exec_driver_sql("INSERT INTO trig (id) VALUES (1)")
        forged = """INSERT INTO audit_cdc_context (settings, writer)
                    VALUES ('{"username": "bob"}', 'postgres')"""
        with (
            pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
            as_writer.begin() as connection,
        ):
            connection.exec_driver_sql(forged)
    finally:
        as_writer.dispose()
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT writer, settings FROM audit_cdc_context").all()
        trig_user = connection.exec_driver_sql("SELECT audit_username FROM trig_audit").scalar()
    assert [tuple(row) for row in rows] == [(writer, {"username": "alice"})]
    assert trig_user == "alice"


def test_install_gives_an_older_context_table_its_writer_column(
    installed: tuple[sa.Engine, sa.MetaData],
) -> None:
    engine, metadata = installed
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE audit_cdc_context DROP COLUMN writer")
        connection.exec_driver_sql("""INSERT INTO audit_cdc_context (settings) VALUES ('{}')""")
    install_audit_triggers(metadata, engine)
    install_audit_triggers(metadata, engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("""INSERT INTO audit_cdc_context (settings) VALUES ('{}')""")
        writers = connection.exec_driver_sql(
            "SELECT writer, current_user FROM audit_cdc_context ORDER BY id"
        ).all()
    assert [row[0] for row in writers] == [None, writers[0][1]]


def test_a_writer_with_replication_is_refused_by_name(
    installed: tuple[sa.Engine, sa.MetaData], make_role: Callable[[str], str]
) -> None:
    """It could advance or drop the slot, and the consumer would never see the changes."""
    engine, metadata = installed
    writer = make_role("cdc_replicator")
    with engine.begin() as connection:
        connection.exec_driver_sql(f'ALTER ROLE "{writer}" REPLICATION')
    with pytest.raises(sa.exc.DBAPIError, match=f"role .*{writer}.* REPLICATION"):
        grant_least_privilege(engine, metadata, writers=[writer])


def test_least_privilege_leaves_writers_no_right_on_the_joins_table(
    installed: tuple[sa.Engine, sa.MetaData],
    logical_database_url: URL,
    make_role: Callable[[str], str],
) -> None:
    """A join a writer could add would hold design 1's subscription, and so the whole trail."""
    engine, metadata = installed
    writer = make_role("cdc_writer")
    with engine.begin() as connection:  # a hostile pre-state: default privileges to everyone
        connection.exec_driver_sql("GRANT ALL ON audit_cdc_context_joins TO PUBLIC")
    grant_least_privilege(engine, metadata, writers=[writer])
    with engine.connect() as connection:
        assert _rights(connection, writer, "audit_cdc_context_joins") == set()
    as_writer = sa.create_engine(logical_database_url.set(username=writer))
    try:
        with (
            pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
            as_writer.begin() as connection,
        ):
            connection.exec_driver_sql(
                "INSERT INTO audit_cdc_context_joins (table_name) VALUES ('ledger')"
            )
    finally:
        as_writer.dispose()
