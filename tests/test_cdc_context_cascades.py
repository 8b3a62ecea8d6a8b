"""A CDC table's rows changed by a foreign key's action (``ON DELETE CASCADE``, ``SET NULL``,
``ON UPDATE CASCADE``) from a write to a trigger-mode or unaudited table get the writer's
context, in both designs: the write that sets the action off carries the context row."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from cdc_decoder_setup import drop_slot
from sqlalchemy_postgresql_audit import audit_context
from sqlalchemy_postgresql_audit.cdc import Consumer


def _models() -> tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]:
    """``parent`` (trigger mode) <- ``child`` (CDC, ON DELETE CASCADE, ON UPDATE CASCADE);
    ``root`` (unaudited) <- ``link`` (unaudited, ON DELETE CASCADE) <- ``child`` (SET NULL)."""
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdcf_{uuid.uuid4().hex[:12]}"})

    def options(mode: str) -> dict[str, object]:
        settings = [sa.Column("username", sa.Text)]
        return {"audit.options": {"enabled": True, "mode": mode, "session_settings": settings}}

    parent = sa.Table(
        "parent",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info=options("row"),
    )
    root = sa.Table("root", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "link",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("root_id", sa.ForeignKey("root.id", ondelete="CASCADE")),
    )
    child = sa.Table(
        "child",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("parent_id", sa.ForeignKey("parent.id", ondelete="CASCADE", onupdate="CASCADE")),
        sa.Column("link_id", sa.ForeignKey("link.id", ondelete="SET NULL"), nullable=True),
        info=options("cdc"),
    )
    return metadata, parent, root, child


@pytest.fixture
def models(source: sa.Engine) -> Iterator[tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]]:
    metadata, parent, root, child = _models()
    yield metadata, parent, root, child
    drop_slot(source, metadata)


def _write(source: sa.Engine, parent: sa.Table, root: sa.Table, child: sa.Table) -> None:
    """Rows, then three writes that change ``child`` only through its foreign keys."""
    with source.begin() as connection:
        connection.execute(root.insert().values(id=1))
        connection.exec_driver_sql("INSERT INTO link (id, root_id) VALUES (1, 1)")
    with audit_context(username="alice"), source.begin() as connection:
        connection.execute(parent.insert().values([{"id": 1}, {"id": 2}]))
        connection.execute(child.insert().values([(1, 1, 1), (2, 2, None)]))
    with audit_context(username="bob"), source.begin() as connection:
        connection.execute(parent.delete().where(parent.c.id == 1))  # child 1: CASCADE
    with audit_context(username="carol"), source.begin() as connection:
        connection.execute(parent.update().where(parent.c.id == 2).values(id=3))  # child 2
    with audit_context(username="dave"), source.begin() as connection:
        connection.execute(root.delete())  # link 1 (CASCADE), whose child is gone: nothing
    with audit_context(username="erin"), source.begin() as connection:
        connection.exec_driver_sql("INSERT INTO link (id, root_id) VALUES (2, NULL)")
        connection.exec_driver_sql("UPDATE child SET link_id = 2")
    with audit_context(username="frank"), source.begin() as connection:
        connection.execute(root.insert().values(id=2))  # an INSERT sets off no action


EXPECTED = [
    ("I", 1, "alice"),
    ("I", 2, "alice"),
    ("D", 1, "bob"),
    ("U", 3, "carol"),
    ("U", 3, "erin"),
]


def _trail(engine: sa.Engine) -> list[tuple[str, int, str | None]]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT audit_operation, parent_id, audit_username FROM child_audit ORDER BY audit_id"
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def _context_senders(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT settings FROM audit_cdc_context ORDER BY settings::text"
        )
        return [str(row[0]) for row in rows]


def test_a_decoder_records_the_context_of_cascaded_changes(
    source: sa.Engine, models: tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]
) -> None:
    metadata, parent, root, child = models
    metadata.create_all(source)
    _write(source, parent, root, child)
    with source.begin() as connection:  # SET NULL from the unaudited root, through link
        connection.exec_driver_sql("DELETE FROM link WHERE id = 2")
    senders = _context_senders(source)
    assert not any("frank" in settings for settings in senders), senders
    assert Consumer(source, metadata=metadata, timeout=60).run_once() == 6
    assert _trail(source) == [*EXPECTED, ("U", 3, None)]


def test_an_unaudited_parent_s_delete_reaches_a_cdc_table_through_set_null(
    source: sa.Engine, models: tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]
) -> None:
    """``root`` -> ``link`` (CASCADE) -> ``child`` (SET NULL): two foreign keys away."""
    metadata, parent, root, child = models
    metadata.create_all(source)
    with source.begin() as connection:
        connection.execute(root.insert().values(id=1))
        connection.exec_driver_sql("INSERT INTO link (id, root_id) VALUES (1, 1)")
        connection.execute(parent.insert().values(id=1))
        connection.execute(child.insert().values(id=1, parent_id=1, link_id=1))
    with audit_context(username="gina"), source.begin() as connection:
        connection.execute(root.delete().where(root.c.id == 1))
    assert Consumer(source, metadata=metadata, timeout=60).run_once() == 2
    assert _trail(source) == [("I", 1, None), ("U", 1, "gina")]


def test_design_1_records_the_context_of_cascaded_changes_on_the_target(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    metadata, parent, root, child = _models()  # the consumer drops its slot
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()  # the replica, its capture and the subscription
    _write(source, parent, root, child)
    consumer.run_once()
    assert _trail(target) == EXPECTED
