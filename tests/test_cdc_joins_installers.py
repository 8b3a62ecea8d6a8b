"""Design 1: a table published by a migration (``op.record_cdc_join``) or by the CLI's
``install`` holds the subscription at its join as ``install_audit_triggers`` does, so the
changes committed between the install and the consumer's next run are all recorded: a table
switched from trigger mode (rows and trigger-era history), and a new table a migration creates.
Two real servers: the source and the target; a real Alembic project."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

import cdc_models
from alembic_env import make_project
from cli_run import run, url_text
from sqlalchemy_postgresql_audit.cdc import Consumer, create_slot
from sqlalchemy_postgresql_audit.cdc.replica import Replica
from sqlalchemy_postgresql_audit.cdc.status import cdc_status


def _account(metadata: sa.MetaData, mode: str = "cdc") -> sa.Table:
    return sa.Table(
        "account",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": mode}},
    )


def _ledger(metadata: sa.MetaData, mode: str = "cdc") -> sa.Table:
    return sa.Table(
        "ledger",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("amount", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": mode}},
    )


_Make = Callable[[sa.MetaData, str], sa.Table]


def _models(slot: str, *tables: tuple[_Make, str]) -> sa.MetaData:
    metadata = sa.MetaData(naming_convention={"audit.slot": slot})
    for make, mode in tables:
        make(metadata, mode)
    return metadata


def _trail(engine: sa.Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(sql)]


def _execute(engine: sa.Engine, *statements: str) -> None:
    for statement in statements:  # one transaction each, as an application writes
        with engine.begin() as connection:
            connection.exec_driver_sql(statement)


def _run(source: sa.Engine, target: sa.Engine, consumers: list[Consumer], m: sa.MetaData) -> None:
    consumers.append(Consumer(source, target, metadata=m, timeout=120))
    consumers[-1].run_once()


def _wait_held_or_passed(source: sa.Engine, target: sa.Engine, metadata: sa.MetaData) -> None:
    """Until the running subscription's apply worker met the join and is held there, or went
    past it to the ``account`` row written after it (what it does with nothing holding it)."""
    account = "SELECT id FROM account_audit WHERE owner = 'after'"
    deadline = time.monotonic() + 60
    while not (cdc_status(source, metadata, target).apply_error_count or _trail(target, account)):
        assert time.monotonic() < deadline, "the apply worker neither waited nor went past"
        time.sleep(0.2)


@pytest.mark.parametrize("subscribed_before", [False, True])
def test_a_migration_switching_a_table_from_trigger_mode_keeps_changes_before_the_consumer_runs(
    tmp_path: Path,
    source: sa.Engine,
    target: sa.Engine,
    consumers: list[Consumer],
    subscribed_before: bool,
) -> None:
    slot = f"cdc_{uuid.uuid4().hex[:12]}"
    project = make_project(tmp_path, source.url)
    others: list[tuple[_Make, str]] = [(_ledger, "cdc")] if subscribed_before else []
    triggers = _models(slot, (_account, "row"), *others)
    create_slot(source, _models(slot, (_account, "cdc")))  # a migration cannot make it
    project.revision(triggers, "triggers")
    project.upgrade(triggers)
    if subscribed_before:
        _run(source, target, consumers, triggers)
    _execute(
        source,
        "INSERT INTO account VALUES (1, 'a', NULL), (2, 'b', NULL)",
        "UPDATE account SET balance = 1 WHERE id = 1",
    )
    switched = _models(slot, (_account, "cdc"), *others)
    migration = project.revision(switched, "switch")
    assert re.search(r"op\.record_cdc_join\(\s+'account',", migration)
    assert "# audit account: its baseline versions and join are history, kept" in migration
    project.upgrade(switched)
    _execute(
        source, "UPDATE account SET balance = 2 WHERE id = 1", "DELETE FROM account WHERE id = 2"
    )
    _run(source, target, consumers, switched)
    assert _trail(
        target, "SELECT audit_operation, id, owner, balance FROM account_audit ORDER BY audit_id"
    ) == [("B", 1, "a", 1), ("B", 2, "b", None), ("U", 1, "a", 2), ("D", 2, "b", None)]
    # The source keeps the trigger era, then the migration's baseline of every row, once.
    source_trail = "SELECT audit_operation FROM account_audit ORDER BY audit_id"
    assert [row[0] for row in _trail(source, source_trail)] == ["I", "I", "U", "B", "B"]


def test_a_new_table_a_migration_creates_records_its_inserts_before_the_consumer_runs(
    tmp_path: Path, source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    slot = f"cdc_{uuid.uuid4().hex[:12]}"
    project = make_project(tmp_path, source.url)
    first = _models(slot, (_account, "cdc"))
    create_slot(source, first)
    project.revision(first, "account")
    project.upgrade(first)
    _run(source, target, consumers, first)
    second = _models(slot, (_account, "cdc"), (_ledger, "cdc"))
    migration = project.revision(second, "ledger")
    published = re.search(r"op\.publish_audit_table\(\s+'ledger',", migration)
    joined = re.search(r"op\.record_cdc_join\(\s+'ledger',", migration)
    assert published and joined and published.start() < joined.start()
    assert "audit_cdc_context_joins" in project.offline_sql(second, "head")
    project.upgrade(second)
    # A consumer with the new models made the replica's tables and stopped before refreshing
    # the subscription: nothing but the join holds the apply worker at the ledger's changes.
    Replica(source, target, second).prepare()
    _execute(
        source,
        "INSERT INTO ledger VALUES (1, 10), (2, 20)",
        "UPDATE ledger SET amount = 11 WHERE id = 1",
        "INSERT INTO account VALUES (1, 'after', NULL)",
    )
    _wait_held_or_passed(source, target, second)
    _run(source, target, consumers, second)
    assert _trail(
        target, "SELECT audit_operation, id, amount FROM ledger_audit ORDER BY audit_id"
    ) == [("I", 1, 10), ("I", 2, 20), ("U", 1, 11)]


#: ``cdc_models`` with the table published before (install refuses models that lack a table of
#: the publication when they publish another: ``install.leaving``).
WITH_ACCOUNT = """\
import sqlalchemy as sa
from cdc_models import metadata

sa.Table(
    "account", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("balance", sa.Integer),
    info={"audit.options": {"enabled": True, "mode": "cdc"}},
)
"""


@pytest.mark.parametrize("subscribed_before", [False, True])
def test_the_cli_install_of_a_table_with_trigger_era_history_keeps_changes_before_the_consumer(
    tmp_path: Path,
    source: sa.Engine,
    target: sa.Engine,
    consumers: list[Consumer],
    subscribed_before: bool,
) -> None:
    slot = cdc_models.metadata.naming_convention["audit.slot"]
    assert isinstance(slot, str)
    if subscribed_before:
        started = _models(slot, (_account, "cdc"))
        started.create_all(source)
        _run(source, target, consumers, started)
    triggers = _models(slot, (_ledger, "row"))
    triggers.create_all(source)
    _execute(
        source,
        "INSERT INTO ledger VALUES (1, 10), (2, 20)",
        "UPDATE ledger SET amount = 11 WHERE id = 1",
    )
    (tmp_path / "cdc_with_account.py").write_text(WITH_ACCOUNT)
    models = "cdc_with_account:metadata" if subscribed_before else "cdc_models:metadata"
    installed = run("install", models, "--url", url_text(source.url), "--json", path=tmp_path)
    assert installed.returncode == 0, installed.stderr
    assert [capture["baseline_rows"] for capture in json.loads(installed.stdout)["cdc"]] == [2]
    _execute(
        source, "UPDATE ledger SET amount = 12 WHERE id = 1", "DELETE FROM ledger WHERE id = 2"
    )
    others: list[tuple[_Make, str]] = [(_account, "cdc")] if subscribed_before else []
    both = _models(slot, (_ledger, "cdc"), *others)
    _run(source, target, consumers, both)
    assert _trail(
        target, "SELECT audit_operation, id, amount FROM ledger_audit ORDER BY audit_id"
    ) == [("B", 1, 11), ("B", 2, 20), ("U", 1, 12), ("D", 2, 20)]


def test_the_downgrade_of_a_migration_leaving_cdc_records_the_join_it_publishes_again(
    tmp_path: Path, source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """Back into CDC after a trigger-mode era: the downgrade's ``op.publish_audit_table`` is
    followed by ``op.record_cdc_join`` as the upgrade that first published the table has it, so
    the changes made between the downgrade and the consumer's next run are all recorded."""
    slot = f"cdc_{uuid.uuid4().hex[:12]}"
    project = make_project(tmp_path, source.url)
    captured = _models(slot, (_account, "cdc"))
    create_slot(source, captured)
    project.revision(captured, "cdc")
    project.upgrade(captured)
    _execute(source, "INSERT INTO account VALUES (1, 'a', NULL)")
    _run(source, target, consumers, captured)
    triggers = _models(slot, (_account, "row"))
    migration = project.revision(triggers, "leave")
    downgrade = migration[migration.index("def downgrade") :]
    published = re.search(r"op\.publish_audit_table\(\s+'account',", downgrade)
    joined = re.search(r"op\.record_cdc_join\(\s+'account',", downgrade)
    assert published and joined and published.start() < joined.start()
    project.upgrade(triggers)
    _execute(
        source,
        "INSERT INTO account VALUES (2, 'b', NULL)",
        "UPDATE account SET owner = 'a2' WHERE id = 1",
    )
    project.downgrade(captured)
    _execute(
        source, "UPDATE account SET owner = 'a2!' WHERE id = 1", "DELETE FROM account WHERE id = 2"
    )
    _run(source, target, consumers, captured)
    assert _trail(
        target, "SELECT audit_operation, id, owner FROM account_audit ORDER BY audit_id"
    ) == [
        ("I", 1, "a"),
        ("B", 1, "a2"),
        ("B", 2, "b"),
        ("U", 1, "a2!"),
        ("D", 2, "b"),
    ]


def test_the_downgrade_of_a_table_no_longer_audited_says_where_its_join_belongs(
    tmp_path: Path, source: sa.Engine
) -> None:
    """The models of a migration that stops auditing a CDC table hold no declaration to write
    its ``op.record_cdc_join`` from: the downgrade says so right after publishing it again."""
    slot = f"cdc_{uuid.uuid4().hex[:12]}"
    project = make_project(tmp_path, source.url)
    captured = _models(slot, (_account, "cdc"), (_ledger, "cdc"))
    create_slot(source, captured)
    project.revision(captured, "cdc")
    project.upgrade(captured)
    off = _models(slot, (_ledger, "cdc"))
    sa.Table(
        "account",
        off,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": False, "mode": "cdc"}},
    )
    migration = project.revision(off, "off")
    downgrade = migration[migration.index("def downgrade") :]
    published = re.search(r"op\.publish_audit_table\(\s+'account',", downgrade)
    assert published is not None
    said = "# audit account: published again above, but these models no longer audit it"
    assert said in downgrade[published.end() :]
    assert "op.record_cdc_join(" not in downgrade
    project.upgrade(off)
    project.downgrade(captured)  # the comment runs as nothing; the table is published again
    with source.connect() as connection:
        assert connection.exec_driver_sql(
            "SELECT count(*) FROM pg_publication_tables WHERE tablename = 'account'"
        ).scalar() == 1
