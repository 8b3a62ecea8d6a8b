"""What the decoder records in the less travelled cases: tables without a key, sessions whose
output settings differ from the WAL's, context values the audit column cannot hold, columns
dropped while it runs."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from cdc_decoder_setup import decoder, published
from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY


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
