"""Lint gate: every generated PL/pgSQL function passes ``plpgsql_check`` without a finding.

Each function is created for real, in every mode and option combination the suite uses, and
checked with its trigger relation and transition tables, so that the checker plans every
statement of every branch.  Runs wherever the server can install the extension (Debian's
``postgresql-15-plpgsql-check`` in CI); with ``AUDIT_REQUIRE_PLPGSQL_CHECK=1`` a server without
it fails the test instead of skipping it.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, SPEC_KEY, AuditSpec
from sqlalchemy_postgresql_audit.declare.options import CAPTURES
from sqlalchemy_postgresql_audit.render import (
    NEW_ROWS,
    OLD_ROWS,
    cdc_stale,
    cdc_truncate,
    guard_function,
    qualified,
)

REQUIRE_ENV = "AUDIT_REQUIRE_PLPGSQL_CHECK"

REQUIRED = [sa.Column("username", sa.Text, nullable=False), sa.Column("tenant", sa.Integer)]
OPTIONAL = [sa.Column("username", sa.Text), sa.Column("request_id", sa.UUID)]

COMBINATIONS: list[dict[str, Any]] = [
    {"session_settings": OPTIONAL},
    {"session_settings": REQUIRED},
    {"session_settings": REQUIRED, "operations": ["UPDATE", "DELETE"]},
    {"session_settings": REQUIRED, "capture": list(CAPTURES)},
    {"capture": ["changed_columns"]},
    {"exclude_columns": ["note"], "skip_unchanged": True},
    {"skip_unchanged": True, "capture": ["changed_columns", "client_addr"]},
    {"truncate_rows": True, "session_settings": REQUIRED},
    {"append_only": True, "session_settings": REQUIRED},
    {"append_only": True, "truncate_rows": True, "capture": list(CAPTURES)},
    {"redact": {"if": "hash", "note": "mask", "doc": "omit"}, "truncate_rows": True},
    {"redact": {"note": "omit"}, "skip_unchanged": True, "session_settings": REQUIRED},
]

#: Findings accepted on purpose, as (function kind, message fragment), each with its reason.
JUSTIFIED: frozenset[tuple[str, str]] = frozenset(
    {
        # A non-text setting is declared ``setting_N <type> := NULLIF(current_setting(..), '')``:
        # PL/pgSQL's assignment parses the text with the type's input function, exactly what an
        # explicit cast would do, and a value that does not parse raises, failing the write
        # (never unaudited).  An explicit CAST belongs in a new template version.
        ("audit", 'statement block: cast "text" value to'),
        # Template 2 copies the rows a TRUNCATE removes from the relation it fired on and its
        # untriggered descendants, known only at run time, with one dynamic INSERT ... SELECT.
        # Its only run-time text is ``regclass`` output of relations found under TG_RELID in
        # pg_inherits, which the server quotes; every value goes through USING.
        ("audit", "EXECUTE: Cannot ensure so dynamic EXECUTE statement is SQL injection secure"),
    }
)


def declare(metadata: sa.MetaData, index: int, mode: str, options: dict[str, Any]) -> sa.Table:
    settings = [
        sa.Column(c.name, c.type, nullable=c.nullable) for c in options.get("session_settings", [])
    ]
    return sa.Table(
        f"t{index} {mode}",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("if", sa.Text),  # a PL/pgSQL keyword as a column name
        sa.Column("note", sa.Text),
        sa.Column("doc", sa.JSON),
        schema="lint",
        info={
            "audit.options": {
                "enabled": True,
                "mode": mode,
                **options,
                "session_settings": settings,
            }
        },
    )


@pytest.fixture
def checker(engine: sa.Engine) -> sa.Engine:
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE EXTENSION IF NOT EXISTS plpgsql_check"))
    except sa.exc.DBAPIError as error:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but the server cannot install plpgsql_check: {error}")
        pytest.skip(f"plpgsql_check is not installable on this server: {error.orig}")
    return engine


def findings(
    connection: sa.Connection, function: str, relation: str, old: str | None, new: str | None
) -> list[tuple[str, str]]:
    rows = connection.execute(
        sa.text(
            "SELECT level, message, lineno, statement, detail FROM plpgsql_check_function_tb("
            " CAST(:function AS regprocedure), CAST(:relation AS regclass),"
            " fatal_errors => false, other_warnings => true, extra_warnings => true,"
            " performance_warnings => false, security_warnings => true,"
            " oldtable => :old, newtable => :new)"
        ),
        {"function": function + "()", "relation": relation, "old": old, "new": new},
    ).all()
    return [
        (str(r.level), f"{r.message} (line {r.lineno}, {r.statement}: {r.detail})") for r in rows
    ]


def test_every_generated_function_passes_plpgsql_check(checker: sa.Engine) -> None:
    metadata = sa.MetaData()
    tables = [
        declare(metadata, i, mode, options)
        for i, options in enumerate(COMBINATIONS)
        for mode in ("statement", "row")
    ]
    with checker.begin() as connection:
        connection.execute(sa.schema.CreateSchema("lint"))
    metadata.create_all(checker)
    problems: list[str] = []
    checked = 0
    with checker.connect() as connection:
        for table in tables:
            spec = table.info[SPEC_KEY]
            assert isinstance(spec, AuditSpec)
            transition = spec.mode == "statement"
            targets = [
                (
                    "audit",
                    qualified(spec.schema, spec.function),
                    qualified(spec.schema, spec.table),
                    OLD_ROWS if transition else None,
                    NEW_ROWS if transition else None,
                )
            ]
            if spec.append_only:
                targets.append(
                    (
                        "guard",
                        qualified(spec.schema, guard_function(spec)),
                        qualified(spec.schema, table.info[AUDIT_TABLE_KEY].name),
                        OLD_ROWS,
                        None,
                    )
                )
            for kind, function, relation, old, new in targets:
                checked += 1
                for level, message in findings(connection, function, relation, old, new):
                    if not any(k == kind and part in message for k, part in JUSTIFIED):
                        problems.append(f"{table.name} [{kind}] {level}: {message}")
    assert checked == len(tables) + sum(1 for t in tables if t.info[SPEC_KEY].append_only)
    assert problems == [], "\n".join(problems)


def test_the_checker_finds_a_broken_function(checker: sa.Engine) -> None:
    """The gate can fail: a function naming a missing column is reported."""
    with checker.begin() as connection:
        connection.execute(sa.text("CREATE TABLE target (id int)"))
        connection.execute(
            sa.text(
                "CREATE FUNCTION broken() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN INSERT INTO target (nope) SELECT 1; RETURN NULL; END $$"
            )
        )
        found = findings(connection, "broken", "target", None, None)
    assert any("nope" in message for _, message in found)


def test_the_cdc_partition_truncate_guard_passes_plpgsql_check(checker: sa.Engine) -> None:
    """``render.cdc_truncate``'s function, checked on a partition as its guard fires there."""
    with checker.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE measure (id int) PARTITION BY RANGE (id)")
        connection.exec_driver_sql(
            "CREATE TABLE measure_1 PARTITION OF measure FOR VALUES FROM (0) TO (10)"
        )
        connection.exec_driver_sql(cdc_truncate.guard_function("public").replace("%", "%%"))
        found = findings(
            connection, f"public.{cdc_truncate.GUARD_FUNCTION}", "measure_1", None, None
        )
    assert found == []


def test_the_cdc_stale_row_replacement_passes_plpgsql_check(checker: sa.Engine) -> None:
    """``render.cdc_stale``'s functions, on a replica table with a two-column key."""
    with checker.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE reading (site int, id int, value text, PRIMARY KEY (site, id))"
        )
        connection.exec_driver_sql("CREATE TABLE reading_audit (audit_id bigint)")
        statements = (
            cdc_stale.create_replaced_table("public"),
            cdc_stale.quiet_function("public"),
            *cdc_stale.quiet_versions("public", "public", "reading_audit"),
            *cdc_stale.replace_stale(
                "public",
                "public",
                "reading",
                [("site", "OPERATOR(pg_catalog.=)"), ("id", "OPERATOR(pg_catalog.=)")],
            ),
        )
        for statement in statements:
            connection.exec_driver_sql(statement.replace("%", "%%"))
        replacing = f"public.{cdc_stale.function_name('public', 'reading')}"
        found = findings(connection, replacing, "reading", None, None)
        found += findings(
            connection, f"public.{cdc_stale.QUIET_FUNCTION}", "reading_audit", None, None
        )
    assert found == []
