"""The decoder (design 2) on a table whose primary key has several columns, under
``replica_identity="default"``: the old row of an UPDATE or DELETE is rebuilt from the trail by
the whole key.  A partitioned table's key must hold its partition column, so every partitioned
CDC table has such a key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from cdc_decoder_setup import drop_slot
from sqlalchemy_postgresql_audit.cdc import Consumer


@pytest.fixture
def pair(source: sa.Engine) -> Iterator[sa.Table]:
    metadata = sa.MetaData(naming_convention={"audit.slot": f"ck_{uuid.uuid4().hex[:12]}"})
    table = sa.Table(
        "pair",
        metadata,
        sa.Column("a", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("b", sa.Text, primary_key=True),
        sa.Column("v", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    metadata.create_all(source)
    yield table
    drop_slot(source, metadata)


def test_changes_of_rows_written_in_an_earlier_run_keep_their_old_values(
    source: sa.Engine, pair: sa.Table
) -> None:
    consumer = Consumer(source, metadata=pair.metadata, timeout=60)
    with source.begin() as connection:
        connection.execute(pair.insert(), [{"a": 1, "b": "x", "v": 1}, {"a": 1, "b": "y", "v": 2}])
    assert consumer.run_once() == 2
    with source.begin() as connection:
        connection.execute(pair.update().where(pair.c.b == "x").values(v=10))
        connection.execute(pair.delete().where(pair.c.b == "y"))
    assert consumer.run_once() == 2
    with source.connect() as connection:
        trail = connection.exec_driver_sql(
            "SELECT audit_operation, a, b, v FROM pair_audit ORDER BY audit_id"
        ).all()
    assert [tuple(row) for row in trail] == [
        ("I", 1, "x", 1),
        ("I", 1, "y", 2),
        ("U", 1, "x", 10),
        ("D", 1, "y", 2),
    ]
