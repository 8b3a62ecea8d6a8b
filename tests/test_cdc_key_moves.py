"""The moved-key (``K``) rule in change-data-capture mode against trigger mode on a real server:
the same statements run on a trigger-mode table and on a CDC table, and the trails compared.

Trigger mode writes ``K`` under the old key when no row holds it once the statement is done.
The WAL has no statement boundaries; ``cdc.key_moves`` says what the decoder can tell, and
``docs/cdc.md`` the cases where a trail differs (both pinned here too)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from cdc_decoder_setup import decoder, published
from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY
from sqlalchemy_postgresql_audit.cdc import Consumer

#: Each scenario: whether the key is deferrable, and its transaction's statements ({t}: the
#: table).  Every table starts with rows 1 'a' and 2 'b'.
SCENARIOS: dict[str, tuple[bool, list[str]]] = {
    "key moved": (False, ["UPDATE {t} SET id = 10 WHERE id = 1"]),
    "old key inserted again by a later statement": (
        False,
        ["UPDATE {t} SET id = 10 WHERE id = 1", "INSERT INTO {t} VALUES (1, 'again')"],
    ),
    "another row moved onto the old key by a later statement": (
        False,
        ["UPDATE {t} SET id = 10 WHERE id = 1", "UPDATE {t} SET id = 1 WHERE id = 2"],
    ),
    "a key deleted, reached and left again": (
        False,
        [
            "DELETE FROM {t} WHERE id = 1",
            "UPDATE {t} SET id = 1 WHERE id = 2",
            "UPDATE {t} SET id = 5 WHERE id = 1",
        ],
    ),
    "swap in one statement under a deferrable key": (
        True,
        ["UPDATE {t} SET id = 3 - id WHERE id IN (1, 2)"],
    ),
    "shift in one statement under a deferrable key": (True, ["UPDATE {t} SET id = id + 1"]),
    "swap across statements through a free key": (
        False,
        [
            "UPDATE {t} SET id = 0 WHERE id = 1",
            "UPDATE {t} SET id = 1 WHERE id = 2",
            "UPDATE {t} SET id = 2 WHERE id = 0",
        ],
    ),
    "swap across statements under a deferred key": (
        True,
        [
            "SET CONSTRAINTS ALL DEFERRED",
            "UPDATE {t} SET id = 2 WHERE id = 1 AND place = 'a'",
            "UPDATE {t} SET id = 1 WHERE id = 2 AND place = 'b'",
        ],
    ),
}


def _metadata(deferrable: bool) -> tuple[sa.MetaData, sa.Table, sa.Table]:
    """A trigger-mode table and a CDC table of the same shape (slot names are the server's:
    each test gets its own)."""
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdc_{uuid.uuid4().hex[:12]}"})

    def table(name: str, **options: Any) -> sa.Table:
        return sa.Table(
            name,
            metadata,
            sa.Column("id", sa.Integer, autoincrement=False),
            sa.Column("place", sa.Text),
            sa.PrimaryKeyConstraint("id", deferrable=deferrable or None),
            info={"audit.options": {"enabled": True, **options}},
        )

    return metadata, table("by_trigger"), table("by_cdc", mode="cdc")


def _run(engine: sa.Engine, tables: tuple[sa.Table, ...], statements: list[str]) -> None:
    for table in tables:
        with engine.begin() as connection:
            connection.execute(table.insert(), [{"id": 1, "place": "a"}, {"id": 2, "place": "b"}])
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement.format(t=table.name))


def _trail(engine: sa.Engine, table: sa.Table) -> list[tuple[Any, ...]]:
    audit = table.info[AUDIT_TABLE_KEY]
    with engine.connect() as connection:
        query = sa.select(audit.c.audit_operation, audit.c.id, audit.c.place)
        return [tuple(r) for r in connection.execute(query.order_by(audit.c.audit_id))]


@pytest.fixture
def engine(logical_database_url: URL) -> Iterator[sa.Engine]:
    engine = sa.create_engine(logical_database_url)
    yield engine
    engine.dispose()


def _identities(deferrable: bool) -> list[str]:
    # A deferrable key is no replica identity: such a table is published with FULL.
    return ["FULL"] if deferrable else ["FULL", "DEFAULT"]


#: Where the decoder's trail differs from trigger mode (documented): with the key's check
#: deferred to the commit, two rows may share a key across statements, which the decoder takes
#: for one statement.
DECODER_DIFFERS = {
    "swap across statements under a deferred key": [
        ("I", 1, "a"),
        ("I", 2, "b"),
        ("U", 2, "a"),
        ("U", 1, "b"),
    ],
}


@pytest.mark.parametrize(
    ("scenario", "identity"),
    [(name, identity) for name, (d, _) in SCENARIOS.items() for identity in _identities(d)],
)
def test_the_decoder_writes_k_where_the_trigger_does(
    engine: sa.Engine, scenario: str, identity: str
) -> None:
    deferrable, statements = SCENARIOS[scenario]
    metadata, by_trigger, by_cdc = _metadata(deferrable)
    with published(engine, metadata, identity):
        _run(engine, (by_trigger, by_cdc), statements)
        decoder(engine, metadata).run_once()
        expected = DECODER_DIFFERS.get(scenario, _trail(engine, by_trigger))
        assert _trail(engine, by_cdc) == expected
        if scenario in DECODER_DIFFERS:
            # After the first statement key 1 is empty; after the second, key 2 is not.
            assert [r for r in _trail(engine, by_trigger) if r[0] == "K"] == [("K", 1, "a")]


def test_install_publishes_a_table_with_a_deferrable_key_with_its_whole_old_row(
    engine: sa.Engine,
) -> None:
    """PostgreSQL takes only an immediate key as replica identity: with DEFAULT, an UPDATE of
    the published table would be refused."""
    metadata, _, by_cdc = _metadata(deferrable=True)
    metadata.create_all(engine)
    try:
        with engine.connect() as connection:
            identity = connection.execute(
                sa.text("SELECT relreplident FROM pg_class WHERE relname = 'by_cdc'")
            ).scalar()
        assert identity == "f"
        _run(engine, (by_cdc,), SCENARIOS["swap in one statement under a deferrable key"][1])
    finally:
        with engine.connect() as connection:
            connection.execute(
                sa.text("SELECT pg_drop_replication_slot(:s)"),
                {"s": metadata.naming_convention["audit.slot"]},
            )
            connection.commit()


@pytest.mark.parametrize("identity", ["FULL", "DEFAULT"])
def test_a_shift_that_never_holds_a_key_twice_reads_as_one_statement_per_row(
    engine: sa.Engine, identity: str
) -> None:
    """The documented difference: one statement moving rows onto keys it vacated, visited from
    the highest key down (rows written in that order), never two rows on a key.  The WAL holds
    what one UPDATE per row would write: the decoder writes K for every moved row, the trigger
    only for the key left empty."""
    metadata, by_trigger, by_cdc = _metadata(deferrable=False)
    with published(engine, metadata, identity):
        for table in (by_trigger, by_cdc):
            with engine.begin() as connection:
                connection.execute(table.insert(), [{"id": i, "place": str(i)} for i in (3, 2, 1)])
            with engine.begin() as connection:
                connection.exec_driver_sql(f"UPDATE {table.name} SET id = id + 1")
        decoder(engine, metadata).run_once()
        moved = [r for r in _trail(engine, by_cdc) if r[0] != "I"]
        assert [r for r in _trail(engine, by_trigger) if r[0] == "K"] == [("K", 1, "1")]
        assert moved == [
            ("K", 3, "3"),
            ("U", 4, "3"),
            ("K", 2, "2"),
            ("U", 3, "2"),
            ("K", 1, "1"),
            ("U", 2, "1"),
        ]


# -- design 1: the target's triggers, fired by the apply worker one change at a time ---------


#: Where design 1's trail differs from trigger mode: the apply worker applies (and fires the
#: target's row triggers for) one change at a time, so the first row of a swap done in one
#: statement under a deferrable key leaves its key empty for a moment and gets a K row.
DESIGN_1_DIFFERS = {
    "swap in one statement under a deferrable key": [
        ("I", 1, "a"),
        ("I", 2, "b"),
        ("K", 1, "a"),
        ("U", 2, "a"),
        ("U", 1, "b"),
    ],
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_replica_writes_k_where_the_trigger_does_but_for_a_swap_in_one_statement(
    engine: sa.Engine, target: sa.Engine, scenario: str
) -> None:
    deferrable, statements = SCENARIOS[scenario]
    metadata, by_trigger, by_cdc = _metadata(deferrable)
    metadata.create_all(engine)
    consumer = Consumer(engine, target, metadata=metadata, timeout=120)
    try:
        consumer.run_once()
        _run(engine, (by_trigger, by_cdc), statements)
        consumer.run_once()
        expected = DESIGN_1_DIFFERS.get(scenario, _trail(engine, by_trigger))
        assert _trail(target, by_cdc) == expected
    finally:
        consumer.drop()
