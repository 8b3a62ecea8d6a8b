"""Kept partitions are the ones retention kept, not whatever carries their comment: a table a
writer made to look like one (its owner, a trigger of its own) is neither listed nor erased
(where its trigger would run as the eraser), and a warning names it."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from cli_run import run, url_text
from sqlalchemy_postgresql_audit import erase, maintain
from sqlalchemy_postgresql_audit.declare.audit_table import AUDIT_TABLE_KEY
from sqlalchemy_postgresql_audit.lifecycle.archive import publish
from sqlalchemy_postgresql_audit.lifecycle.partition_catalog import (
    detached_partitions,
    partition_comment,
)
from sqlalchemy_postgresql_audit.render import quote

UTC = datetime.timezone.utc
#: A Wednesday; its ISO week starts on Monday 2026-03-02.
NOW = datetime.datetime(2026, 3, 4, 12, tzinfo=UTC)
FAKE = "accounts_audit_p20200106"
KEPT = "accounts_audit_p20260223"


def accounts() -> sa.Table:
    return sa.Table(
        "accounts",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String),
        info={
            "audit.options": {
                "enabled": True,
                "append_only": True,
                "partition": "week",
                "retention": datetime.timedelta(weeks=1),
                "retention_keep": True,
            }
        },
    )


def as_role(database_url: sa.URL, role: str, *statements: str) -> None:
    engine = sa.create_engine(database_url.set(username=role))
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(sa.text(statement))
    finally:
        engine.dispose()


def keep_a_week(engine: sa.Engine, table: sa.Table) -> None:
    """A partition retention detached and kept, holding a version of row 7."""
    maintain(engine, table, at=NOW)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=7, email="seven@example.com"))
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(
            sa.text("UPDATE accounts_audit SET audit_operation_timestamp = :t"),
            {"t": NOW - datetime.timedelta(weeks=1)},
        )
    (done,) = maintain(engine, table, at=NOW + datetime.timedelta(weeks=1))
    assert done.detached == (KEPT,)


def plant(engine: sa.Engine, database_url: sa.URL, writer: str) -> None:
    """The writer's look-alike: the audit table's columns and comment, a version of row 7, and
    a trigger that switches auditing off, run by whoever updates the table."""
    with engine.begin() as connection:
        connection.execute(sa.text(f"GRANT CREATE ON SCHEMA public TO {quote(writer)}"))
        columns = connection.execute(
            sa.text(
                "SELECT string_agg(quote_ident(attname) || ' ' || "
                "format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute "
                "WHERE attrelid = 'accounts_audit'::regclass AND attnum > 0 AND NOT attisdropped"
            )
        ).scalar_one()
    comment = partition_comment("accounts_audit").replace("'", "''")
    as_role(
        database_url,
        writer,
        f"CREATE TABLE {FAKE} ({columns})",
        f"COMMENT ON TABLE {FAKE} IS '{comment}'",
        f"INSERT INTO {FAKE} (audit_id, audit_operation, audit_operation_timestamp, id, email) "
        "VALUES (1, 'I', now(), 7, 'seven@example.com')",
        "CREATE FUNCTION planted() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN EXECUTE 'ALTER TABLE public.accounts DISABLE TRIGGER USER'; RETURN NEW; END$$",
        f"CREATE TRIGGER planted BEFORE UPDATE ON {FAKE} FOR EACH ROW EXECUTE FUNCTION planted()",
    )


def audit_triggers_enabled(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        states = connection.execute(
            sa.text(
                "SELECT tgenabled FROM pg_trigger "
                "WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal"
            )
        ).scalars()
        return all(state == "O" for state in states)


def fake_email(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        return str(connection.execute(sa.text(f"SELECT email FROM {FAKE}")).scalar_one())


def test_a_table_made_to_look_like_a_kept_partition_is_neither_listed_nor_erased(
    engine: sa.Engine, database_url: sa.URL, make_role: Callable[[str], str]
) -> None:
    writer = make_role("writer")
    table = accounts()
    table.metadata.create_all(engine)
    keep_a_week(engine, table)
    plant(engine, database_url, writer)
    suspicious = rf"{FAKE}.* is not one, so it is ignored .*owned by {writer}"
    with engine.connect() as connection, pytest.warns(UserWarning, match=suspicious):
        assert detached_partitions(connection, table.info[AUDIT_TABLE_KEY]) == [KEPT]
    with pytest.warns(UserWarning, match=suspicious):
        done = erase(engine, table, 7, reason="request")
    assert done.kept_partitions == (KEPT,) and done.rows == 1
    assert audit_triggers_enabled(engine)  # the planted trigger never ran
    assert fake_email(engine) == "seven@example.com"  # left alone
    # Given to the audit table's owner, its trigger still tells it apart.
    with engine.begin() as connection:
        connection.execute(sa.text(f"ALTER TABLE {FAKE} OWNER TO CURRENT_USER"))
    with engine.connect() as connection, pytest.warns(UserWarning, match="has triggers planted"):
        assert detached_partitions(connection, table.info[AUDIT_TABLE_KEY]) == [KEPT]
    with pytest.warns(UserWarning, match="has triggers planted"):
        again = erase(engine, table, 7, reason="request")
    assert again.rows == 0 and audit_triggers_enabled(engine)
    assert fake_email(engine) == "seven@example.com"


def test_erasing_a_kept_partition_of_a_published_table_says_the_archive_keeps_it(
    engine: sa.Engine, database_url: sa.URL, make_role: Callable[[str], str]
) -> None:
    owner = make_role("owner")  # not a superuser: it reads only what it may
    with engine.begin() as connection:
        database = quote(str(database_url.database))
        connection.execute(sa.text(f"GRANT CREATE ON SCHEMA public TO {quote(owner)}"))
        connection.execute(sa.text(f"GRANT CREATE ON DATABASE {database} TO {quote(owner)}"))
    as_owner = sa.create_engine(database_url.set(username=owner))
    try:
        table = accounts()
        table.metadata.create_all(as_owner)
        keep_a_week(engine, table)
        quiet = erase(as_owner, table, 7, columns=["email"], reason="request")
        assert quiet.kept_partitions == (KEPT,) and quiet.unreached_publications == ()
        with as_owner.begin() as connection:
            connection.execute(table.update().where(table.c.id == 7).values(email="new@x.org"))
        publish(as_owner, table)
        # An UPDATE of a detached table is not published: what the archive got stays there.
        with pytest.warns(UserWarning, match="is published \\(audit_trail\\)"):
            done = erase(as_owner, table, 7, reason="request")
        assert done.rows == 1 and done.unreached_publications == ("audit_trail",)
    finally:
        as_owner.dispose()


MODELS = """
import datetime
import sqlalchemy as sa

metadata = sa.MetaData()
accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String),
    info={"audit.options": {
        "enabled": True, "append_only": True, "partition": "week",
        "retention": datetime.timedelta(weeks=1), "retention_keep": True,
    }},
)
"""


def test_check_names_a_table_made_to_look_like_a_kept_partition(
    engine: sa.Engine, database_url: sa.URL, make_role: Callable[[str], str], tmp_path: Path
) -> None:
    (tmp_path / "keptmodels.py").write_text(MODELS)
    table = accounts()
    table.metadata.create_all(engine)
    keep_a_week(engine, table)
    command = ["--json", "check", "keptmodels:metadata", "--url", url_text(database_url)]

    def look_alikes() -> list[dict[str, str]]:
        done = run(*command, path=tmp_path)
        (state,) = json.loads(done.stdout)["tables"]
        return [o for o in state["objects"] if o["kind"] == "kept partition"]

    assert look_alikes() == []  # the partition retention kept is no look-alike
    plant(engine, database_url, make_role("writer"))
    (found,) = look_alikes()
    assert found["name"] == FAKE and found["state"] == "unexpected"
    assert "is not one: it is owned by" in found["reasons"][0]
    assert run(*command, path=tmp_path).returncode == 1
