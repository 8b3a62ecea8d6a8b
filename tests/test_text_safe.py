"""Rendered audit SQL runs through ``text()`` and Alembic's ``op.execute`` as well as raw.

A script from ``install_audit_triggers(metadata)`` without a bind, or the statements in
``info["audit.create_ddl"]``, used to fail under ``text()`` with ``A value is required for bind
parameter 'null'``: the JSON comment held ``:null``.  Names with colons and percent signs are
the hostile cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from sqlalchemy_postgresql_audit import (
    CREATE_DDL_KEY,
    install_audit_triggers,
    set_session_vars,
    uninstall_audit_triggers,
)

SCHEMA = "s :t"


def declare() -> sa.Table:
    return sa.Table(
        "a:b",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("x :y", sa.Text),
        sa.Column("50%", sa.Text),
        schema=SCHEMA,
        info={
            "audit.options": {
                "enabled": True,
                "session_settings": [sa.Column("username", sa.String(30), nullable=False)],
                "capture": ["changed_columns"],
                "truncate_rows": True,
            }
        },
    )


def run_text(connection: sa.Connection, script: str) -> None:
    connection.execute(sa.text(script))


def run_alembic(connection: sa.Connection, script: str) -> None:
    Operations(MigrationContext.configure(connection)).execute(script)


def run_raw(connection: sa.Connection, script: str) -> None:
    """Plain SQL, as psql would send it: the driver's cursor without parameters interprets
    neither colons nor percent signs."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(script)
    finally:
        cursor.close()


RUNNERS: dict[str, Callable[[sa.Connection, str], None]] = {
    "text": run_text,
    "alembic": run_alembic,
    "raw": run_raw,
}


@pytest.mark.parametrize("how", sorted(RUNNERS))
@pytest.mark.parametrize("source", ["script", "create_ddl"])
def test_rendered_sql_runs_through_text_alembic_and_raw(
    any_driver_engine: sa.Engine, how: str, source: str
) -> None:
    table = declare()
    with any_driver_engine.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{SCHEMA}"')
    table.metadata.create_all(any_driver_engine)
    uninstall_audit_triggers(table.metadata, any_driver_engine)
    script = install_audit_triggers(table.metadata)
    assert script is not None
    statements = [script] if source == "script" else list(table.info[CREATE_DDL_KEY])
    with any_driver_engine.begin() as connection:
        for sql in statements:
            RUNNERS[how](connection, sql)
    audit = table.info["audit.table"]
    with any_driver_engine.begin() as connection:
        set_session_vars(connection, username="alice")
        connection.execute(table.insert().values({"id": 1, "x :y": "a", "50%": "b"}))
        connection.execute(table.update().values({"x :y": "c"}))
        rows = connection.execute(
            sa.select(
                audit.c.audit_operation, audit.c.audit_changed_columns, audit.c["x :y"]
            ).order_by(audit.c.audit_id)
        ).all()
    assert [tuple(r) for r in rows] == [("I", None, "a"), ("U", ["x :y"], "c")]


def test_a_missing_required_setting_names_the_hostile_table(engine: sa.Engine) -> None:
    table = declare()
    with engine.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{SCHEMA}"')
    table.metadata.create_all(engine)
    with (
        pytest.raises(sa.exc.DBAPIError, match=re.escape('"s :t"."a:b"')),
        engine.begin() as connection,
    ):
        connection.execute(table.insert().values(id=1))


def test_no_rendered_statement_holds_a_bind_pattern() -> None:
    """SQLAlchemy's own pattern finds nothing in any template-1 output, hostile names included."""
    from sqlalchemy.sql.elements import TextClause
    from tests.test_template_freeze import representative_specs

    from sqlalchemy_postgresql_audit.render import render

    for spec in [*representative_specs(), declare().info["audit.spec"]]:
        out = render(spec)
        for sql in (*out.install, *out.uninstall):
            assert TextClause._bind_params_regex.findall(sql) == [], sql
