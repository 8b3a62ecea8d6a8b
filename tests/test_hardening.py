"""Tamper resistance of the installed function, on a real server.

No redirection: the function pins ``search_path`` and names everything qualified, so a writer's
temporary table, an attacker's schema (with its own ``now()`` and ``=``) or a tenant's path
cannot divert audit rows.  No forgery: the function is ``SECURITY DEFINER``, so a writer needs
no right on the audit table, and it still records who wrote.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from sqlalchemy_postgresql_audit import SPEC_KEY, set_session_vars
from sqlalchemy_postgresql_audit.render import render


def declare(mode: str = "statement", **options: Any) -> sa.Table:
    return sa.Table(
        "ledger",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("note", sa.Text),
        info={
            "audit.options": {
                "enabled": True,
                "mode": mode,
                "session_settings": [sa.Column("username", sa.String(30))],
                **options,
            }
        },
    )


def history(connection: sa.Connection, where: str = "public.ledger_audit") -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for row in connection.exec_driver_sql(
            f"SELECT audit_operation, audit_username, id, note, "
            f"audit_operation_timestamp > '2000-01-01' FROM {where} ORDER BY audit_id"
        )
    ]


EXPECTED = [
    ("I", "alice", 1, "a", True),
    ("U", "alice", 1, "b", True),
    ("D", "alice", 1, "b", True),
]


def write(connection: sa.Connection) -> None:
    set_session_vars(connection, username="alice")
    connection.exec_driver_sql("INSERT INTO public.ledger (id, note) VALUES (1, 'a')")
    connection.exec_driver_sql("UPDATE public.ledger SET note = 'b' WHERE id = 1")
    connection.exec_driver_sql("UPDATE public.ledger SET note = 'b' WHERE id = 1")  # unchanged
    connection.exec_driver_sql("DELETE FROM public.ledger WHERE id = 1")


MODES = [
    pytest.param("statement", {"skip_unchanged": True}, id="statement-paired"),
    pytest.param("row", {"skip_unchanged": True}, id="row"),
]


def test_render_never_names_an_object_unqualified() -> None:
    """A spec without schema (a script rendered without a connection) is rendered for public."""
    spec = declare(truncate_rows=True).info[SPEC_KEY]
    assert spec.schema is None
    out = render(spec)
    assert 'INSERT INTO "public"."ledger_audit"' in out.function_body
    # the truncated rows are read from the relation's regclass, the table's named like this:
    assert """'"public"."ledger"'::pg_catalog.regclass""" in out.function_body
    assert all(
        " ON public.ledger\n" in sql
        for sql in out.install
        if sql.startswith("CREATE OR REPLACE TRIGGER")
    )
    assert '"schema": "public"' in out.install[1]  # the comment holds the resolved spec
    assert "SET search_path TO pg_catalog, pg_temp" in out.install[0]


@pytest.mark.parametrize(("mode", "options"), MODES)
def test_a_temporary_table_named_like_the_audit_table_is_not_written(
    engine: sa.Engine, mode: str, options: dict[str, Any]
) -> None:
    table = declare(mode, **options)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TEMPORARY TABLE ledger_audit (LIKE public.ledger_audit)")
        connection.exec_driver_sql("SET LOCAL search_path = pg_temp, public")
        write(connection)
        assert history(connection, "pg_temp.ledger_audit") == []
        assert history(connection) == EXPECTED


@pytest.mark.parametrize(("mode", "options"), MODES)
def test_an_attacker_schema_first_on_the_path_changes_nothing(
    engine: sa.Engine, mode: str, options: dict[str, Any]
) -> None:
    table = declare(mode, **options)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        for sql in (
            "CREATE SCHEMA evil",
            "CREATE TABLE evil.ledger_audit (LIKE public.ledger_audit)",
            "CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql "
            "AS $$ SELECT timestamptz '1999-01-01' $$",
            "CREATE FUNCTION evil.never(integer, integer) RETURNS boolean LANGUAGE sql "
            "AS $$ SELECT false $$",
            "CREATE OPERATOR evil.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = evil.never)",
            "CREATE FUNCTION evil.current_setting(text, boolean) RETURNS text LANGUAGE sql "
            "AS $$ SELECT 'mallory' $$",
        ):
            connection.exec_driver_sql(sql)
    with engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL search_path = evil, public")
        write(connection)
        assert history(connection, "evil.ledger_audit") == []
        assert history(connection) == EXPECTED


def test_a_tenant_search_path_pointing_elsewhere_still_audits_the_real_table(
    engine: sa.Engine,
) -> None:
    table = declare()
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE SCHEMA tenant")
        connection.exec_driver_sql("CREATE TABLE tenant.ledger_audit (LIKE public.ledger_audit)")
    with engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL search_path = tenant")
        write(connection)
        assert history(connection, "tenant.ledger_audit") == []
        assert history(connection) == [EXPECTED[0], EXPECTED[1], EXPECTED[1], EXPECTED[2]]


@pytest.fixture
def writer_role(engine: sa.Engine) -> Iterator[str]:
    """A login-less role with only INSERT, UPDATE and DELETE on the source table."""
    role = f"writer_{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role}")
    try:
        yield role
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP OWNED BY {role}")
            connection.exec_driver_sql(f"DROP ROLE {role}")


@pytest.mark.parametrize("mode", ["statement", "row"])
def test_a_writer_without_rights_on_the_audit_table_is_audited_and_cannot_forge(
    engine: sa.Engine, writer_role: str, mode: str
) -> None:
    table = declare(mode, truncate_rows=True)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {writer_role}")
        connection.exec_driver_sql(
            f"GRANT INSERT, UPDATE, DELETE, TRUNCATE ON public.ledger TO {writer_role}"
        )
        assert not connection.exec_driver_sql(
            f"SELECT has_function_privilege('{writer_role}', 'public.public_ledger_audit()', "
            "'EXECUTE')"
        ).scalar_one()
    with engine.begin() as connection:
        connection.exec_driver_sql(f"SET LOCAL ROLE {writer_role}")
        set_session_vars(connection, username="alice")
        connection.exec_driver_sql("INSERT INTO public.ledger (id, note) VALUES (1, 'a')")
        connection.exec_driver_sql("UPDATE public.ledger SET note = 'b'")
        connection.exec_driver_sql("DELETE FROM public.ledger")
        connection.exec_driver_sql("INSERT INTO public.ledger (id, note) VALUES (2, 'c')")
        connection.exec_driver_sql("TRUNCATE public.ledger")
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT audit_operation, audit_current_user, id FROM public.ledger_audit "
            "ORDER BY audit_id"
        ).all()
    assert [tuple(r) for r in rows] == [
        ("I", writer_role, 1),
        ("U", writer_role, 1),
        ("D", writer_role, 1),
        ("I", writer_role, 2),
        ("T", writer_role, 2),
    ]
    for forgery in (
        "INSERT INTO public.ledger_audit (audit_operation, audit_operation_timestamp, "
        "audit_current_user) VALUES ('I', now(), 'someone else')",
        "SELECT public.public_ledger_audit()",
    ):
        with engine.begin() as connection:
            connection.exec_driver_sql(f"SET LOCAL ROLE {writer_role}")
            with pytest.raises(DBAPIError, match="permission denied"):
                connection.exec_driver_sql(forgery)


@pytest.mark.parametrize("mode", ["statement", "row"])
def test_a_role_granted_execute_cannot_attach_the_function_to_its_own_table(
    engine: sa.Engine, writer_role: str, mode: str
) -> None:
    """EXECUTE can reach a writer (default privileges, a group role): the function still
    records only its own table, so a trigger on the writer's table forges nothing."""
    table = declare(mode)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"GRANT EXECUTE ON FUNCTION public.public_ledger_audit() TO {writer_role}"
        )
        connection.exec_driver_sql(f"GRANT CREATE ON SCHEMA public TO {writer_role}")
    level = (
        "FOR EACH ROW"
        if mode == "row"
        else ("REFERENCING NEW TABLE AS audit_new_rows FOR EACH STATEMENT")
    )
    with engine.begin() as connection:
        connection.exec_driver_sql(f"SET LOCAL ROLE {writer_role}")
        connection.exec_driver_sql("CREATE TEMP TABLE fake (id int, note text)")
        connection.exec_driver_sql(
            f"CREATE TRIGGER forge AFTER INSERT ON fake {level} "
            "EXECUTE FUNCTION public.public_ledger_audit()"
        )
        with pytest.raises(DBAPIError, match="records only table"):
            connection.exec_driver_sql("INSERT INTO fake VALUES (7, 'never happened')")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM public.ledger_audit").scalar() == 0


@pytest.mark.parametrize("mode", ["statement", "row"])
def test_the_function_refuses_a_table_in_the_audited_table_s_own_schema(
    engine: sa.Engine, writer_role: str, mode: str
) -> None:
    """The schema comparison alone lets a table next to the audited one through: the name
    comparison (and only it) refuses a trigger on ``public.fake`` calling the function."""
    table = declare(mode)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"GRANT EXECUTE ON FUNCTION public.public_ledger_audit() TO {writer_role}"
        )
        connection.exec_driver_sql(f"GRANT CREATE, USAGE ON SCHEMA public TO {writer_role}")
    level = (
        "FOR EACH ROW"
        if mode == "row"
        else ("REFERENCING NEW TABLE AS audit_new_rows FOR EACH STATEMENT")
    )
    with engine.begin() as connection:
        connection.exec_driver_sql(f"SET LOCAL ROLE {writer_role}")
        connection.exec_driver_sql("CREATE TABLE public.fake (id int, note text)")
        connection.exec_driver_sql(
            f"CREATE TRIGGER forge AFTER INSERT ON public.fake {level} "
            "EXECUTE FUNCTION public.public_ledger_audit()"
        )
        with pytest.raises(DBAPIError, match="records only table") as refused:
            connection.exec_driver_sql("INSERT INTO public.fake VALUES (7, 'never happened')")
        assert getattr(refused.value.orig, "pgcode", None) == "42501"
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM public.ledger_audit").scalar() == 0


def test_the_writer_is_the_session_user_without_set_role(engine: sa.Engine) -> None:
    table = declare()
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        write(connection)
        user = connection.exec_driver_sql("SELECT session_user").scalar_one()
        recorded = connection.exec_driver_sql(
            "SELECT DISTINCT audit_current_user FROM public.ledger_audit"
        ).scalars()
        assert list(recorded) == [user]


#: Source column names that are also names of the function's variables, its label and aliases.
VARIABLE_NAMES = (
    "setting_0",
    "capture_transaction_id",
    "audited_rows",
    "writer",
    "audit_trigger",
    "r",
    "o",
)


#: PL/pgSQL-only reserved words (harmless after ``NEW.`` or in a column list, measured on 15 and
#: 18) with names that break when unquoted, so a template that stops quoting fails here.
KEYWORD_NAMES = ("loop", "while", "exit", "strict", "if", "CamelCase", "select", "a b")


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        pytest.param("statement", {}, id="statement"),
        pytest.param("statement", {"skip_unchanged": True}, id="statement-paired"),
        pytest.param("row", {"skip_unchanged": True}, id="row"),
    ],
)
@pytest.mark.parametrize("names", [VARIABLE_NAMES, KEYWORD_NAMES], ids=["variables", "keywords"])
def test_no_legal_column_name_breaks_the_trigger(
    engine: sa.Engine, mode: str, options: dict[str, Any], names: tuple[str, ...]
) -> None:
    table = sa.Table(
        "ledger",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        *(sa.Column(name, sa.Text) for name in names),
        info={
            "audit.options": {
                "enabled": True,
                "mode": mode,
                "session_settings": [sa.Column("username", sa.String(30), nullable=False)],
                "capture": ["transaction_id", "changed_columns"],
                "truncate_rows": True,
                **options,
            }
        },
    )
    table.metadata.create_all(engine)
    audit = table.info["audit.table"]
    values = {name: f"{name}-value" for name in names}
    with engine.begin() as connection:
        set_session_vars(connection, username="alice")
        connection.execute(table.insert().values(id=1, **values))
        connection.execute(table.update().values({names[0]: "changed"}))
        connection.execute(table.delete())
        connection.execute(table.insert().values(id=2, **values))
        connection.execute(sa.text(f"TRUNCATE {table.name}"))
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                audit.c.audit_operation,
                audit.c.audit_username,
                audit.c.audit_changed_columns,
                *(audit.c[name] for name in names),
            ).order_by(audit.c.audit_id)
        ).all()
    changed = {**values, names[0]: "changed"}
    assert [tuple(row) for row in rows] == [
        ("I", "alice", None, *values.values()),
        ("U", "alice", [names[0]], *changed.values()),
        ("D", "alice", None, *changed.values()),
        ("I", "alice", None, *values.values()),
        ("T", "alice", None, *values.values()),
    ]
