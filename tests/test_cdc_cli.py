"""The command line over change-data-capture: ``install`` captures a CDC table fully."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from cli_run import run, url_text

MODELS = "cdc_models:metadata"
SLOT = "cdc_cli_models"


@pytest.fixture
def plain(logical_database_url: URL) -> Iterator[sa.Engine]:
    """The source with ``ledger`` created by hand, holding rows, nothing audited yet."""
    engine = sa.create_engine(logical_database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE ledger (id integer PRIMARY KEY, amount integer)")
        connection.exec_driver_sql("INSERT INTO ledger VALUES (1, 10), (2, 20)")
    yield engine
    engine.dispose()


def _scalars(engine: sa.Engine, query: str) -> list[object]:
    with engine.connect() as connection:
        return list(connection.exec_driver_sql(query).scalars())


def test_install_creates_the_publication_slot_and_context_table_of_a_cdc_table(
    plain: sa.Engine,
) -> None:
    url = url_text(plain.url)
    before = run("cdc", "run", MODELS, "--source", url, "--once")
    assert before.returncode == 2
    assert f"slot '{SLOT}' does not exist" in before.stderr and "install" in before.stderr
    assert "internal error" not in before.stderr
    installed = run("install", MODELS, "--url", url, "--json")
    assert installed.returncode == 0, installed.stderr
    assert json.loads(installed.stdout)["cdc"] == [
        {"slot": SLOT, "publication": "audit_cdc", "tables": ["public.ledger"], "baseline_rows": 2}
    ]
    assert _scalars(plain, "SELECT slot_name FROM pg_replication_slots") == [SLOT]
    assert _scalars(
        plain, "SELECT tablename FROM pg_publication_tables WHERE pubname = 'audit_cdc'"
    ) == ["ledger"]
    assert _scalars(plain, "SELECT to_regclass('audit_cdc_context') IS NOT NULL") == [True]
    with plain.begin() as connection:  # another program, after the install
        connection.exec_driver_sql("UPDATE ledger SET amount = 11 WHERE id = 1")
    once = run("cdc", "run", MODELS, "--source", url, "--once", "--json")
    assert once.returncode == 0, once.stderr
    assert json.loads(once.stdout) == {"written": 1}
    trail = "SELECT audit_operation || id || amount FROM ledger_audit ORDER BY audit_id"
    assert _scalars(plain, trail) == ["B110", "B220", "U111"]
    removed = run("uninstall", MODELS, "--url", url)
    assert removed.returncode == 0, removed.stderr
    published = "SELECT tablename FROM pg_publication_tables WHERE pubname = 'audit_cdc'"
    assert _scalars(plain, published) == []


def test_the_ddl_script_of_a_cdc_table_creates_its_slot_first_and_publishes_it() -> None:
    script = run("ddl", MODELS, "--no-tables")
    assert script.returncode == 0, script.stderr
    slot = script.stdout.index("pg_create_logical_replication_slot")
    assert slot < script.stdout.index("ADD TABLE")
