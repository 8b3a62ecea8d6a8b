"""``demo`` end to end: on its own embedded server, and against a server it must leave clean."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from cli_run import ERROR_PREFIX, run, url_text

CATALOG = sa.text(
    """
    SELECT (SELECT array_agg(nspname::text ORDER BY nspname) FROM pg_namespace),
           (SELECT count(*) FROM pg_class), (SELECT count(*) FROM pg_proc),
           (SELECT count(*) FROM pg_trigger)
    """
)


def catalog(engine: sa.Engine) -> tuple[Any, ...]:
    with engine.connect() as connection:
        return tuple(connection.execute(CATALOG).one())


def who(versions: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [
        (v["operation"], v["context"]["username"], v["context"]["request_id"]) for v in versions
    ]


def test_demo_on_its_own_server_shows_history_diff_as_of_and_restore() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Traceback" not in result.stderr
    assert "History of orders 1 (each update with its diff):" in out
    assert "refused, no username: audit setting audit.username is required" in out
    assert "total: 68.00 -> 106.00" in out
    assert "order_items now matches what it was before req-1003." in out
    assert "CREATE" not in out  # the DDL only with --sql
    assert len(out.splitlines()) < 45


def test_demo_against_a_server_leaves_nothing_behind(database_url: URL, engine: sa.Engine) -> None:
    before = catalog(engine)
    result = run("demo", "--url", url_text(database_url), "--json")
    assert result.returncode == 0, result.stderr
    assert catalog(engine) == before
    document = json.loads(result.stdout)
    assert document["schema"].startswith("audit_demo_")
    assert "sql" not in document

    order = document["history"]
    assert (order["table"], order["key"]) == ("orders", [1])
    assert who(order["versions"]) == [
        ("INSERT", "alice", "req-1001"),
        ("UPDATE", "bob", "req-1002"),
        ("UPDATE", "bob", "req-1003"),
        ("UPDATE", "carol", "req-1004"),
    ]
    assert [v["changes"] for v in order["versions"][1:]] == [
        {"total": ["68.00", "106.00"]},
        {"total": ["106.00", "57.00"]},
        {"total": ["57.00", "106.00"]},
    ]
    as_of = document["as_of"]
    assert [(r["line_no"], r["sku"], r["quantity"]) for r in as_of["rows"]] == [
        (1, "KEYBOARD", 1),
        (2, "MOUSE", 3),
    ]
    assert as_of["at"] < document["history"]["versions"][2]["at"]
    assert document["now"] == as_of["rows"]
    restored = document["restored"]
    assert (restored["table"], restored["key"]) == ("order_items", [1, 1])
    assert who(restored["versions"]) == [
        ("INSERT", "alice", "req-1001"),
        ("DELETE", "bob", "req-1003"),
        ("INSERT", "carol", "req-1004"),
    ]
    assert restored["versions"][2]["values"] == restored["versions"][0]["values"]
    refused = [step for step in document["steps"] if step["username"] is None]
    assert len(refused) == 1
    assert "audit.username is required" in refused[0]["what"]


def test_demo_sql_shows_the_ddl(database_url: URL) -> None:
    result = run("demo", "--url", url_text(database_url), "--sql")
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE audit_demo_" in result.stdout
    assert "CREATE OR REPLACE TRIGGER" in result.stdout


def test_demo_drops_its_schema_when_it_fails_halfway(database_url: URL, engine: sa.Engine) -> None:
    with engine.begin() as connection:  # creating the audit functions will fail
        connection.execute(sa.text("DROP EXTENSION plpgsql"))
    before = catalog(engine)
    result = run("demo", "--url", url_text(database_url))
    assert result.returncode == 2
    assert result.stderr == f'{ERROR_PREFIX}language "plpgsql" does not exist\n'
    assert catalog(engine) == before
