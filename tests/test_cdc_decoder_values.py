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
