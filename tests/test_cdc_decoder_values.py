"""What the decoder records in the less travelled cases: tables without a key, sessions whose
output settings differ from the WAL's, context values the audit column cannot hold, columns
dropped while it runs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_decoder_setup import decoder, published, set_context
from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY
from sqlalchemy_postgresql_audit.cdc.decoder import DecoderError


@pytest.fixture
def engine(logical_database_url: sa.URL) -> Any:
    engine = sa.create_engine(logical_database_url)
    yield engine
    engine.dispose()


def trail(engine: sa.Engine, table: sa.Table, *columns: str) -> list[tuple[Any, ...]]:
    audit = table.info[AUDIT_TABLE_KEY]
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(*(audit.c[n] for n in columns)).order_by(audit.c.audit_id)
        )
        return [tuple(r) for r in rows]


def test_a_table_without_a_key_gets_no_key_moved_rows(engine: sa.Engine) -> None:
    table = sa.Table(
        "nokey",
        sa.MetaData(),
        sa.Column("a", sa.Integer),
        sa.Column("b", sa.Text),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    with published(engine, table.metadata):
        with engine.begin() as connection:
            connection.execute(
                table.insert(), [{"a": 1, "b": "x"}, {"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
            )
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "UPDATE nokey SET b = 'z' WHERE ctid = (SELECT min(ctid) FROM nokey WHERE a = 1)"
            )
        decoder(engine, table.metadata).run_once()
        assert trail(engine, table, "audit_operation", "a", "b") == [
            ("I", 1, "x"),
            ("I", 1, "x"),
            ("I", 2, "y"),
            ("U", 1, "z"),
        ]


def test_old_rows_from_the_trail_read_as_the_wal_writes_them(engine: sa.Engine) -> None:
    """The database's own output settings (here: fewer float digits, bytea as escapes) apply
    to the decoder's sessions too; old rows read back from the trail must not be rounded or
    spelled differently from the WAL's values."""
    table = sa.Table(
        "measure",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Integer),
        sa.Column("x", sa.Float),
        sa.Column("raw", sa.LargeBinary),
        info={"audit.options": {"enabled": True, "mode": "cdc", "capture": ["changed_columns"]}},
    )
    with published(engine, table.metadata, "DEFAULT"):
        with engine.begin() as connection:
            name = connection.exec_driver_sql("SELECT current_database()").scalar_one()
            for setting, value in (("extra_float_digits", "0"), ("bytea_output", "escape")):
                connection.exec_driver_sql(f'ALTER DATABASE "{name}" SET {setting} = {value}')
            rows = [{"id": n, "v": n, "x": 0.1 + 0.2, "raw": b"\x00\xff"} for n in (1, 2)]
            connection.execute(table.insert(), rows)
        engine.dispose()  # new sessions take the database's settings
        decoder(engine, table.metadata).run_once()
        with engine.begin() as connection:
            connection.execute(table.update().where(table.c.id == 1).values(v=10))
            connection.execute(table.delete().where(table.c.id == 2))
        decoder(engine, table.metadata).run_once()
        with engine.connect() as connection:
            recorded = connection.exec_driver_sql(
                "SELECT audit_operation, id, x = 0.1::float8 + 0.2::float8, "
                "raw = '\\x00ff'::bytea, audit_changed_columns "
                "FROM measure_audit ORDER BY audit_id"
            ).all()
        assert [tuple(r) for r in recorded[2:]] == [
            ("U", 1, True, True, ["v"]),
            ("D", 2, True, True, None),
        ]


def test_a_context_value_the_audit_column_cannot_hold_is_recorded_null(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """One writer's bad value must not stop the trail for everyone: it is recorded NULL, with
    a warning naming the table, the setting and the transaction."""
    table = sa.Table(
        "acct",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={
            "audit.options": {
                "enabled": True,
                "mode": "cdc",
                "session_settings": [
                    sa.Column("tier", sa.Enum("gold", "silver", name="tier", schema="public")),
                    sa.Column("shard", sa.Integer),
                ],
            }
        },
    )
    with published(engine, table.metadata):
        with engine.begin() as connection:
            set_context(connection, tier="platinum", shard="7")
            connection.execute(table.insert().values(id=1))
            xid = connection.exec_driver_sql("SELECT pg_current_xact_id()::text").scalar_one()
        with engine.begin() as connection:
            set_context(connection, tier="gold", shard="abc")
            connection.execute(table.insert().values(id=2))
        with engine.begin() as connection:
            set_context(connection, tier="silver", shard="3")
            connection.execute(table.insert().values(id=3))
        with caplog.at_level(logging.WARNING):
            assert decoder(engine, table.metadata).run_once() == 3
        assert trail(engine, table, "id", "audit_tier", "audit_shard") == [
            (1, None, 7),
            (2, "gold", None),
            (3, "silver", 3),
        ]
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 2
        assert "acct" in warned[0] and "'tier'" in warned[0] and f"transaction {xid}" in warned[0]
        assert "'shard'" in warned[1]


def test_a_context_row_whose_settings_are_not_an_object_sets_nothing(engine: sa.Engine) -> None:
    table = sa.Table(
        "acct",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={
            "audit.options": {
                "enabled": True,
                "mode": "cdc",
                "session_settings": [sa.Column("username", sa.Text)],
            }
        },
    )
    with published(engine, table.metadata):
        with engine.begin() as connection:
            set_context(connection, username="alice")
            connection.exec_driver_sql("INSERT INTO audit_cdc_context (settings) VALUES ('[]')")
            connection.execute(table.insert().values(id=1))
        assert decoder(engine, table.metadata).run_once() == 1
        assert trail(engine, table, "id", "audit_username") == [(1, "alice")]


def acct_with(*columns: sa.Column[Any]) -> sa.Table:
    return sa.Table(
        "acct",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Integer),
        *columns,
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )


def test_a_column_dropped_while_running_is_recorded_null(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    table = acct_with(sa.Column("legacy", sa.Text))
    with published(engine, table.metadata, "DEFAULT"):
        running = decoder(engine, table.metadata)  # started with the models before the drop
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, v=1, legacy="old"))
        running.run_once()
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE acct DROP COLUMN legacy")
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO acct (id, v) VALUES (2, 2)")
            connection.exec_driver_sql("UPDATE acct SET v = 10 WHERE id = 1")
        with caplog.at_level(logging.WARNING):
            assert running.run_once() == 2
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert [w for w in warned if "['legacy'] are no longer published (dropped?)" in w]
        assert trail(engine, table, "audit_operation", "id", "v", "legacy") == [
            ("I", 1, 1, "old"),
            ("I", 2, 2, None),
            ("U", 1, 10, None),
        ]


def test_changes_from_before_a_column_was_added_are_recorded_null_without_a_warning(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The consumer deployed with the models of after a migration adding a column decodes the
    changes committed before it: the column did not exist, it was not dropped."""
    before = acct_with()
    with published(engine, before.metadata, "DEFAULT"):
        with engine.begin() as connection:
            connection.execute(before.insert().values(id=1, v=1))
            connection.exec_driver_sql("ALTER TABLE acct ADD COLUMN colour text")
            connection.exec_driver_sql("ALTER TABLE acct_audit ADD COLUMN colour text")
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO acct VALUES (2, 2, 'red')")
        after = acct_with(sa.Column("colour", sa.Text))
        with caplog.at_level(logging.INFO):
            assert decoder(engine, after.metadata).run_once() == 2
        assert trail(engine, after, "audit_operation", "id", "colour") == [
            ("I", 1, None),
            ("I", 2, "red"),
        ]
        logged = [(r.levelno, r.getMessage()) for r in caplog.records]
        assert not [m for level, m in logged if level >= logging.WARNING and "colour" in m]
        assert [m for _, m in logged if "before column(s) ['colour'] were added" in m]


def test_a_recorded_generated_column_stops_the_decoder_by_name(engine: sa.Engine) -> None:
    table = acct_with(sa.Column("doubled", sa.Integer, sa.Computed("v * 2", persisted=True)))
    with published(engine, table.metadata):
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, v=1))
        with pytest.raises(DecoderError, match=r"public.acct.*\['doubled'\].*generated"):
            decoder(engine, table.metadata).run_once()


def test_replica_identity_using_an_index_is_refused_by_name(engine: sa.Engine) -> None:
    table = acct_with()
    with published(engine, table.metadata, "DEFAULT"):
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, v=1))
            connection.exec_driver_sql("ALTER TABLE acct ALTER COLUMN v SET NOT NULL")
            connection.exec_driver_sql("CREATE UNIQUE INDEX acct_v ON acct (v)")
            connection.exec_driver_sql("ALTER TABLE acct REPLICA IDENTITY USING INDEX acct_v")
        with engine.begin() as connection:
            connection.execute(table.update().values(v=2))
        with pytest.raises(DecoderError, match=r"public\.acct has REPLICA IDENTITY USING INDEX"):
            decoder(engine, table.metadata).run_once()


def test_who_wrote_comes_from_the_context_rows_writer_column_never_from_its_settings(
    engine: sa.Engine,
) -> None:
    """The server fills ``writer`` (``current_user``); a ``current_user`` key in the settings
    is the writer's own claim, and is not recorded."""
    table = sa.Table(
        "payroll",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("username", sa.Text),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    with published(engine, table.metadata):
        with engine.begin() as connection:
            role = connection.scalar(sa.text("SELECT current_user"))
            set_context(connection, current_user="someone_else", session_user="someone_else")
            connection.execute(table.insert().values(id=1))
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=2))
        decoder(engine, table.metadata).run_once()
        assert trail(engine, table, "id", "audit_current_user") == [(1, role), (2, None)]
