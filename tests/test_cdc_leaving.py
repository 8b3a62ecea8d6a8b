"""A table switched between CDC and a trigger mode through Alembic keeps one continuous trail:
no restart marker (``R``) and no baseline (``B``) in either direction, and the history API
compares versions across the switch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from alembic_env import make_project
from cdc_decoder_setup import drop_slot
from sqlalchemy_postgresql_audit import history
from sqlalchemy_postgresql_audit.cdc import Consumer, create_slot


def _models(slot: str, mode: str | None) -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData(naming_convention={"audit.slot": slot})
    account = sa.Table(
        "account",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.Text),
        info={"audit.options": {"enabled": True, **({"mode": mode} if mode else {})}},
    )
    return metadata, account


@pytest.fixture
def source(logical_database_url: URL) -> Iterator[sa.Engine]:
    engine = sa.create_engine(logical_database_url)
    yield engine
    engine.dispose()


def _trail(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT audit_operation, id, owner FROM account_audit ORDER BY audit_id"
        )
        return [tuple(r) for r in rows]


def _write(engine: sa.Engine, statement: str) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(statement)


def test_a_table_leaving_cdc_and_coming_back_keeps_one_trail(
    tmp_path: Path, source: sa.Engine
) -> None:
    slot = f"leave_{uuid.uuid4().hex[:12]}"
    cdc, account = _models(slot, "cdc")
    statement, _ = _models(slot, None)
    project = make_project(tmp_path, source.url)
    create_slot(source, cdc)  # a migration's transaction cannot make the slot
    try:
        project.revision(cdc, "cdc")
        project.upgrade(cdc)
        _write(source, "INSERT INTO account VALUES (1, 'a'), (2, 'b')")
        Consumer(source, metadata=cdc, timeout=60).run_once()
        leaving = project.revision(statement, "to statement mode")
        assert "op.create_audit_trigger(" in leaving
        assert "op.record_audit_baseline(" in leaving
        assert "op.unpublish_audit_table(" in leaving
        project.upgrade(statement)
        _write(source, "UPDATE account SET owner = 'a2' WHERE id = 1")
        assert _trail(source) == [("I", 1, "a"), ("I", 2, "b"), ("U", 1, "a2")]
        with source.connect() as connection:
            versions = connection.execute(history(account, 1)).all()
        assert [v.audit_operation for v in versions] == ["I", "U"]

        project.revision(cdc, "back to cdc")
        project.upgrade(cdc)
        _write(source, "UPDATE account SET owner = 'b2' WHERE id = 2")
        Consumer(source, metadata=cdc, timeout=60).run_once()
        assert _trail(source)[3:] == [("U", 2, "b2")]
    finally:
        drop_slot(source, cdc)


def test_a_table_with_a_kept_trail_and_no_publication_still_gets_its_restart_marker(
    tmp_path: Path, source: sa.Engine
) -> None:
    """The condition is about the CDC publication: a table in none restarts as before."""
    slot = f"leave_{uuid.uuid4().hex[:12]}"
    statement, _ = _models(slot, None)
    project = make_project(tmp_path, source.url)
    project.revision(statement, "audited")
    project.upgrade(statement)
    _write(source, "INSERT INTO account VALUES (1, 'a')")
    with source.begin() as connection:  # auditing removed by hand, the trail kept
        connection.exec_driver_sql("DROP FUNCTION public_account_audit() CASCADE")
    project.revision(statement, "audited again")
    project.upgrade(statement)
    assert [row[0] for row in _trail(source)] == ["I", "R", "B"]


def test_a_table_leaving_cdc_whose_trail_was_written_elsewhere_restarts_here(
    tmp_path: Path, source: sa.Engine
) -> None:
    """Trigger mode, then CDC with the trail on another server (design 1: no decoder here),
    then trigger mode again: this audit table stopped at the switch to CDC, so leaving CDC
    restarts it (R, then a baseline of the rows as they are), not a diff across the CDC era."""
    slot = f"leave_{uuid.uuid4().hex[:12]}"
    cdc, _ = _models(slot, "cdc")
    statement, account = _models(slot, None)
    project = make_project(tmp_path, source.url)
    create_slot(source, cdc)
    try:
        project.revision(statement, "audited")
        project.upgrade(statement)
        _write(source, "INSERT INTO account VALUES (1, 'a')")
        project.revision(cdc, "cdc")
        project.upgrade(cdc)
        _write(source, "UPDATE account SET owner = 'a1' WHERE id = 1")
        _write(source, "INSERT INTO account VALUES (2, 'b')")
        project.revision(statement, "to statement mode")
        project.upgrade(statement)
        _write(source, "UPDATE account SET owner = 'a2' WHERE id = 1")
        assert _trail(source) == [
            ("I", 1, "a"),
            ("R", None, None),
            ("B", 1, "a1"),
            ("B", 2, "b"),
            ("U", 1, "a2"),
        ]
        with source.connect() as connection:
            versions = connection.execute(history(account, 1)).all()
        assert [v.audit_operation for v in versions][-2:] == ["B", "U"]
    finally:
        drop_slot(source, cdc)
