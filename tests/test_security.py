"""The least-privilege model, the append-only guard, and what a client cannot switch off.

Every test runs real roles on a real server: ``postgres`` (superuser) migrates and installs, a
non-superuser *owner* owns the audit table and the library's functions, a non-superuser *writer*
is the application, a *reader* reads history.  Role names contain spaces and capitals so that
every GRANT goes through the identifier preparer.

The trigger function is SECURITY DEFINER: it writes as its owner, so a writer needs no right on
the audit table.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from sqlalchemy_postgresql_audit import (
    AUDIT_TABLE_KEY,
    install_audit_triggers,
    set_session_vars,
    uninstall_audit_triggers,
)
from sqlalchemy_postgresql_audit.install.grants import grant_least_privilege, least_privilege_script
from sqlalchemy_postgresql_audit.render import quote
from sqlalchemy_postgresql_audit.retention import purge_audit_history

SCHEMA = "Shop Data"
INSUFFICIENT_PRIVILEGE = "42501"


def declare(mode: str = "statement", **options: Any) -> sa.Table:
    return sa.Table(
        "order",
        sa.MetaData(),
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("item", sa.Text),
        schema=SCHEMA,
        info={
            "audit.options": {
                "enabled": True,
                "mode": mode,
                "session_settings": [sa.Column("username", sa.Text)],
                **options,
            }
        },
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment:
    table: sa.Table
    audit: sa.Table
    admin: sa.Engine
    writer: sa.Engine
    reader: sa.Engine
    owner: sa.Engine
    roles: dict[str, str]

    def history(self) -> list[Any]:
        with self.admin.connect() as connection:
            return list(connection.execute(sa.select(self.audit).order_by(self.audit.c.audit_id)))


def deploy(
    database_url: URL, make_role: Callable[[str], str], table: sa.Table
) -> Iterator[Deployment]:
    roles = {kind: make_role(f"Audit {kind.title()}") for kind in ("owner", "writer", "reader")}
    admin = sa.create_engine(database_url)
    with admin.begin() as connection:
        connection.execute(sa.schema.CreateSchema(SCHEMA))
    table.metadata.create_all(admin)
    grant_least_privilege(
        admin,
        table.metadata,
        writers=[roles["writer"]],
        readers=[roles["reader"]],
        owner=roles["owner"],
    )
    engines = {kind: sa.create_engine(database_url.set(username=r)) for kind, r in roles.items()}
    try:
        yield Deployment(
            table=table, audit=table.info[AUDIT_TABLE_KEY], admin=admin, roles=roles, **engines
        )
    finally:
        for engine in (*engines.values(), admin):
            engine.dispose()


@pytest.fixture(params=["statement", "row"])
def deployment(
    database_url: URL, make_role: Callable[[str], str], request: pytest.FixtureRequest
) -> Iterator[Deployment]:
    yield from deploy(database_url, make_role, declare(request.param))


@pytest.fixture(params=["statement", "row"])
def append_only(
    database_url: URL, make_role: Callable[[str], str], request: pytest.FixtureRequest
) -> Iterator[Deployment]:
    yield from deploy(database_url, make_role, declare(request.param, append_only=True))


def refused(engine: sa.Engine, sql: str, params: dict[str, Any] | None = None) -> str:
    """Run ``sql`` in a transaction of its own; return the error message (it must fail)."""
    with pytest.raises(sa.exc.DBAPIError) as caught, engine.begin() as connection:
        connection.execute(sa.text(sql), params or {})
    return str(caught.value.orig)


def sqlstate(engine: sa.Engine, sql: str) -> str:
    with pytest.raises(sa.exc.DBAPIError) as caught, engine.begin() as connection:
        connection.execute(sa.text(sql))
    return str(getattr(caught.value.orig, "pgcode", None))


def names(d: Deployment) -> dict[str, str]:
    spec = d.table.info["audit.spec"]
    return {
        "source": f"{quote(SCHEMA)}.{quote(spec.table)}",
        "audit": f"{quote(SCHEMA)}.{quote(spec.audit_table)}",
        "function": f"{quote(SCHEMA)}.{quote(spec.function)}",
        "trigger": quote(spec.triggers[0].name),
    }


# --- the script ---------------------------------------------------------------------------


def test_grants_script_quotes_every_name_and_needs_no_database() -> None:
    table = declare(operations=["INSERT", "UPDATE", "DELETE"])
    script = least_privilege_script(
        table.metadata, writers=['App "Writer"'], readers=["select"], owner="Audit Owner"
    )
    statements = script.strip().rstrip(";").split(";\n\n")
    # What no role may keep goes in one block that reads the ACLs when it runs.
    exact = statements.pop(10)
    assert exact.startswith("DO $audit$")
    # The owner reads the table (and its inheritance children) for the moved-key trigger.
    reads = statements.pop(5)
    assert reads.startswith("DO $audit$")
    assert "'GRANT SELECT ON TABLE %s TO %s'" in reads and "'\"Audit Owner\"'" in reads
    # ALTER TABLE ... OWNER TO does not reach partitions: a block hands over those there are.
    partitions = statements.pop(2)
    assert partitions.startswith("DO $audit$")
    assert "'ALTER TABLE %s OWNER TO %s', part, '\"Audit Owner\"'" in partitions
    assert "REVOKE ALL ON %s %s FROM %s CASCADE" in exact
    assert '\'"Shop Data"."order_audit"\'::pg_catalog.regclass' in exact
    assert 'ARRAY[\'"App ""Writer"""\']::pg_catalog.regrole[]' in exact
    assert statements == [
        'REVOKE ALL ON FUNCTION "Shop Data"."Shop Data_order_audit"() FROM PUBLIC',
        'ALTER TABLE "Shop Data".order_audit OWNER TO "Audit Owner"',
        'ALTER FUNCTION "Shop Data"."Shop Data_order_audit"() OWNER TO "Audit Owner"',
        'GRANT USAGE ON SCHEMA "Shop Data" TO "Audit Owner"',
        'REVOKE ALL ON "Shop Data".order_audit FROM "App ""Writer"""',
        'REVOKE ALL ON FUNCTION "Shop Data"."Shop Data_order_audit"() FROM "App ""Writer"""',
        'GRANT USAGE ON SCHEMA "Shop Data" TO "App ""Writer"""',
        # TRUNCATE is granted only when it is audited.
        'GRANT SELECT, INSERT, UPDATE, DELETE ON "Shop Data"."order" TO "App ""Writer"""',
        'GRANT USAGE ON SCHEMA "Shop Data" TO "select"',
        'GRANT SELECT ON "Shop Data".order_audit TO "select"',
    ]


@pytest.mark.parametrize("role", ["public", "PUBLIC", "none", "pg_read_all_data", ""])
def test_grants_refuse_pseudo_and_reserved_roles(role: str) -> None:
    table = declare()
    with pytest.raises(ValueError, match="is not a role the audit grants may name"):
        least_privilege_script(table.metadata, writers=[role])


def test_grant_helper_gives_writers_no_right_on_the_audit_table(deployment: Deployment) -> None:
    n, roles = names(deployment), deployment.roles
    with deployment.admin.connect() as connection:

        def has(role: str, relation: str, privilege: str) -> bool:
            return bool(
                connection.execute(
                    sa.text("SELECT has_table_privilege(:r, :t, :p)"),
                    {"r": roles[role], "t": n[relation], "p": privilege},
                ).scalar_one()
            )

        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES"):
            assert not has("writer", "audit", privilege), privilege
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"):
            assert has("writer", "source", privilege), privilege
        assert has("reader", "audit", "SELECT")
        for privilege in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"):
            assert not has("reader", "audit", privilege), privilege
        owners = connection.execute(
            sa.text(
                "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = CAST(:t AS regclass)"
                " UNION ALL SELECT pg_get_userbyid(proowner) FROM pg_proc"
                " WHERE oid = CAST(:f AS regprocedure)"
            ),
            {"t": n["audit"], "f": n["function"] + "()"},
        ).scalars()
        assert list(owners) == [roles["owner"], roles["owner"]]
        executable = connection.execute(
            sa.text("SELECT has_function_privilege(:r, :f, 'EXECUTE')"),
            {"r": roles["writer"], "f": n["function"] + "()"},
        ).scalar_one()
        assert executable is False


def test_grant_helper_covers_serial_sequences(
    database_url: URL, make_role: Callable[[str], str]
) -> None:
    writer = make_role("Serial Writer")
    metadata = sa.MetaData()
    sa.Table(
        "note",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),  # SERIAL: a sequence of its own
        sa.Column("body", sa.Text),
        info={"audit.options": {"enabled": True}},
    )
    admin = sa.create_engine(database_url)
    metadata.create_all(admin)
    grant_least_privilege(admin, metadata, writers=[writer])
    with admin.connect() as connection:
        usage = connection.execute(
            sa.text("SELECT has_sequence_privilege(:r, 'note_id_seq', 'USAGE')"), {"r": writer}
        ).scalar_one()
    admin.dispose()
    assert usage is True


# --- the writer ---------------------------------------------------------------------------


def test_writer_changes_are_audited_as_the_writer(deployment: Deployment) -> None:
    table = deployment.table
    with deployment.writer.begin() as connection:
        set_session_vars(connection, username="ann")
        connection.execute(table.insert().values(item="apple"))
        connection.execute(table.update().values(item="pear"))
        connection.execute(table.insert().values(item="plum"))
        connection.execute(table.delete().where(table.c.item == "plum"))
    rows = deployment.history()
    assert [(r.audit_operation, r.item) for r in rows] == [
        ("I", "apple"),
        ("U", "pear"),
        ("I", "plum"),
        ("D", "plum"),
    ]
    assert {r.audit_current_user for r in rows} == {deployment.roles["writer"]}
    assert {r.audit_username for r in rows} == {"ann"}
    with deployment.reader.connect() as connection:
        assert len(connection.execute(sa.select(deployment.audit)).all()) == 4


def test_writer_cannot_forge_or_rewrite_history(deployment: Deployment) -> None:
    n = names(deployment)
    with deployment.admin.begin() as connection:  # some history to rewrite
        connection.execute(deployment.table.insert().values(item="apple"))
    forged = (
        f"INSERT INTO {n['audit']} (audit_operation, audit_operation_timestamp,"
        " audit_current_user, item) VALUES ('I', now(), 'someone else', 'forged')"
    )
    for sql in (
        forged,
        f"UPDATE {n['audit']} SET item = 'rewritten'",
        f"DELETE FROM {n['audit']}",
        f"TRUNCATE {n['audit']}",
        f"SELECT * FROM {n['audit']}",
    ):
        assert "permission denied" in refused(deployment.writer, sql), sql
    with deployment.reader.connect() as connection:
        for sql in (forged, f"DELETE FROM {n['audit']}"):
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                connection.execute(sa.text(sql))
            connection.rollback()
    assert [(r.audit_operation, r.item) for r in deployment.history()] == [("I", "apple")]


def test_writer_cannot_turn_auditing_off(deployment: Deployment) -> None:
    n = names(deployment)
    attempts = [
        f"ALTER TABLE {n['source']} DISABLE TRIGGER ALL",
        f"ALTER TABLE {n['source']} DISABLE TRIGGER {n['trigger']}",
        f"ALTER TABLE {n['source']} DISABLE TRIGGER USER",
        f"DROP TRIGGER {n['trigger']} ON {n['source']}",
        f"ALTER FUNCTION {n['function']}() SECURITY INVOKER",
        f"ALTER FUNCTION {n['function']}() RESET ALL",
        f"DROP FUNCTION {n['function']}()",
        f"CREATE OR REPLACE FUNCTION {n['function']}() RETURNS trigger LANGUAGE plpgsql"
        " AS $$BEGIN RETURN NULL; END$$",
        f"DROP TABLE {n['audit']}",
        f"ALTER TABLE {n['audit']} RENAME TO gone",
        "SET session_replication_role = replica",
        "SET LOCAL session_replication_role = replica",
        f"SELECT {n['function']}()",  # a trigger function called directly
        f"SET ROLE {quote(deployment.roles['owner'])}",
    ]
    for sql in attempts:
        assert sqlstate(deployment.writer, sql) == INSUFFICIENT_PRIVILEGE, sql


def test_no_client_setting_disables_or_diverts_auditing(
    deployment: Deployment,
) -> None:
    """Everything a non-superuser client can set in its session: custom ``audit.*`` settings,
    ``search_path`` (towards a schema of its own holding a fake ``now()``, ``clock_timestamp()``
    and a fake audit table, and towards ``pg_temp`` holding a temporary one),
    ``application_name``; the trail
    still lands in the real audit table with real values."""
    table, spec = deployment.table, deployment.table.info["audit.spec"]
    writer = deployment.roles["writer"]
    with deployment.admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA decoy AUTHORIZATION {quote(writer)}"))
    decoy_columns = "(audit_id bigint, audit_operation text, audit_operation_timestamp timestamptz, audit_current_user text, audit_username text, id int, item text)"
    with deployment.writer.begin() as connection:
        connection.execute(sa.text(f"CREATE TABLE decoy.{quote(spec.audit_table)} {decoy_columns}"))
        connection.execute(
            sa.text(
                "CREATE FUNCTION decoy.now() RETURNS timestamptz LANGUAGE sql"
                " AS $$SELECT timestamptz '2000-01-01 00:00+00'$$"
            )
        )
        connection.execute(
            sa.text(
                "CREATE FUNCTION decoy.clock_timestamp() RETURNS timestamptz LANGUAGE sql"
                " AS $$SELECT timestamptz '2000-01-01 00:00+00'$$"
            )
        )
    settings = [
        "SET LOCAL audit.enabled = 'off'",
        "SET LOCAL audit.disabled = 'on'",
        "SET LOCAL audit.username = 'ann'",
        "SET LOCAL sqlalchemy_postgresql_audit.purge_before = 'infinity'",
        "SET LOCAL application_name = 'not auditing'",
        "SET LOCAL search_path = decoy, pg_temp, pg_catalog",
    ]
    with deployment.writer.begin() as connection:
        connection.execute(sa.text(f"CREATE TEMP TABLE {quote(spec.audit_table)} {decoy_columns}"))
        for sql in settings:
            connection.execute(sa.text(sql))
        started = connection.execute(sa.text("SELECT pg_catalog.now()")).scalar_one()
        connection.execute(table.insert().values(id=100, item="apple"))
        connection.execute(table.update().values(item="pear"))
        connection.execute(table.delete())
        finished = connection.execute(sa.text("SELECT pg_catalog.clock_timestamp()")).scalar_one()
        decoys = connection.execute(
            sa.text(
                f"SELECT (SELECT count(*) FROM decoy.{quote(spec.audit_table)})"
                f" + (SELECT count(*) FROM pg_temp.{quote(spec.audit_table)})"
            )
        ).scalar_one()
    assert decoys == 0
    rows = deployment.history()
    assert [(r.audit_operation, r.item) for r in rows] == [
        ("I", "apple"),
        ("U", "pear"),
        ("D", "pear"),
    ]
    assert all(started <= r.audit_operation_timestamp <= finished for r in rows)
    assert {(r.audit_current_user, r.audit_username) for r in rows} == {(writer, "ann")}


# --- append-only --------------------------------------------------------------------------


def seed_history(d: Deployment, at: list[str]) -> None:
    """Audit rows recorded at the given (past) timestamps, one per insert, as the migrator."""
    for moment in at:
        with d.admin.begin() as connection:
            connection.execute(sa.text("SET LOCAL timezone = 'UTC'"))
            connection.execute(sa.select(sa.func.set_config("audit.username", "seed", True)))
            connection.execute(d.table.insert().values(item=moment))
    with d.admin.begin() as connection:  # move the rows back in time, guard disabled briefly
        n = names(d)
        connection.execute(sa.text(f"ALTER TABLE {n['audit']} DISABLE TRIGGER USER"))
        connection.execute(
            sa.text(
                f"UPDATE {n['audit']} SET audit_operation_timestamp = CAST(item AS timestamptz)"
            )
        )
        connection.execute(sa.text(f"ALTER TABLE {n['audit']} ENABLE TRIGGER USER"))


def test_append_only_refuses_the_owner_to_change_history(append_only: Deployment) -> None:
    n = names(append_only)
    seed_history(append_only, ["2020-01-01 00:00+00"])
    for sql in (
        f"UPDATE {n['audit']} SET item = 'rewritten'",
        f"DELETE FROM {n['audit']}",
        f"TRUNCATE {n['audit']}",
    ):
        message = refused(append_only.owner, sql)
        assert "is append-only" in message and "is refused" in message, sql
        # the table's own superuser migrator is refused the same way, by the same guard
        assert "is append-only" in refused(append_only.admin, sql), sql
    # A client setting the purge flag itself may delete only old rows, and never update.
    message = refused(
        append_only.owner,
        f"SELECT set_config('sqlalchemy_postgresql_audit.purge_before', 'infinity', true);"
        f" UPDATE {n['audit']} SET item = 'rewritten'",
    )
    assert "UPDATE is refused" in message
    assert [r.item for r in append_only.history()] == ["2020-01-01 00:00+00"]


def test_purge_removes_only_older_rows_and_is_itself_recorded(append_only: Deployment) -> None:
    n = names(append_only)
    seed_history(append_only, ["2020-01-01 00:00+00", "2021-01-01 00:00+00", "2022-06-01 00:00+00"])
    cutoff = datetime.datetime(2021, 6, 1, tzinfo=datetime.timezone.utc)
    with append_only.owner.begin() as connection:
        assert purge_audit_history(connection, append_only.table, before=cutoff) == 2
        purged_at = connection.execute(sa.text("SELECT now()")).scalar_one()
        # The flag is cleared after the purge: the same transaction cannot delete more.
        with pytest.raises(sa.exc.DBAPIError, match="DELETE is refused"), connection.begin_nested():
            connection.execute(sa.text(f"DELETE FROM {n['audit']}"))
    rows = append_only.history()
    assert [(r.audit_operation, r.item) for r in rows] == [
        ("I", "2022-06-01 00:00+00"),
        ("P", None),
    ]
    marker = rows[-1]
    assert marker.audit_current_user == append_only.roles["owner"]
    assert marker.audit_operation_timestamp == cutoff  # "history before <cutoff> purged"
    assert purged_at > cutoff
    # A purge that would reach a newer row is refused whole.
    with append_only.owner.begin() as connection:
        assert purge_audit_history(connection, append_only.table, before=cutoff) == 0
    assert [r.audit_operation for r in append_only.history()] == ["I", "P"]  # nothing deleted
    with append_only.owner.begin() as connection:
        connection.execute(
            sa.select(
                sa.func.set_config("sqlalchemy_postgresql_audit.purge_before", "2021-06-01", True)
            )
        )
        with pytest.raises(sa.exc.DBAPIError, match="DELETE is refused"):
            connection.execute(sa.text(f"DELETE FROM {n['audit']}"))  # reaches the 2022 row


def test_purge_clears_its_flag_so_its_own_marker_cannot_be_deleted(
    append_only: Deployment,
) -> None:
    """Only clearing the flag keeps a later DELETE in the same transaction (of the marker, or
    of anything) refused."""
    n = names(append_only)
    seed_history(append_only, ["2020-01-01 00:00+00"])
    with append_only.owner.begin() as connection:
        started = connection.execute(sa.text("SELECT now()")).scalar_one()
        assert purge_audit_history(connection, append_only.table, before=started) == 1
        flag = connection.execute(
            sa.text("SELECT current_setting('sqlalchemy_postgresql_audit.purge_before', true)")
        ).scalar_one()
        assert flag == ""
        for sql in (
            f"DELETE FROM {n['audit']} WHERE audit_operation = 'P'",
            f"DELETE FROM {n['audit']}",
        ):
            with (
                pytest.raises(sa.exc.DBAPIError, match="DELETE is refused"),
                connection.begin_nested(),
            ):
                connection.execute(sa.text(sql))
    assert [r.audit_operation for r in append_only.history()] == ["P"]


def test_append_only_refuses_a_purge_bound_later_than_the_transaction_start(
    append_only: Deployment,
) -> None:
    """The owner cannot name a far bound to delete recent rows selectively: purging the future
    is never retention."""
    n = names(append_only)
    seed_history(append_only, ["2020-01-01 00:00+00"])
    message = refused(
        append_only.owner,
        "SELECT set_config('sqlalchemy_postgresql_audit.purge_before', 'infinity', true);"
        f" DELETE FROM {n['audit']} WHERE audit_username = 'mallory'",
    )
    assert "bound is later than the transaction's start" in message
    assert "order_audit" in message
    future = datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)
    with pytest.raises(sa.exc.DBAPIError, match="bound is later"), append_only.owner.begin() as c:
        purge_audit_history(c, append_only.table, before=future)
    assert len(append_only.history()) == 1


def test_append_only_refuses_a_purge_that_leaves_older_rows(append_only: Deployment) -> None:
    """A purge deletes every row recorded before its bound or nothing: a selective DELETE of
    old rows under a valid bound is refused after the statement."""
    n = names(append_only)
    seed_history(append_only, ["2020-01-01 00:00+00", "2021-01-01 00:00+00"])
    message = refused(
        append_only.owner,
        "SELECT set_config('sqlalchemy_postgresql_audit.purge_before', '2022-01-01Z', true);"
        f" DELETE FROM {n['audit']} WHERE item = '2021-01-01 00:00+00'",
    )
    assert "must delete every row recorded before its bound" in message
    assert [r.item for r in append_only.history()] == [
        "2020-01-01 00:00+00",
        "2021-01-01 00:00+00",
    ]


def test_append_only_purge_needs_delete_on_the_audit_table(append_only: Deployment) -> None:
    seed_history(append_only, ["2020-01-01 00:00+00"])
    future = datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)
    for engine in (append_only.writer, append_only.reader):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), engine.begin() as c:
            purge_audit_history(c, append_only.table, before=future)
    assert len(append_only.history()) == 1


def test_append_only_what_the_owner_can_still_do(append_only: Deployment) -> None:
    """Documented in SECURITY.md: the guard binds the owner's DML, not the owner's DDL."""
    n = names(append_only)
    seed_history(append_only, ["2020-01-01 00:00+00"])
    with append_only.owner.begin() as connection:
        connection.execute(sa.text(f"ALTER TABLE {n['audit']} DISABLE TRIGGER audit_append_only"))
        connection.execute(sa.text(f"DELETE FROM {n['audit']}"))
    # With only the guard off, the marker trigger still records that rows were deleted ...
    assert [r.audit_operation for r in append_only.history()] == ["P"]
    with append_only.owner.begin() as connection:
        connection.execute(sa.text(f"ALTER TABLE {n['audit']} DISABLE TRIGGER USER"))
        connection.execute(sa.text(f"DELETE FROM {n['audit']}"))
    assert append_only.history() == []  # ... with every trigger off, nothing does
    # The writer can do neither.
    assert (
        sqlstate(append_only.writer, f"ALTER TABLE {n['audit']} DISABLE TRIGGER audit_append_only")
        == INSUFFICIENT_PRIVILEGE
    )


def test_append_only_install_is_idempotent_and_uninstall_removes_the_guard(
    append_only: Deployment,
) -> None:
    n, metadata = names(append_only), append_only.table.metadata
    install_audit_triggers(metadata, append_only.admin)
    install_audit_triggers(metadata, append_only.admin)
    seed_history(append_only, ["2020-01-01 00:00+00"])
    assert "is append-only" in refused(append_only.admin, f"DELETE FROM {n['audit']}")
    uninstall_audit_triggers(metadata, append_only.admin)
    with append_only.admin.begin() as connection:
        connection.execute(sa.text(f"DELETE FROM {n['audit']}"))
        guards = connection.execute(
            sa.text("SELECT count(*) FROM pg_proc WHERE proname LIKE '%append_only'")
        ).scalar_one()
    assert guards == 0


def test_grant_helper_revokes_rights_that_default_privileges_handed_to_a_group(
    engine: sa.Engine, make_role: Callable[[str], str]
) -> None:
    """Default privileges reach roles the script does not name; a writer inheriting them
    through a group could edit history.  The helper revokes them from everyone but the owner."""
    group, writer, reader = make_role("App Group"), make_role("writer"), make_role("reader")
    with engine.begin() as connection:
        connection.execute(sa.text(f"GRANT {quote(group)} TO {quote(writer)}"))
        connection.execute(
            sa.text(f"ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO {quote(group)}")
        )
        connection.execute(
            sa.text(f"ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO {quote(reader)}")
        )
    table = declare()
    with engine.begin() as connection:
        connection.execute(sa.schema.CreateSchema(SCHEMA))
    table.metadata.create_all(engine)
    grant_least_privilege(engine, table.metadata, writers=[writer], readers=[reader])
    audit = f"{quote(SCHEMA)}.order_audit"
    with engine.connect() as connection:
        for privilege in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"):
            assert not connection.execute(
                sa.text("SELECT has_table_privilege(:r, :t, :p)"),
                {"r": writer, "t": audit, "p": privilege},
            ).scalar_one(), privilege
        assert connection.execute(
            sa.text("SELECT has_table_privilege(:r, :t, 'SELECT')"), {"r": reader, "t": audit}
        ).scalar_one()
        assert not connection.execute(
            sa.text("SELECT has_function_privilege(:r, :f, 'EXECUTE')"),
            {"r": reader, "f": f"{quote(SCHEMA)}.{quote(SCHEMA + '_order_audit')}()"},
        ).scalar_one()
