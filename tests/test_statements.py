"""Every way of writing rows is audited: upserts, COPY, MERGE and partitioned tables."""

from __future__ import annotations

import io
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, SPEC_KEY, AuditConfigurationError

MODES = ("statement", "row")


def declare(mode: str | None, **table_kw: Any) -> sa.Table:
    options: dict[str, Any] = {"enabled": True}
    if mode is not None:
        options["mode"] = mode
    return sa.Table(
        "item",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("label", sa.Text),
        info={"audit.options": options},
        **table_kw,
    )


def recorded(engine: sa.Engine, table: sa.Table) -> list[tuple[str, int, str | None]]:
    audit_table = table.info[AUDIT_TABLE_KEY]
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                audit_table.c.audit_operation, audit_table.c.id, audit_table.c.label
            ).order_by(audit_table.c.audit_id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


@pytest.mark.parametrize("mode", MODES)
def test_insert_on_conflict_do_update(engine: sa.Engine, mode: str) -> None:
    table = declare(mode)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, label="a"))
    statement = pg_insert(table).values([{"id": 1, "label": "b"}, {"id": 2, "label": "c"}])
    statement = statement.on_conflict_do_update(
        index_elements=["id"], set_={"label": statement.excluded.label}
    )
    with engine.begin() as connection:
        connection.execute(statement)
        connection.execute(pg_insert(table).values(id=2, label="ignored").on_conflict_do_nothing())
    changes = recorded(engine, table)
    assert changes[0] == ("I", 1, "a")
    assert sorted(changes[1:]) == [("I", 2, "c"), ("U", 1, "b")]


@pytest.mark.parametrize("mode", MODES)
def test_copy_through_psycopg_and_psycopg2(database_url: Any, mode: str) -> None:
    table = declare(mode)
    engines = {
        d: sa.create_engine(database_url.set(drivername=f"postgresql+{d}"))
        for d in ("psycopg", "psycopg2")
    }
    table.metadata.create_all(engines["psycopg"])
    raw: Any = engines["psycopg"].raw_connection()
    try:
        with raw.cursor() as cursor, cursor.copy("COPY item (id, label) FROM STDIN") as copy:
            for i in (1, 2):
                copy.write_row((i, f"p{i}"))
        raw.commit()
    finally:
        raw.close()
    raw = engines["psycopg2"].raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.copy_expert("COPY item (id, label) FROM STDIN", io.StringIO("3\tq3\n4\tq4\n"))
        raw.commit()
    finally:
        raw.close()
    assert recorded(engines["psycopg2"], table) == [
        ("I", 1, "p1"),
        ("I", 2, "p2"),
        ("I", 3, "q3"),
        ("I", 4, "q4"),
    ]
    for engine in engines.values():
        engine.dispose()


@pytest.mark.parametrize("mode", MODES)
def test_merge(engine: sa.Engine, server_version: int, mode: str) -> None:
    if server_version < 150000:
        pytest.skip("MERGE needs PostgreSQL 15")
    table = declare(mode)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "label": "keep"}, {"id": 2, "label": "drop"}])
        connection.execute(
            sa.text(
                "MERGE INTO item t USING (VALUES (1, 'new'), (2, NULL), (3, 'add')) AS s(id, label) "
                "ON t.id = s.id "
                "WHEN MATCHED AND s.label IS NULL THEN DELETE "
                "WHEN MATCHED THEN UPDATE SET label = s.label "
                "WHEN NOT MATCHED THEN INSERT (id, label) VALUES (s.id, s.label)"
            )
        )
    changes = recorded(engine, table)
    assert changes[:2] == [("I", 1, "keep"), ("I", 2, "drop")]
    assert sorted(changes[2:]) == [("D", 2, "drop"), ("I", 3, "add"), ("U", 1, "new")]


def partitioned_item(engine: sa.Engine) -> sa.Table:
    """``item`` partitioned by range, with partitions item_low (0-99) and item_high (100-199)."""
    table = declare(None, postgresql_partition_by="RANGE (id)")
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.text("CREATE TABLE item_low PARTITION OF item FOR VALUES FROM (0) TO (100)")
        )
        connection.execute(
            sa.text("CREATE TABLE item_high PARTITION OF item FOR VALUES FROM (100) TO (200)")
        )
    return table


def test_partitioned_table_defaults_to_row_mode_and_audits_direct_partition_writes(
    engine: sa.Engine,
) -> None:
    table = partitioned_item(engine)
    assert table.info[SPEC_KEY].mode == "row"
    with engine.begin() as connection:
        connection.execute(
            table.insert(), [{"id": 1, "label": "via root"}, {"id": 150, "label": "high"}]
        )
        connection.execute(sa.text("INSERT INTO item_low VALUES (2, 'direct')"))
        connection.execute(sa.text("UPDATE item_low SET label = 'changed' WHERE id = 2"))
        connection.execute(sa.text("DELETE FROM item_high"))
    assert recorded(engine, table) == [
        ("I", 1, "via root"),
        ("I", 150, "high"),
        ("I", 2, "direct"),
        ("U", 2, "changed"),
        ("D", 150, "high"),
    ]


def test_update_moving_a_row_between_partitions_is_recorded(engine: sa.Engine) -> None:
    table = partitioned_item(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, label="low"))
        connection.execute(table.update().values(id=101))
    # PostgreSQL runs a cross-partition UPDATE as DELETE + INSERT and fires those row triggers.
    assert recorded(engine, table) == [("I", 1, "low"), ("D", 1, "low"), ("I", 101, "low")]


def test_statement_mode_on_a_partitioned_table_is_refused(engine: sa.Engine) -> None:
    """Statement triggers on the parent miss writes addressed to a partition: never silently
    unaudited, so asking for them fails at declaration, naming the table and the key."""
    with pytest.raises(AuditConfigurationError, match=r"'item'.*'mode'.*partition"):
        declare("statement", postgresql_partition_by="RANGE (id)")


def test_a_partitioned_table_reflected_without_its_partitioning_is_refused_at_install(
    engine: sa.Engine,
) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text("CREATE TABLE item (id int PRIMARY KEY, label text) PARTITION BY RANGE (id)")
        )
    table = declare("statement")  # declared as a plain table, but it is partitioned
    with pytest.raises(AuditConfigurationError, match=r"'item'.*'mode'.*partition"):
        table.metadata.create_all(engine)


def test_an_inheritance_child_is_audited_in_row_mode_through_its_parent(engine: sa.Engine) -> None:
    """Statement triggers on a child never fire for changes made through its parent; row
    triggers do, so an inheriting table defaults to row mode and refuses statement mode."""
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE vehicle (id int PRIMARY KEY, label text)"))
    child = declare(None, postgresql_inherits="vehicle")
    assert child.info[SPEC_KEY].mode == "row"
    child.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(child.insert().values(id=1, label="car"))
        connection.execute(sa.text("UPDATE vehicle SET label = 'van' WHERE id = 1"))
        connection.execute(sa.text("DELETE FROM vehicle WHERE id = 1"))
    assert recorded(engine, child) == [("I", 1, "car"), ("U", 1, "van"), ("D", 1, "van")]
    with pytest.raises(AuditConfigurationError, match=r"'item'.*'mode'.*inheritance"):
        declare("statement", postgresql_inherits="vehicle")


def test_a_reflected_partition_in_statement_mode_is_refused_at_install(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE TABLE events (id int, label text, PRIMARY KEY (id)) PARTITION BY RANGE (id)"
            )
        )
        connection.execute(
            sa.text("CREATE TABLE item PARTITION OF events FOR VALUES FROM (0) TO (100)")
        )
    table = declare("statement")  # declared as a plain table, but it is a partition
    with pytest.raises(AuditConfigurationError, match=r"'item'.*'mode'.*partition"):
        table.metadata.create_all(engine)
