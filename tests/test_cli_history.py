"""``history``, ``as-of``, ``baseline`` and ``grant``, driven as subprocesses against a real server."""

from __future__ import annotations

import datetime
import json
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

import cli_models
from cli_run import ERROR_PREFIX, run, run_on_terminal, url_text
from sqlalchemy_postgresql_audit import set_session_vars

TARGET = "cli_models:metadata"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def ok(*args: str) -> str:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def as_json(*args: str) -> Any:
    return json.loads(ok(*args, "--json"))


def write(engine: sa.Engine, username: str, *statements: sa.Executable) -> None:
    with engine.begin() as connection:
        set_session_vars(connection, username=username)
        for statement in statements:
            connection.execute(statement)


def now(engine: sa.Engine) -> datetime.datetime:
    with engine.connect() as connection:
        moment: datetime.datetime = connection.execute(
            sa.select(sa.func.clock_timestamp())
        ).scalar_one()
        return moment


@pytest.fixture
def trail(database_url: URL, engine: sa.Engine) -> dict[str, Any]:
    """Audited projects and tasks with a short history; the moment between its two parts."""
    with engine.begin() as connection:
        for table in (cli_models.projects, cli_models.tasks, cli_models.labels):
            table.create(connection)
    url = url_text(database_url)
    ok("install", TARGET, "--url", url)
    projects, tasks = cli_models.projects, cli_models.tasks
    write(
        engine,
        "alice",
        projects.insert().values(id=1, name="Apollo"),
        tasks.insert().values(project_id=1, number=2, title="draft"),
    )
    between = now(engine)
    write(
        engine,
        "bob",
        tasks.update().where(tasks.c.number == 2).values(title="final"),
        projects.update().values(name="Apollo 11"),
    )
    write(engine, "carol", tasks.delete())
    return {"url": url, "between": between}


def test_history_reflects_the_table_when_no_models_are_given(trail: dict[str, Any]) -> None:
    document = as_json("history", "tasks", "project_id=1,number=2", "--url", trail["url"])
    assert (document["table"], document["key"]) == ("public.tasks", {"project_id": 1, "number": 2})
    versions = document["versions"]
    assert [(v["operation"], v["context"]["username"]) for v in versions] == [
        ("INSERT", "alice"),
        ("UPDATE", "bob"),
        ("DELETE", "carol"),
    ]
    assert versions[1]["changes"] == {"title": ["draft", "final"]}
    assert versions[1]["values"] == {"project_id": 1, "number": 2, "title": "final"}
    assert versions[0]["changes"]["title"] == [None, "draft"]
    assert versions[2]["changes"]["title"] == ["final", None]
    assert versions[0]["at"] < versions[1]["at"] < versions[2]["at"]
    # The models give the same answer, also when named by a declarative base's module.
    with_models = as_json(
        "history", TARGET, "tasks", "project_id=1,number=2", "--url", trail["url"]
    )
    assert with_models == document


def test_history_prints_one_line_per_version_with_its_diff(trail: dict[str, Any]) -> None:
    out = ok("history", "projects", "1", "--url", trail["url"])
    lines = out.splitlines()
    assert lines[0] == "public.projects id=1: 2 versions"
    assert lines[1].split() == ["audit_id", "at", "operation", "user", "username", "changes"]
    assert lines[2].endswith("INSERT     postgres  alice     id=1, name=Apollo")
    assert lines[3].endswith("UPDATE     postgres  bob       name: Apollo -> Apollo 11")
    assert len(lines) == 4


def test_history_on_a_terminal_is_a_rich_table(trail: dict[str, Any]) -> None:
    code, screen = run_on_terminal("history", "projects", "1", "--url", trail["url"])
    assert code == 0, screen
    assert ANSI.search(screen)
    assert "name: Apollo -> Apollo 11" in ANSI.sub("", screen)


def test_history_of_a_row_never_written(trail: dict[str, Any]) -> None:
    assert ok("history", "projects", "7", "--url", trail["url"]) == (
        "no version of public.projects id=7 is recorded\n"
    )
    assert as_json("history", "projects", "7", "--url", trail["url"])["versions"] == []


def role(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        return str(connection.execute(sa.text("SELECT current_user")).scalar_one())


def test_as_of_a_moment_for_the_table_and_for_one_row(
    trail: dict[str, Any], engine: sa.Engine
) -> None:
    between = trail["between"].astimezone(datetime.timezone.utc)
    at = between.isoformat().replace("+00:00", "Z")
    document = as_json("as-of", "tasks", at, "--url", trail["url"])
    assert document["rows"] == [{"project_id": 1, "number": 2, "title": "draft"}]
    assert datetime.datetime.fromisoformat(document["at"]) == between
    assert document["key"] is None
    one = as_json("as-of", TARGET, "projects", at, "1", "--url", trail["url"])
    assert (one["key"], one["rows"]) == ({"id": 1}, [{"id": 1, "name": "Apollo"}])
    later = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=5)))
    assert ok("as-of", "tasks", later.isoformat(), "--url", trail["url"]) == (
        f"public.tasks had no rows at {later.isoformat()}\n"
    )
    text = ok("as-of", "projects", later.isoformat(), "--url", trail["url"])
    head, header, row = text.splitlines()
    assert head == f"public.projects as of {later.isoformat()}: 1 row"
    assert header.split() == ["id", "name", "changed", "at", "operation", "user", "username"]
    assert row.split()[:3] == ["1", "Apollo", "11"] and row.split()[-3:-1] == [
        "UPDATE",
        role(engine),
    ]
    assert row.split()[-1] == "bob"  # who made the row's last change


def test_as_of_says_who_made_each_rows_last_change(
    trail: dict[str, Any], engine: sa.Engine
) -> None:
    document = as_json("as-of", "tasks", trail["between"].isoformat(), "--url", trail["url"])
    [change] = document["last_changes"]
    assert (change["operation"], change["context"]) == ("INSERT", {"username": "alice"})
    assert change["current_user"] == role(engine)
    later = datetime.datetime.now(datetime.timezone.utc).isoformat()
    document = as_json("as-of", "projects", later, "1", "--url", trail["url"])
    assert document["rows"] == [{"id": 1, "name": "Apollo 11"}]
    [change] = document["last_changes"]
    assert (change["operation"], change["context"]) == ("UPDATE", {"username": "bob"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "nope", "1"], "no table 'nope' in the database (schema public)"),
        (["history", "labels", "1"], "table 'labels' is not audited in the database"),
        (["history", "tasks_audit", "1"], "table 'tasks_audit' is an audit table"),
        (["history", TARGET, "nope", "1"], "cli_models:metadata has no table 'nope', and no"),
        (["history", "my.table", "1"], 'a table whose name holds a dot is written "my.table"'),
        (["history", '"unclosed', "1"], "table '\"unclosed' is not NAME, SCHEMA.NAME"),
        (
            ["history", "projects", "abc"],
            "table 'projects': key column 'id' is INTEGER, and 'abc' is not a int",
        ),
        (
            ["history", "tasks", "1"],
            "table 'tasks': key '1' is not project_id=...,number=... (its primary key)",
        ),
        (["history", "tasks", "project_id=1"], "is not project_id=...,number=..."),
        (["history", "tasks", "project_id=1,colour=2"], "is not project_id=...,number=..."),
        (["history", "projects"], "history takes [MODULE:METADATA] TABLE PK, got 'projects'"),
        (
            ["as-of", "projects", "2026-12-01T10:00:00"],
            "TIME '2026-12-01T10:00:00' has no time zone: add one",
        ),
        (["as-of", "projects", "yesterday"], "TIME 'yesterday' is not ISO 8601"),
        (["as-of", "projects", "2026-12-01T10:00:00Z", "abc"], "'abc' is not a int"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    trail: dict[str, Any], args: list[str], message: str
) -> None:
    result = run(*args, "--url", trail["url"])
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(ERROR_PREFIX)
    assert message in result.stderr


def test_reflection_of_quoted_names_a_uuid_key_and_captures(
    database_url: URL, engine: sa.Engine
) -> None:
    """A schema and table that need quoting, a key typed UUID, capture columns in the context."""
    schema = 'Sales "Dept"'
    table = sa.Table(
        "Order Items",
        sa.MetaData(),
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("amount", sa.Numeric(10, 2)),
        schema=schema,
        info={
            "audit.options": {
                "enabled": True,
                "mode": "row",
                "capture": ["transaction_id"],
                "session_settings": [sa.Column("request_id", sa.String)],
            }
        },
    )
    with engine.begin() as connection:
        connection.execute(sa.schema.CreateSchema(schema))
    table.metadata.create_all(engine)
    key = uuid.uuid4()
    with engine.begin() as connection:
        set_session_vars(connection, request_id="r-1")
        connection.execute(table.insert().values(id=key, amount=Decimal("1.50")))
        connection.execute(table.update().values(amount=Decimal("2.25")))
    url = url_text(database_url)
    document = as_json("history", f"{schema}.Order Items", str(key), "--url", url)
    assert document["table"] == 'Sales "Dept".Order Items'
    assert document["key"] == {"id": str(key)}
    versions = document["versions"]
    assert [v["changes"] for v in versions][1] == {"amount": ["1.50", "2.25"]}
    assert versions[0]["context"]["request_id"] == "r-1"
    assert versions[0]["context"]["transaction_id"] == versions[1]["context"]["transaction_id"]
    result = run("history", f"{schema}.Order Items", "not-a-uuid", "--url", url)
    assert result.returncode == 2
    assert "key column 'id' is UUID, and 'not-a-uuid' is not a UUID" in result.stderr


def test_as_of_a_legacy_timestamp_table_reads_the_time_in_the_sessions_zone(
    database_url: URL, engine: sa.Engine
) -> None:
    table = sa.Table(
        "legacy",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("state", sa.String),
        info={"audit.options": {"enabled": True, "legacy_timestamp": True}},
    )
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, state="old"))
    between = now(engine)
    with engine.begin() as connection:
        connection.execute(table.update().values(state="new"))
    url = url_text(database_url)
    shifted = between.astimezone(datetime.timezone(datetime.timedelta(hours=-7))).isoformat()
    document = as_json("as-of", "legacy", shifted, "--url", url)
    assert document["rows"] == [{"id": 1, "state": "old"}]


def test_naive_time_is_refused_before_connecting() -> None:
    result = run("as-of", "projects", "2026-12-01 10:00", "--url", "postgresql://u@127.0.0.1:1/x")
    assert result.returncode == 2
    assert result.stderr == (
        f"{ERROR_PREFIX}TIME '2026-12-01 10:00' has no time zone: add one "
        "(for example 2026-12-01T10:00:00+00:00 or Z for UTC)\n"
    )


def test_history_kept_after_uninstalling_reads_with_and_without_models(
    trail: dict[str, Any],
) -> None:
    ok("uninstall", TARGET, "--url", trail["url"])
    for models in ([], [TARGET], ["cli_models:retired"]):  # retired: projects no longer audited
        kept = as_json("history", *models, "projects", "1", "--url", trail["url"])
        assert [v["operation"] for v in kept["versions"]] == ["INSERT", "UPDATE"]
        assert [v["context"]["username"] for v in kept["versions"]] == ["alice", "bob"]
        assert kept["versions"][1]["changes"] == {"name": ["Apollo", "Apollo 11"]}
    rows = as_json("as-of", "projects", trail["between"].isoformat(), "--url", trail["url"])
    assert rows["rows"] == [{"id": 1, "name": "Apollo"}]


def test_history_of_a_dropped_table_reads_from_its_kept_audit_table(
    trail: dict[str, Any], engine: sa.Engine
) -> None:
    ok("uninstall", TARGET, "--url", trail["url"])
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE tasks"))
    kept = as_json("history", "tasks", "project_id=1,number=2", "--url", trail["url"])
    assert [v["operation"] for v in kept["versions"]] == ["INSERT", "UPDATE", "DELETE"]
    assert kept["versions"][1]["changes"] == {"title": ["draft", "final"]}
    assert [v["context"]["username"] for v in kept["versions"]] == ["alice", "bob", "carol"]


def test_the_api_reads_a_dropped_tables_kept_history(
    trail: dict[str, Any], engine: sa.Engine
) -> None:
    from sqlalchemy_postgresql_audit import as_of, changes, history
    from sqlalchemy_postgresql_audit.install.kept import reflect_audited

    ok("uninstall", TARGET, "--url", trail["url"])
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE tasks"))
        tasks = reflect_audited(connection, "tasks")
        key = {"project_id": 1, "number": 2}
        assert [row.audit_operation for row in connection.execute(history(tasks, key))] == [
            "I",
            "U",
            "D",
        ]
        diff = connection.execute(changes(tasks, key)).all()
        assert ("U", "title", "draft", "final") in [
            (row.audit_operation, row.column, row.before, row.after) for row in diff
        ]
        state = connection.execute(as_of(tasks, trail["between"])).mappings().all()
        assert [dict(row) for row in state] == [{"project_id": 1, "number": 2, "title": "draft"}]


def test_a_one_column_text_key_is_taken_as_typed_and_dotted_names_are_quoted(
    database_url: URL, engine: sa.Engine
) -> None:
    metadata = sa.MetaData()
    audited = {"audit.options": {"enabled": True}}
    codes = sa.Table(
        "codes", metadata, sa.Column("code", sa.String, primary_key=True), info=audited
    )
    dotted = sa.Table(
        "my.table",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("state", sa.String),
        info=audited,
    )
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(codes.insert(), [{"code": "x"}, {"code": "code=x"}])
        connection.execute(dotted.insert().values(id=1, state="new"))
    url = url_text(database_url)
    document = as_json("history", "codes", "code=x", "--url", url)
    assert document["key"] == {"code": "code=x"}
    assert [v["values"]["code"] for v in document["versions"]] == ["code=x"]
    assert as_json("history", "codes", "x", "--url", url)["key"] == {"code": "x"}
    for name in ('"my.table"', 'public."my.table"'):
        versions = as_json("history", name, "1", "--url", url)["versions"]
        assert [v["values"] for v in versions] == [{"id": 1, "state": "new"}]
    # On an integer key, id=1 cannot be the value itself: it is read as the col=value form.
    assert as_json("history", '"my.table"', "id=1", "--url", url)["key"] == {"id": 1}


def test_baseline_records_rows_older_than_auditing_once(
    database_url: URL, engine: sa.Engine
) -> None:
    url = url_text(database_url)
    with engine.begin() as connection:
        for table in (cli_models.projects, cli_models.tasks):
            table.create(connection)
        connection.execution_options(audit_runtime_check=False).execute(
            cli_models.projects.insert(), [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
        )
    ok("install", TARGET, "--url", url)
    first = as_json("baseline", TARGET, "--url", url, "--set", "username=ops")
    assert first == {"recorded": {"projects": 2, "tasks": 0}, "total": 2}
    assert ok("baseline", TARGET, "--table", "projects", "--url", url).splitlines() == [
        "table     baseline rows",
        "projects  0",
        "recorded 0 baseline rows in 1 tables",
    ]
    versions = as_json("history", "projects", "2", "--url", url)["versions"]
    assert [(v["operation"], v["context"]["username"]) for v in versions] == [("BASELINE", "ops")]
    result = run("baseline", TARGET, "--url", url, "--set", "username")
    assert (result.returncode, result.stderr) == (
        2,
        f"{ERROR_PREFIX}--set 'username' is not NAME=VALUE\n",
    )


def test_baseline_without_a_required_setting_is_refused_naming_it(
    database_url: URL, engine: sa.Engine
) -> None:
    url = url_text(database_url)
    with engine.begin() as connection:
        for table in (cli_models.projects, cli_models.tasks):
            table.create(connection)
        connection.execution_options(audit_runtime_check=False).execute(
            cli_models.projects.insert(), [{"id": 1, "name": "a"}]
        )
    ok("install", TARGET, "--url", url)
    result = run("baseline", TARGET, "--url", url)
    assert result.returncode == 2
    assert re.search(r"'projects'.*\['username'\] are required.*--set username=", result.stderr)
    assert as_json("history", "projects", "1", "--url", url)["versions"] == []


def test_grant_prints_the_sql_without_a_database() -> None:
    script = ok("grant", TARGET, "--writer", "app", "--reader", "auditor")
    statements = script.split(";\n\n")
    assert "GRANT SELECT ON tasks_audit TO auditor" in statements
    assert "REVOKE ALL ON projects_audit FROM app" in statements
    assert "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON tasks TO app" in statements
    document = as_json("grant", TARGET, "--writer", "app")
    assert document["tables"] == ["projects", "tasks"]
    assert (document["writers"], document["readers"], document["owner"]) == (["app"], [], None)
    assert document["script"] == ok("grant", TARGET, "--writer", "app")
    result = run("grant", TARGET)
    assert result.returncode == 2 and "--writer" in result.stderr
    refused = run("grant", TARGET, "--writer", "app", "--reader", "public")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.startswith(ERROR_PREFIX) and len(refused.stderr.splitlines()) == 1
    assert "'public' is not a role the audit grants may name" in refused.stderr


def test_grant_in_a_database_lets_writers_write_and_readers_read_history(
    database_url: URL, engine: sa.Engine, make_role: Callable[[str], str]
) -> None:
    writer, reader = make_role("cli_writer"), make_role("cli_reader")
    url = url_text(database_url)
    with engine.begin() as connection:
        for table in (cli_models.projects, cli_models.tasks):
            table.create(connection)
    ok("install", TARGET, "--url", url)
    out = ok("grant", TARGET, "--writer", writer, "--reader", reader, "--url", url)
    assert (
        out == f"granted least privilege on 2 audited tables: writers {writer}; readers {reader}\n"
    )
    as_writer = sa.create_engine(database_url.set(username=writer))
    as_reader = sa.create_engine(database_url.set(username=reader))
    try:
        write(as_writer, "dora", cli_models.projects.insert().values(id=5, name="x"))
        with (
            pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
            as_writer.connect() as connection,
        ):
            connection.execute(sa.text("SELECT * FROM projects_audit"))
        with as_reader.connect() as connection:
            rows = connection.execute(sa.text("SELECT audit_username FROM projects_audit")).all()
        assert rows == [("dora",)]
    finally:
        as_writer.dispose()
        as_reader.dispose()


def test_help_lists_the_new_commands() -> None:
    out = ok("--help")
    for name in ("history", "as-of", "baseline", "grant"):
        assert re.search(rf"^    {name} ", out, re.MULTILINE), name


def test_help_documents_the_table_and_key_syntax() -> None:
    for command in ("history", "as-of"):
        out = ok(command, "--help")
        assert '"my.table"' in out and 'schema."my.table"' in out
        assert "code=x on a text key is the text code=x" in out
