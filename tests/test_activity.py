"""``activity()``: who did what across every audited table, in one select, on a real server."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session, registry

import activity_models as models
from cli_run import ERROR_PREFIX, run, run_on_terminal, url_text
from sqlalchemy_postgresql_audit import AuditError, AuditSettingError, activity, set_session_vars

CASE_A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
CASE_B = uuid.UUID("00000000-0000-4000-8000-00000000000b")
TARGET = "activity_models:metadata"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def clock(engine: sa.Engine) -> datetime.datetime:
    with engine.connect() as connection:
        moment: datetime.datetime = connection.execute(
            sa.select(sa.func.clock_timestamp())
        ).scalar_one()
    return moment


@pytest.fixture
def trail(engine: sa.Engine) -> dict[str, datetime.datetime]:
    return write_trail(engine)


def write_trail(engine: sa.Engine) -> dict[str, datetime.datetime]:
    """Three users' transactions over the four tables; the moments between them."""
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE SCHEMA " + models.SCHEMA))
    models.metadata.create_all(engine)
    accounts, line_items, notes, ledger = (
        models.accounts,
        models.line_items,
        models.notes,
        models.ledger,
    )
    with engine.begin() as connection:
        set_session_vars(connection, username="alice", case_id=CASE_A)
        connection.execute(accounts.insert().values(id=1, owner="alice"))
        connection.execute(line_items.insert().values(order_id=1, line=1, qty=Decimal("2.50")))
        connection.execute(notes.insert().values(id=1, body="first"))
        connection.execute(ledger.insert().values(id=1, amount=10))
    after_alice = clock(engine)
    with engine.begin() as connection:
        set_session_vars(connection, username="bob", case_id=CASE_B, shard=3)
        connection.execute(accounts.update().values(owner="bob"))
        connection.execute(line_items.update().values(qty=Decimal("3.75")))
        connection.execute(ledger.update().values(amount=20))
    after_bob = clock(engine)
    with engine.begin() as connection:
        set_session_vars(connection, username="carol")
        connection.execute(line_items.delete())
        connection.execute(notes.update().values(body="second"))
        connection.execute(sa.text("TRUNCATE accounts"))
    return {"after_alice": after_alice, "after_bob": after_bob}


def rows(engine: sa.Engine, query: sa.Select[Any]) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def summary(found: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(table, operation, username) of each change, sorted: one transaction's changes share a
    timestamp, so their relative order between tables is not part of the contract."""
    return sorted((r["audit_table"], r["audit_operation"], r["username"]) for r in found)


def test_every_change_of_every_table_in_one_select(
    engine: sa.Engine, trail: dict[str, datetime.datetime]
) -> None:
    found = rows(engine, activity(models.metadata))
    assert summary(found) == sorted(
        [
            ("books.ledger", "I", "alice"),
            ("public.accounts", "I", "alice"),
            ("public.line_items", "I", "alice"),
            ("public.notes", "I", None),
            ("books.ledger", "U", "bob"),
            ("public.accounts", "U", "bob"),
            ("public.line_items", "U", "bob"),
            ("public.line_items", "D", "carol"),
            ("public.notes", "U", None),
            ("public.accounts", "T", "carol"),
        ]
    )
    order = [(r["audit_operation_timestamp"], r["audit_table"], r["audit_id"]) for r in found]
    assert order == sorted(order)
    assert list(found[0]) == [
        "audit_table",
        "audit_key",
        "audit_id",
        "audit_operation",
        "audit_operation_timestamp",
        "audit_current_user",
        "username",
        "case_id",
        "shard",
        "audit_changed_columns",
    ]
    assert all(r["audit_current_user"] for r in found)
    # The legacy table's naive timestamps come back aware, comparable with the others.
    assert all(r["audit_operation_timestamp"].tzinfo is not None for r in found)


def test_the_key_is_jsonb_of_the_key_columns(
    engine: sa.Engine, trail: dict[str, datetime.datetime]
) -> None:
    found = rows(engine, activity(models.metadata))
    keys = {(r["audit_table"], r["audit_operation"]): r["audit_key"] for r in found}
    assert keys["public.line_items", "U"] == {"order_id": 1, "line": 1}
    assert keys["public.accounts", "I"] == {"id": 1}
    assert keys["books.ledger", "U"] == {"id": 1}
    assert keys["public.accounts", "T"] is None  # a TRUNCATE marker is no row


def test_changed_columns_where_captured_and_null_elsewhere(
    engine: sa.Engine, trail: dict[str, datetime.datetime]
) -> None:
    found = rows(engine, activity(models.metadata))
    changed = {(r["audit_table"], r["audit_operation"]): r["audit_changed_columns"] for r in found}
    assert changed["public.accounts", "U"] == ["owner"]
    assert changed["public.line_items", "U"] is None  # line_items does not capture it


def test_filter_by_a_setting_reads_only_the_tables_that_record_it(
    engine: sa.Engine, trail: dict[str, datetime.datetime]
) -> None:
    query = activity(models.metadata, username="alice")
    assert summary(rows(engine, query)) == [
        ("books.ledger", "I", "alice"),
        ("public.accounts", "I", "alice"),
        ("public.line_items", "I", "alice"),
    ]
    compiled = str(query.compile(engine))
    assert "notes_audit" not in compiled  # notes records no username: no branch at all
    assert compiled.count("audit_username =") == 3  # the filter sits in every branch
    # The statement is built once per shape; each call binds its own values.
    bob = rows(engine, activity(models.metadata, username="bob"))
    assert {(r["username"], r["audit_operation"]) for r in bob} == {("bob", "U")}
    assert len(rows(engine, query)) == 3


def test_none_finds_changes_recorded_without_the_setting(
    engine: sa.Engine, trail: dict[str, datetime.datetime]
) -> None:
    found = rows(engine, activity(models.metadata, username=None))
    assert summary(found) == [("public.notes", "I", None), ("public.notes", "U", None)]
    # "" is what set_session_vars records as NULL, so it asks for the same.
    assert rows(engine, activity(models.metadata, username="")) == found


def test_a_setting_of_different_types_is_compared_in_each_tables_type(
    engine: sa.Engine, trail: dict[str, datetime.datetime]
) -> None:
    found = rows(engine, activity(models.metadata, case_id=CASE_B))
    assert summary(found) == [("public.accounts", "U", "bob"), ("public.line_items", "U", "bob")]
    # UUID in accounts, VARCHAR in line_items: the union shows both as text.
    assert {r["case_id"] for r in found} == {str(CASE_B)}
    # Text no UUID column can hold still searches the text column, and finds nothing there.
    assert rows(engine, activity(models.metadata, case_id="not-a-uuid")) == []


def test_a_setting_only_one_table_records(
    engine: sa.Engine, trail: dict[str, datetime.datetime]
) -> None:
    found = rows(engine, activity(models.metadata, shard=3, username="bob"))
    assert summary(found) == [("public.line_items", "U", "bob")]
    assert found[0]["shard"] == 3  # one declared type: kept


def test_a_time_window(engine: sa.Engine, trail: dict[str, datetime.datetime]) -> None:
    since, until = trail["after_alice"], trail["after_bob"]
    assert summary(rows(engine, activity(models.metadata, since=since, until=until))) == [
        ("books.ledger", "U", "bob"),
        ("public.accounts", "U", "bob"),
        ("public.line_items", "U", "bob"),
    ]
    later = rows(engine, activity(models.metadata, since=until))
    assert {r["username"] for r in later} == {"carol", None}
    both = rows(engine, activity(models.metadata, since=since))
    assert {r["username"] for r in both} == {"bob", "carol", None}
    before = rows(engine, activity(models.metadata, until=since, username="alice"))
    assert len(before) == 3


def test_tables_and_orm_classes_compose(
    engine: sa.Engine, trail: dict[str, datetime.datetime]
) -> None:
    class Account:
        pass

    registry().map_imperatively(Account, models.accounts)
    query = activity([Account, models.notes])
    newest = query.order_by(None).order_by(query.selected_columns.audit_id.desc()).limit(1)
    with Session(engine) as session:
        picked = session.execute(query.where(query.selected_columns.audit_operation == "U")).all()
        assert [(r.audit_table, r.username) for r in picked] == [
            ("public.accounts", "bob"),
            ("public.notes", None),
        ]
        assert session.execute(newest).one().audit_id == 3


def test_async_connections_and_sessions(
    async_database_url: URL, engine: sa.Engine, trail: dict[str, datetime.datetime]
) -> None:
    async def scenario() -> list[tuple[Any, ...]]:
        async_engine = create_async_engine(async_database_url)
        try:
            async with AsyncSession(async_engine) as session:
                result = await session.execute(activity(models.metadata, case_id=CASE_B))
                return sorted((r.audit_table, r.case_id) for r in result)
        finally:
            await async_engine.dispose()

    assert asyncio.run(scenario()) == [
        ("public.accounts", str(CASE_B)),
        ("public.line_items", str(CASE_B)),
    ]


def test_an_index_on_a_setting_serves_its_branch(
    engine: sa.Engine, trail: dict[str, datetime.datetime]
) -> None:
    audit = models.accounts.info["audit.table"]
    index = sa.Index(
        "accounts_audit_by_username", audit.c.audit_username, audit.c.audit_operation_timestamp
    )
    given = activity(models.metadata, username="alice", since=trail["after_alice"])
    every = activity(models.metadata)
    # A condition added to the select reaches the branches too: their column types agree.
    added = every.where(every.selected_columns.username == "alice")
    try:
        with engine.begin() as connection:
            index.create(connection)
            connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
            for query in (given, added):
                compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
                plan = connection.execute(sa.text(f"EXPLAIN (FORMAT JSON) {compiled}"))
                assert '"Index Name": "accounts_audit_by_username"' in json.dumps(plan.scalar_one())
    finally:
        audit.indexes.discard(index)


def test_refusals_name_what_is_wrong(engine: sa.Engine) -> None:
    with pytest.raises(AuditSettingError, match="'nosuch'"):
        activity(models.metadata, nosuch="x")
    with pytest.raises(AuditSettingError, match="'shard'"):
        activity(models.metadata, shard="many")
    with pytest.raises(AuditError, match="'since' is a naive datetime"):
        activity(models.metadata, since=datetime.datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="'until' must be a datetime"):
        activity(models.metadata, until="yesterday")  # type: ignore[arg-type]
    with pytest.raises(AuditError, match="no audited table"):
        activity(sa.MetaData())
    plain = sa.Table("plain", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    with pytest.raises(AuditError, match="table 'plain' is not audited"):
        activity([plain])
    clash = sa.Table(
        "clash",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        info={
            "audit.options": {
                "enabled": True,
                "session_settings": [sa.Column("audit_key", sa.String)],
            }
        },
    )
    with pytest.raises(AuditError, match="table 'clash' declares a session setting named"):
        activity(clash)
    # Only the settings of the tables given count: notes records none.
    with pytest.raises(AuditSettingError, match=r"'username'.*\[\]"):
        activity(models.notes, username="alice")


def cli(*args: str) -> Any:
    result = run("activity", *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def test_cli_plain_from_the_models(database_url: URL, trail: dict[str, datetime.datetime]) -> None:
    out = cli(TARGET, "--where", "username=bob", "--url", url_text(database_url))
    lines = out.splitlines()
    assert lines[0] == "3 changes where username=bob"
    assert lines[1].split() == [
        "at", "table", "key", "operation", "user", "username", "case_id", "shard", "changed",
    ]  # fmt: skip
    assert sorted(line.split()[2:] for line in lines[2:]) == [
        ["books.ledger", "id=1", "UPDATE", "postgres", "bob", "-", "-", "-"],
        ["public.accounts", "id=1", "UPDATE", "postgres", "bob", str(CASE_B), "-", "owner"],
        ["public.line_items", "order_id=1,line=1", "UPDATE", "postgres", "bob", str(CASE_B),
         "3", "-"],
    ]  # fmt: skip
    # A duration counts back from the server's clock: nothing is older than an hour.
    older = cli(TARGET, "--until", "1h", "--url", url_text(database_url)).splitlines()
    assert len(older) == 1 and older[0].startswith("no change recorded until 20")
    last = cli("--limit", "1", "--where", "username=bob", "--url", url_text(database_url))
    assert last.splitlines()[0] == "the last 1 change where username=bob"


def test_cli_on_a_terminal_is_a_rich_table(
    database_url: URL, trail: dict[str, datetime.datetime]
) -> None:
    code, screen = run_on_terminal(
        "activity", "--where", "shard=3", "--url", url_text(database_url)
    )
    assert code == 0, screen
    assert ANSI.search(screen)
    plain = ANSI.sub("", screen)
    assert "1 change where shard=3" in plain and "order_id=1,line=1" in plain


def test_cli_json_without_models(database_url: URL, trail: dict[str, datetime.datetime]) -> None:
    url = url_text(database_url)
    document = json.loads(cli("--where", "case_id=" + str(CASE_A), "--since", "1h", "--url", url,
                              "--json"))  # fmt: skip
    assert document["where"] == {"case_id": str(CASE_A)}
    changes = document["changes"]
    assert sorted((c["table"], c["operation"]) for c in changes) == [
        ("public.accounts", "INSERT"),
        ("public.line_items", "INSERT"),
    ]
    item = next(c for c in changes if c["table"] == "public.line_items")
    assert item["key"] == {"order_id": 1, "line": 1}
    assert item["context"] == {"username": "alice", "case_id": str(CASE_A), "shard": None}
    # Reflected from the database, the answer is the models' answer.
    with_models = json.loads(cli(TARGET, "--where", "case_id=" + str(CASE_A), "--url", url,
                                 "--json"))  # fmt: skip
    assert with_models["changes"] == changes
    # --limit keeps the most recent changes; --table one table.
    every = json.loads(cli("--url", url, "--json"))["changes"]
    assert len(every) == 10
    assert json.loads(cli("--limit", "2", "--url", url, "--json"))["changes"] == every[-2:]
    only = json.loads(cli("--table", "books.ledger", "--url", url, "--json"))["changes"]
    assert [(c["table"], c["operation"]) for c in only] == [
        ("books.ledger", "INSERT"),
        ("books.ledger", "UPDATE"),
    ]
    future = json.loads(cli("--since", "2999-01-01T00:00:00Z", "--url", url, "--json"))
    assert future["changes"] == []


def test_cli_errors_are_one_line(database_url: URL, trail: dict[str, datetime.datetime]) -> None:
    url = url_text(database_url)
    for args, message in (
        (["--where", "nosuch=1"], "unknown session setting(s) ['nosuch']"),
        (["--where", "username"], "--where 'username' is not SETTING=VALUE"),
        (["--since", "yesterday"], "--since: TIME 'yesterday' is not ISO 8601"),
        (["--since", "2026-01-01T00:00:00"], "has no time zone"),
        (["--table", "nowhere"], "no audited table 'nowhere'"),
        ([url], "give the database as --url"),
    ):
        result = run("activity", *args, "--url", url)
        assert result.returncode == 2, (args, result.stdout)
        assert result.stderr.startswith(ERROR_PREFIX) and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1


def test_the_activity_benchmark_runs_and_reports_plans(database_url: URL, tmp_path: Path) -> None:
    bench = Path(__file__).resolve().parents[1] / "bench" / "activity.py"
    command = [sys.executable, str(bench), "--url", url_text(database_url), "--rows", "4000",
               "--tables", "2", "--samples", "1", "--output-dir", str(tmp_path)]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    result = json.loads((tmp_path / "activity.json").read_text())
    newest = result["designs"]["btree_time"]["newest 50"]
    assert newest["rows"] == 50
    assert newest["shape"] == "Limit > Merge Append"
    assert newest["scans"] == ["Index Scan (t0_audit_by_time)", "Index Scan (t1_audit_by_time)"]
    request = result["designs"]["settings"]["one request"]
    assert request["rows"] == 10  # 5 changes in each of the 2 tables
    assert "| btree_time | newest 50 | 50 |" in (tmp_path / "activity.md").read_text()
