"""Leaving change-data-capture by installing (``install_audit_triggers``, the CLI's ``install``)
keeps one trail, as the migration does: the table leaves its publication in the installing
transaction, after its trigger.  And a metadata never shares its publication with another's
tables: installing refuses, naming the tables and the keys to set."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_decoder_setup import drop_slot
from cli_run import run, url_text
from sqlalchemy_postgresql_audit import audit_context, install_audit_triggers
from sqlalchemy_postgresql_audit.cdc import Consumer
from sqlalchemy_postgresql_audit.install.leaving import SharedPublication

CDC = {"enabled": True, "mode": "cdc"}
ROW = {"enabled": True, "mode": "row"}
OFF = {"enabled": False}
SETTINGS = {"session_settings": [sa.Column("username", sa.Text)]}


def _models(
    slot: str, account: dict[str, Any], *, keep: bool = True, **conventions: str
) -> sa.MetaData:
    metadata = sa.MetaData(naming_convention={"audit.slot": slot, **conventions})
    options = {**account, **SETTINGS} if account["enabled"] else account
    sa.Table(
        "account",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Integer),
        info={"audit.options": options},
    )
    if keep:
        sa.Table(
            "keep",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            info={"audit.options": CDC},
        )
    return metadata


@pytest.fixture
def slot(source: sa.Engine) -> Iterator[str]:
    name = f"lvi_{uuid.uuid4().hex[:12]}"
    yield name
    drop_slot(source, sa.MetaData(naming_convention={"audit.slot": name}))


def _published(engine: sa.Engine, publication: str = "audit_cdc") -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.exec_driver_sql(
                "SELECT tablename FROM pg_publication_tables WHERE pubname = %s ORDER BY 1",
                (publication,),
            ).scalars()
        )


def _rows(engine: sa.Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(sql)]


def _account_trail(engine: sa.Engine) -> list[tuple[Any, ...]]:
    return _rows(
        engine, "SELECT audit_operation, id, v, audit_username FROM account_audit ORDER BY audit_id"
    )


def _write(engine: sa.Engine, username: str, *statements: str) -> None:
    with audit_context(username=username), engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def _consume(engine: sa.Engine, metadata: sa.MetaData) -> None:
    Consumer(engine, metadata=metadata, timeout=60).run_once()


def test_a_table_leaving_cdc_through_install_is_recorded_once(source: sa.Engine, slot: str) -> None:
    """Trigger and decoder would both record every change of a table left in the publication."""
    cdc = _models(slot, CDC)
    cdc.create_all(source)
    _write(source, "c", "INSERT INTO account VALUES (1, 1), (2, 2)")
    _consume(source, cdc)
    row = _models(slot, ROW)
    install_audit_triggers(row, source)
    assert _published(source) == ["keep"]
    _write(source, "r", "UPDATE account SET v = 100 WHERE id = 1", "INSERT INTO keep VALUES (1)")
    _consume(source, row)
    assert _account_trail(source) == [("I", 1, 1, "c"), ("I", 2, 2, "c"), ("U", 1, 100, "r")]
    assert _rows(source, "SELECT audit_operation, id FROM keep_audit") == [("I", 1)]


def test_the_last_cdc_table_leaving_through_install_keeps_one_trail(
    source: sa.Engine, slot: str
) -> None:
    """With a change the consumer had not written yet at the switch: it lands after the
    trigger's rows (out of commit order, as documented), and the trigger's DELETE is not also
    decoded (the decoder would stop at a key the trail no longer holds)."""
    cdc = _models(slot, CDC, keep=False)
    cdc.create_all(source)
    _write(source, "c", "INSERT INTO account VALUES (1, 1), (2, 2)")
    _consume(source, cdc)
    _write(source, "late", "UPDATE account SET v = 10 WHERE id = 1")
    row = _models(slot, ROW, keep=False)
    install_audit_triggers(row, source)
    assert _published(source) == []
    _write(source, "r", "DELETE FROM account WHERE id = 2")
    _consume(source, cdc)  # the models of before drain the slot: these declare no CDC table
    assert _account_trail(source) == [
        ("I", 1, 1, "c"),
        ("I", 2, 2, "c"),
        ("D", 2, 2, "r"),
        ("U", 1, 10, "late"),
    ]


def test_a_cdc_table_declared_unaudited_leaves_its_publication_on_install(
    source: sa.Engine, slot: str
) -> None:
    """``"enabled": False``: auditing it stops, as declared, and the decoder of the models that
    say so goes on with the other CDC tables instead of stopping at it."""
    cdc = _models(slot, CDC)
    cdc.create_all(source)
    _write(source, "c", "INSERT INTO account VALUES (1, 1)")
    _consume(source, cdc)
    off = _models(slot, OFF)
    install_audit_triggers(off, source)
    assert _published(source) == ["keep"]
    _write(source, "r", "UPDATE account SET v = 5 WHERE id = 1", "INSERT INTO keep VALUES (1)")
    _consume(source, off)
    assert _account_trail(source) == [("I", 1, 1, "c")]
    assert _rows(source, "SELECT audit_operation, id FROM keep_audit") == [("I", 1)]


MODULE = """\
import sqlalchemy as sa

metadata = sa.MetaData(naming_convention={{"audit.slot": {slot!r}}})
sa.Table(
    "account", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("v", sa.Integer),
    info={{"audit.options": {account!r}}},
)
sa.Table(
    "keep", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    info={{"audit.options": {{"enabled": True, "mode": "cdc"}}}},
)
"""


def _cli(tmp_path: Path, source: sa.Engine, slot: str, account: dict[str, Any], *args: str) -> Any:
    module = f"lvi_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(MODULE.format(slot=slot, account=account))
    return run(*args, f"{module}:metadata", "--url", url_text(source.url), path=tmp_path)


def _double_capture(report: dict[str, Any]) -> list[str]:
    """What ``check`` says of account being in the publication: in its state when it is
    audited by a trigger, among the problems when it is not audited."""
    said = [
        detail
        for state in report["tables"]
        if state["table"] == "account"
        for detail in state["details"]
    ]
    said += [
        p.removeprefix("public.account is declared unaudited but is ") for p in report["problems"]
    ]
    return [
        found
        for found in ("still in CDC publication 'audit_cdc'",)
        if any(found in s for s in said)
    ]


@pytest.mark.parametrize("account", [ROW, OFF], ids=["row", "unaudited"])
def test_check_reports_a_table_left_in_the_publication_and_the_cli_install_takes_it_out(
    tmp_path: Path, source: sa.Engine, slot: str, account: dict[str, Any]
) -> None:
    _models(slot, CDC).create_all(source)
    with source.begin() as connection:  # the trigger installed, the table left published
        install_audit_triggers(_models(slot, ROW, keep=False), connection)
        published = connection.exec_driver_sql(
            "SELECT FROM pg_publication_tables WHERE tablename = 'account'"
        ).first()
        if published is None:
            connection.exec_driver_sql("ALTER PUBLICATION audit_cdc ADD TABLE account")
    checked = _cli(tmp_path, source, slot, account, "--json", "check")
    assert checked.returncode == 1, checked.stderr
    assert _double_capture(json.loads(checked.stdout)) == ["still in CDC publication 'audit_cdc'"]
    installed = _cli(tmp_path, source, slot, account, "install")
    assert installed.returncode == 0, installed.stderr
    assert _published(source) == ["keep"]
    after = _cli(tmp_path, source, slot, account, "--json", "check")
    assert _double_capture(json.loads(after.stdout)) == []


def _items(slot: str, **conventions: str) -> sa.MetaData:
    """Another application's models: their own slot, and the given naming conventions."""
    metadata = sa.MetaData(naming_convention={"audit.slot": slot, **conventions})
    sa.Table(
        "items",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={"audit.options": {**CDC, **SETTINGS}},
    )
    return metadata


def test_a_second_metadata_sharing_the_publication_is_refused_before_anything_is_made(
    source: sa.Engine, slot: str
) -> None:
    _models(slot, CDC, keep=False).create_all(source)
    second = _items(f"{slot}_b")
    try:
        for install in (second.create_all, lambda e: install_audit_triggers(second, e)):
            with pytest.raises(SharedPublication) as refused:
                install(source)
            message = str(refused.value)
            assert "publication 'audit_cdc' holds public.account" in message
            assert "'audit.publication'" in message and "'audit.slot'" in message
            with source.connect() as connection:
                made = connection.exec_driver_sql(
                    "SELECT slot_name FROM pg_replication_slots WHERE slot_name = %s",
                    (f"{slot}_b",),
                ).all()
            assert made == []
        assert _published(source) == ["account"]
    finally:
        drop_slot(source, second)


ITEMS_MODULE = """\
import sqlalchemy as sa

metadata = sa.MetaData(naming_convention={{"audit.slot": {slot!r}}})
sa.Table(
    "items", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    info={{"audit.options": {{"enabled": True, "mode": "cdc"}}}},
)
"""


def test_the_cli_install_refuses_a_shared_publication_before_making_the_slot(
    tmp_path: Path, source: sa.Engine, slot: str
) -> None:
    _models(slot, CDC, keep=False).create_all(source)
    with source.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE items (id int PRIMARY KEY)")
    (tmp_path / "lvi_items.py").write_text(ITEMS_MODULE.format(slot=f"{slot}_b"))
    try:
        installed = run(
            "install", "lvi_items:metadata", "--url", url_text(source.url), path=tmp_path
        )
        assert installed.returncode != 0
        assert "publication 'audit_cdc' holds public.account" in installed.stderr
        with source.connect() as connection:
            made = connection.exec_driver_sql(
                "SELECT slot_name FROM pg_replication_slots WHERE slot_name = %s", (f"{slot}_b",)
            ).all()
        assert made == []
        assert _published(source) == ["account"]
    finally:
        drop_slot(source, sa.MetaData(naming_convention={"audit.slot": f"{slot}_b"}))


def test_each_metadata_with_its_own_publication_and_slot_keeps_its_own_trail(
    source: sa.Engine, slot: str
) -> None:
    """What the docs ask of two metadata in one database: both decoders write their trails."""
    first = _models(slot, CDC, keep=False)
    second = _items(f"{slot}_b", **{"audit.publication": "items_cdc"})
    try:
        first.create_all(source)
        second.create_all(source)
        _write(source, "a", "INSERT INTO account VALUES (1, 1)")
        _write(source, "b", "INSERT INTO items VALUES (7)", "UPDATE account SET v = 2")
        _consume(source, first)
        _consume(source, second)
        assert _account_trail(source) == [("I", 1, 1, "a"), ("U", 1, 2, "b")]
        items = _rows(source, "SELECT audit_operation, id, audit_username FROM items_audit")
        assert items == [("I", 7, "b")]
        assert _published(source) == ["account"]
        assert _published(source, "items_cdc") == ["items"]
    finally:
        drop_slot(source, second)


def test_models_that_publish_nothing_new_install_again_beside_a_newer_table(
    source: sa.Engine, slot: str
) -> None:
    """An instance of the previous release running ``create_all`` at start after a migration
    published a newer CDC table publishes nothing: it is not refused (its consumer waits at
    the new table until it runs with the new models)."""
    _models(slot, CDC).create_all(source)  # the new release: account and keep
    previous = _models(slot, CDC, keep=False)
    previous.create_all(source)
    install_audit_triggers(previous, source)
    assert _published(source) == ["account", "keep"]
