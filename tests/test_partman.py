"""pg_partman and pg_cron, where the server has them (the PostgreSQL 15 run of CI, which sets
``AUDIT_REQUIRE_PARTMAN=1`` so that these tests fail there instead of skipping): ``maintain``
registers the audit table with pg_partman, which creates its partitions; ``maintain`` still
drains, marks and applies retention; a pg_cron job runs pg_partman's maintenance."""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import URL

from sqlalchemy_postgresql_audit import history, maintain
from sqlalchemy_postgresql_audit.cli.check import table_states
from sqlalchemy_postgresql_audit.declare.audit_table import SPEC_KEY
from sqlalchemy_postgresql_audit.errors import AuditError
from sqlalchemy_postgresql_audit.lifecycle.archive import (
    publish,
    subscribe_archive,
    unsubscribe_archive,
)
from sqlalchemy_postgresql_audit.lifecycle.conversion import partition_audit_table, unpartition
from sqlalchemy_postgresql_audit.lifecycle.partition_catalog import (
    partition_comment,
    range_partitions,
)
from sqlalchemy_postgresql_audit.lifecycle.partman import (
    install_maintenance_function,
    partman_of,
    register,
    schedule_partman_maintenance,
)
from sqlalchemy_postgresql_audit.render.partitioning import default_partition
from sqlalchemy_postgresql_audit.render.partman import MAINTENANCE_FUNCTION

UTC = datetime.timezone.utc


def _available(engine: sa.Engine, extension: str) -> bool:
    with engine.connect() as connection:
        return bool(
            connection.execute(
                sa.text("SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = :n)"),
                {"n": extension},
            ).scalar()
        )


def _missing(what: str) -> None:
    if os.environ.get("AUDIT_REQUIRE_PARTMAN") == "1":
        pytest.fail(f"AUDIT_REQUIRE_PARTMAN=1 but {what}")
    pytest.skip(what)


@pytest.fixture
def partman_engine(engine: sa.Engine) -> sa.Engine:
    """The test database with pg_partman in schema ``partman``."""
    if not _available(engine, "pg_partman"):
        _missing("the server has no pg_partman")
    with engine.begin() as connection:
        version = connection.execute(
            sa.text("SELECT default_version FROM pg_available_extensions WHERE name = 'pg_partman'")
        ).scalar_one()
        if not str(version).startswith("4."):
            _missing(f"the server's pg_partman is {version}; 4.x is what the library drives")
        connection.execute(sa.text("CREATE SCHEMA partman"))
        connection.execute(sa.text("CREATE EXTENSION pg_partman SCHEMA partman"))
    return engine


@pytest.fixture
def cron_engine(server_url: URL) -> Iterator[sa.Engine]:
    """The database pg_cron runs in (``cron.database_name``), with the extension created."""
    admin = sa.create_engine(server_url.set(database="postgres"))
    try:
        with admin.begin() as connection:
            preloaded = connection.execute(sa.text("SHOW shared_preload_libraries")).scalar_one()
        if "pg_cron" not in str(preloaded):
            _missing("pg_cron is not in shared_preload_libraries")
        with admin.begin() as connection:
            connection.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_cron"))
        yield admin
    finally:
        admin.dispose()


def accounts(**options: Any) -> sa.Table:
    return sa.Table(
        "accounts",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": True, "partition": "week", **options}},
    )


def partitions(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'accounts_audit'::regclass ORDER BY 1"
            )
        )
        return dict(rows.all())


def test_maintain_registers_with_partman_which_creates_the_partitions(
    partman_engine: sa.Engine,
) -> None:
    engine = partman_engine
    table = accounts(append_only=True, retention=datetime.timedelta(weeks=8))
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=10))  # into the DEFAULT partition
    (done,) = maintain(engine, table)
    assert done.drained == 1  # the row set aside by the registration, moved and reported
    with engine.connect() as connection:
        config = connection.execute(
            sa.text("SELECT partition_interval, premake FROM partman.part_config")
        ).all()
    assert [tuple(row) for row in config] == [("7 days", 4)]
    week = datetime.datetime.now(UTC).strftime("%Gw%V")
    assert f"accounts_audit_p{week}" in done.created  # pg_partman's name, ISO week
    found = partitions(engine)
    assert "accounts_audit_default" in found
    assert set(found.values()) == {partition_comment("accounts_audit")}  # all marked as ours
    with engine.connect() as connection:
        assert [v.audit_operation for v in connection.execute(history(table, 1))] == ["I"]
        waiting = connection.execute(sa.text("SELECT count(*) FROM accounts_audit_default"))
        assert waiting.scalar_one() == 0
    # pg_partman's own maintenance, as pg_cron runs it (it commits, so outside a transaction).
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("CALL partman.run_maintenance_proc(p_jobmon => false)"))
    (again,) = maintain(engine, table)
    assert again.created == () and again.drained == 0
    # A row of a week pg_partman has no partition for waits in DEFAULT; maintain drains it
    # into a partition pg_partman creates (the guard refuses pg_partman's own DELETE-based move).
    old = datetime.datetime.now(UTC) - datetime.timedelta(weeks=3)
    with engine.begin() as connection:
        connection.execute(table.update().values(balance=20))
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(
            sa.text(
                "UPDATE accounts_audit SET audit_operation_timestamp = :old "
                "WHERE audit_operation = 'U'"
            ),
            {"old": old},
        )
    (drained,) = maintain(engine, table)
    assert drained.drained == 1
    assert drained.created == (f"accounts_audit_p{old.strftime('%Gw%V')}",)
    assert set(partitions(engine).values()) == {partition_comment("accounts_audit")}
    # Retention stays the library's: whole partitions, the X marker, under append_only.
    later = datetime.datetime.now(UTC) + datetime.timedelta(weeks=10)
    (retained,) = maintain(engine, table, at=later)
    # The present week can still receive writes: retention never removes it, whatever `at`.
    assert retained.dropped == (f"accounts_audit_p{old.strftime('%Gw%V')}",)
    with engine.connect() as connection:
        left = connection.execute(
            sa.text("SELECT audit_operation FROM accounts_audit ORDER BY audit_id")
        ).scalars()
        assert list(left) == ["X", "I"]


def archived(archive: sa.Engine, audit_id: int) -> list[tuple[int, int]]:
    """The archive's row count and distinct ids, once the row ``audit_id`` arrived there:
    replication applies in commit order, so everything committed before it is there too."""
    query = sa.text(
        "SELECT count(*), count(DISTINCT audit_id), bool_or(audit_id = :i) FROM accounts_audit"
    )
    for _ in range(600):
        with archive.connect() as connection:
            count, distinct, arrived = connection.execute(query, {"i": audit_id}).one()
        if arrived:
            return [(count, distinct)]
        time.sleep(0.1)
    raise AssertionError(f"audit row {audit_id} never reached the archive")


def test_registration_moves_waiting_rows_without_publishing_them_again(
    partman_engine: sa.Engine, second_database_url: URL, logical_database_url: URL
) -> None:
    """Registering with pg_partman sets the DEFAULT partition aside; its rows go straight into
    their partitions, as the drain moves them, not back through the published parent."""
    source, table = partman_engine, accounts()
    archive = sa.create_engine(second_database_url)
    try:
        table.metadata.create_all(source)
        table.metadata.create_all(archive)
        publish(source, table)
        subscribe_archive(archive, logical_database_url.render_as_string(hide_password=False))
        with source.begin() as connection:
            connection.execute(table.insert(), [{"id": n, "balance": n} for n in range(3)])
        assert archived(archive, 3) == [(3, 3)]
        (done,) = maintain(source, table)  # registers with pg_partman
        assert done.drained == 3
        with source.begin() as connection:
            connection.execute(table.insert().values(id=9, balance=9))
        assert archived(archive, 4) == [(4, 4)]  # each row once
        with source.connect() as connection:
            assert (
                connection.execute(
                    sa.text("SELECT count(*) FROM ONLY accounts_audit_default")
                ).scalar_one()
                == 0
            )
    finally:
        unsubscribe_archive(archive)
        archive.dispose()


def test_pg_cron_schedules_partman_maintenance_in_the_audited_database(
    partman_engine: sa.Engine, cron_engine: sa.Engine
) -> None:
    job = schedule_partman_maintenance(cron_engine, partman_engine, schedule="*/5 * * * *")
    try:
        with cron_engine.connect() as connection:
            row = connection.execute(
                sa.text("SELECT schedule, command, database FROM cron.job WHERE jobid = :j"),
                {"j": job},
            ).one()
        assert row.schedule == "*/5 * * * *"
        assert row.command == f"SELECT public.{MAINTENANCE_FUNCTION}()"
        assert row.database == partman_engine.url.database
        # The command the job runs works in that database.
        with partman_engine.begin() as connection:
            assert connection.execute(sa.text(row.command)).scalar_one() == 0
            function = connection.execute(
                sa.text(
                    "SELECT prosecdef, proconfig, CAST(proacl AS text[]) AS proacl, "
                    "pg_get_userbyid(proowner) AS owner FROM pg_proc WHERE proname = :f"
                ),
                {"f": MAINTENANCE_FUNCTION},
            ).one()
            me = connection.execute(sa.text("SELECT current_user")).scalar_one()
        assert not function.prosecdef
        assert function.proconfig == ["search_path=pg_catalog, pg_temp"]
        assert function.owner == me
        assert [str(a) for a in function.proacl] == [f"{me}=X/{me}"]  # not PUBLIC's
    finally:
        with cron_engine.begin() as connection:
            connection.execute(sa.text("SELECT cron.unschedule(:j)"), {"j": job})


def test_the_scheduled_function_and_job_belong_to_the_named_owner(
    partman_engine: sa.Engine, cron_engine: sa.Engine, make_role: Any
) -> None:
    owner = make_role("audit_owner")
    job = schedule_partman_maintenance(
        cron_engine, partman_engine, schedule="0 3 * * *", owner=owner
    )
    try:
        with cron_engine.connect() as connection:
            username = connection.execute(
                sa.text("SELECT username FROM cron.job WHERE jobid = :j"), {"j": job}
            ).scalar_one()
        with partman_engine.connect() as connection:
            function = connection.execute(
                sa.text(
                    "SELECT pg_get_userbyid(proowner), CAST(proacl AS text[]) FROM pg_proc "
                    "WHERE proname = :f"
                ),
                {"f": MAINTENANCE_FUNCTION},
            ).one()
    finally:
        with cron_engine.begin() as connection:
            connection.execute(sa.text("SELECT cron.unschedule(:j)"), {"j": job})
    assert username == owner
    assert function[0] == owner and list(function[1]) == [f"{owner}=X/{owner}"]


def _last_run(cron_engine: sa.Engine, job: int, timeout: float = 150.0) -> Any:
    """The job's first finished run: pg_cron starts jobs on the minute."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with cron_engine.connect() as connection:
            run = connection.execute(
                sa.text(
                    "SELECT status, return_message FROM cron.job_run_details "
                    "WHERE jobid = :j AND status IN ('succeeded', 'failed') "
                    "ORDER BY runid LIMIT 1"
                ),
                {"j": job},
            ).first()
        if run is not None:
            return run
        time.sleep(1)
    pytest.fail(f"pg_cron did not run job {job} within {timeout} seconds")


def test_a_partition_the_scheduled_job_creates_is_marked_and_guarded_at_once(
    partman_engine: sa.Engine, cron_engine: sa.Engine
) -> None:
    """pg_partman 4.x has no hook after it creates a partition: the job runs its maintenance
    and marks what it made in one transaction, so no partition is ever seen unmarked."""
    engine = partman_engine
    table = accounts(append_only=True)
    table.metadata.create_all(engine)
    maintain(engine, table)  # registered with pg_partman, 4 partitions ahead, all marked
    before = partitions(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=1))
        connection.execute(sa.text("UPDATE partman.part_config SET premake = 6"))
    job = schedule_partman_maintenance(cron_engine, engine, schedule="* * * * *")
    try:
        run = _last_run(cron_engine, job)
    finally:
        with cron_engine.begin() as connection:
            connection.execute(sa.text("SELECT cron.unschedule(:j)"), {"j": job})
    assert run.status == "succeeded", run.return_message
    after = partitions(engine)
    made = sorted(set(after) - set(before))
    assert len(made) == 2, (before, after)  # by the job, not by maintain
    assert {after[name] for name in made} == {partition_comment("accounts_audit")}
    # A row in the newest partition (moved there past the guard, as a replica's apply would).
    newest = made[-1]
    with engine.begin() as connection:
        (start,) = [
            p.lower
            for p in range_partitions(connection, None, "accounts_audit")
            if p.name == newest
        ]
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(
            sa.text("UPDATE accounts_audit SET audit_operation_timestamp = :t"), {"t": start}
        )
        assert connection.execute(sa.text(f"SELECT count(*) FROM {newest}")).scalar_one() == 1
        rights = connection.execute(
            sa.text(
                "SELECT CAST(c.relacl AS text[]), pg_get_userbyid(c.relowner), "
                "pg_get_userbyid(p.relowner) "
                "FROM pg_class c, pg_class p WHERE c.oid = CAST(:c AS regclass) "
                "AND p.oid = 'accounts_audit'::regclass"
            ),
            {"c": newest},
        ).one()
    assert rights[1] == rights[2]  # the parent's owner's
    assert rights[0] is None or all(str(a).startswith(f"{rights[1]}=") for a in rights[0])
    for statement in (f"TRUNCATE {newest}", f"DELETE FROM {newest}"):
        with pytest.raises(sa.exc.ProgrammingError, match="append-only"), engine.begin() as c:
            c.execute(sa.text(statement))


def days(**options: Any) -> sa.Table:
    return sa.Table(
        "accounts",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": True, "partition": "day", **options}},
    )


def run_partman_maintenance(engine: sa.Engine) -> None:
    """pg_partman's maintenance of every registered table, as its own pg_cron job runs it."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("CALL partman.run_maintenance_proc(p_jobmon => false)"))


def drop_range_partitions(engine: sa.Engine) -> None:
    """Every partition but the DEFAULT one gone, as retention of an idle table once left it."""
    with engine.begin() as connection:
        for partition in range_partitions(connection, None, "accounts_audit"):
            connection.execute(sa.text(f"DROP TABLE {partition.name}"))


def holds_now(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        present = connection.execute(sa.select(sa.func.now())).scalar_one()
        found = range_partitions(connection, None, "accounts_audit")
    return any(p.lower <= present < p.upper for p in found)


def test_a_table_left_without_partitions_recovers_on_the_next_maintain(
    partman_engine: sa.Engine,
) -> None:
    """pg_partman 4.x fails for the whole database on a registered table with no partition;
    the next ``maintain`` (and the scheduled function) makes the one holding the present."""
    engine, table = partman_engine, days(retention=datetime.timedelta(days=3))
    table.metadata.create_all(engine)
    maintain(engine, table)
    drop_range_partitions(engine)
    with pytest.raises(sa.exc.DBAPIError, match="Child table given does not exist"):
        run_partman_maintenance(engine)  # the wedge
    (done,) = maintain(engine, table)
    assert f"accounts_audit_p{datetime.datetime.now(UTC):%Y_%m_%d}" in done.created
    assert holds_now(engine)
    run_partman_maintenance(engine)  # pg_partman works again, for every table
    maintain(engine, table)
    # The function the pg_cron job runs recovers such a table the same way.
    drop_range_partitions(engine)
    with engine.begin() as connection:
        command = sa.text(f"SELECT public.{MAINTENANCE_FUNCTION}()")
        found = partman_of(connection)
        assert found is not None
        install_maintenance_function(connection, found, None, None)
        assert connection.execute(command).scalar_one() >= 1
        assert connection.execute(sa.text("SHOW search_path")).scalar() == '"$user", public'
    assert holds_now(engine)
    run_partman_maintenance(engine)


def test_retention_of_an_idle_table_leaves_pg_partman_a_partition(
    partman_engine: sa.Engine,
) -> None:
    """An audit table that took no writes for longer than its premade partitions last: its
    partitions all lie in the past, and pg_partman (which by default works from the newest
    row, here none) made nothing new.  Retention must not then remove every partition."""
    engine, table = partman_engine, days(retention=datetime.timedelta(days=3))
    table.metadata.create_all(engine)
    maintain(engine, table)
    drop_range_partitions(engine)
    long_ago = datetime.datetime.now(UTC) - datetime.timedelta(days=12)
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL timezone = 'UTC'"))
        connection.execute(
            sa.text(
                "SELECT partman.create_partition_time('public.accounts_audit', "
                "ARRAY[date_trunc('day', CAST(:t AS timestamptz))], false)"
            ),
            {"t": long_ago},
        )
    (done,) = maintain(engine, table)
    assert done.dropped[0] == f"accounts_audit_p{long_ago:%Y_%m_%d}"
    assert holds_now(engine)  # made first (from the present), so retention kept it
    run_partman_maintenance(engine)
    maintain(engine, table)


def test_maintain_at_makes_partitions_ahead_of_at_with_partman_too(
    partman_engine: sa.Engine,
) -> None:
    """``at`` means what it means without pg_partman: the partitions ahead of ``at`` exist
    afterwards (pg_partman's own maintenance keeps those ahead of the present)."""
    engine, table = partman_engine, days(retention=datetime.timedelta(days=3))
    table.metadata.create_all(engine)
    maintain(engine, table)
    later = datetime.datetime.now(UTC) + datetime.timedelta(days=10)
    (done,) = maintain(engine, table, at=later)
    ahead = [later + datetime.timedelta(days=n) for n in range(5)]
    assert [f"accounts_audit_p{day:%Y_%m_%d}" for day in ahead] == list(done.created)
    assert done.dropped == ()  # the present's partitions can still take writes
    (again,) = maintain(engine, table, at=later + datetime.timedelta(days=1))
    assert again.created == (f"accounts_audit_p{later + datetime.timedelta(days=5):%Y_%m_%d}",)
    run_partman_maintenance(engine)


def registrations(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(sa.text("SELECT parent_table FROM partman.part_config")).scalars()
        )


def converted_and_registered(engine: sa.Engine) -> sa.Table:
    """An audit table holding 5 rows, converted to partitions and registered with pg_partman."""
    unpartitioned = sa.Table(
        "accounts",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": True}},
    )
    unpartitioned.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(unpartitioned.insert(), [{"id": n, "balance": n} for n in range(5)])
    table = accounts()
    partition_audit_table(engine, table)
    maintain(engine, table)  # registers with pg_partman
    assert registrations(engine) == ["public.accounts_audit"]
    return table


def test_unpartitioning_unregisters_from_pg_partman(partman_engine: sa.Engine) -> None:
    """What ``op.unpartition_audit_table`` (an Alembic downgrade of the conversion) runs."""
    engine = partman_engine
    table = converted_and_registered(engine)
    with engine.begin() as connection:
        unpartition(connection, table.info[SPEC_KEY])
    assert registrations(engine) == []
    with engine.connect() as connection:
        templates = connection.execute(
            sa.text(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'partman' "
                "AND tablename LIKE 'template%'"
            )
        ).scalar_one()
    assert templates == 0
    run_partman_maintenance(engine)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM accounts_audit")).scalar() == 5


def test_dropping_a_registered_audit_table_unregisters_it(partman_engine: sa.Engine) -> None:
    engine, table = partman_engine, accounts()
    table.metadata.create_all(engine)
    maintain(engine, table)
    assert registrations(engine) == ["public.accounts_audit"]
    table.metadata.drop_all(engine)
    assert registrations(engine) == []
    run_partman_maintenance(engine)
    # Alembic's op.drop_table of the audit table alone: its Table carries no comment.
    table = accounts()
    table.metadata.create_all(engine)
    maintain(engine, table)
    with engine.begin() as connection:
        Operations(MigrationContext.configure(connection)).drop_table("accounts_audit")
    assert registrations(engine) == []
    run_partman_maintenance(engine)


def test_check_reports_a_registration_whose_table_is_not_partitioned(
    partman_engine: sa.Engine,
) -> None:
    engine = partman_engine
    table = converted_and_registered(engine)
    with engine.begin() as connection:
        (state,) = table_states(connection, [(table, table.info[SPEC_KEY])])
    assert "part_config" not in "; ".join(state.details)
    with engine.begin() as connection:
        saved = connection.execute(sa.text("SELECT * FROM partman.part_config")).mappings().one()
        unpartition(connection, table.info[SPEC_KEY])
        # As an earlier version's downgrade left it: the registration stays behind.
        columns = ", ".join(saved)
        connection.execute(
            sa.text(f"INSERT INTO partman.part_config ({columns}) VALUES (:{', :'.join(saved)})"),
            dict(saved),
        )
    unpartitioned = sa.Table(
        "accounts",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": True}},
    )
    with engine.begin() as connection:
        (state,) = table_states(connection, [(unpartitioned, unpartitioned.info[SPEC_KEY])])
    assert state.status == "outdated"
    assert any(
        "'public.accounts_audit'" in d and "partman.part_config" in d for d in state.details
    ), state.details


def named(name: str, **options: Any) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": True, "partition": "week", **options}},
    )


def partition_bounds(engine: sa.Engine, audit_table: str) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = CAST(:t AS regclass) ORDER BY 1"
            ),
            {"t": f'"{audit_table}"'},
        )
        return [(row[0], row[1]) for row in rows]


def waiting(engine: sa.Engine, audit_table: str) -> int:
    with engine.connect() as connection:
        found = [n for n, bound in partition_bounds(engine, audit_table) if bound == "DEFAULT"]
        return int(connection.execute(sa.text(f'SELECT count(*) FROM "{found[0]}"')).scalar_one())


def test_long_names_pg_partman_would_cut_stay_on_the_built_in_path(
    partman_engine: sa.Engine,
) -> None:
    """pg_partman cuts a long parent's name for its partitions' and DEFAULT partition's names
    (where the library hashes): two tables sharing their first 55 characters would share
    partition names, and the DEFAULT partition would not be found.  Such a table is not
    registered (a warning names it); one registered before is taken back, its DEFAULT
    partition found by its bound."""
    engine = partman_engine
    base = "customer_subscription_renewal_notification_preferences_"
    email, phone = named(base + "email"), named(base + "phone")
    for table in (email, phone):
        table.metadata.create_all(engine)
    audit_names = [t.info["audit.table"].name for t in (email, phone)]
    for table in (email, phone, email, phone):
        with pytest.warns(UserWarning, match="not registered with pg_partman.*longer than"):
            maintain(engine, table)
    assert registrations(engine) == []
    with engine.begin() as connection:
        for table in (email, phone):
            connection.execute(table.insert().values(id=1, balance=1))
    for name in audit_names:
        assert len([b for _, b in partition_bounds(engine, name) if b != "DEFAULT"]) == 5
        assert waiting(engine, name) == 0  # the present has a partition of its own
    # A table an earlier version registered: unregistered, DEFAULT partition renamed back.
    (email_audit, _) = audit_names
    with engine.begin() as connection:
        for partition, bound in partition_bounds(engine, email_audit):
            if bound != "DEFAULT":
                connection.execute(sa.text(f'DROP TABLE "{partition}"'))
        found = partman_of(connection)
        assert found is not None
        start = datetime.datetime.now(UTC) - datetime.timedelta(days=1)
        connection.execute(sa.text("SET LOCAL timezone = 'UTC'"))
        register(connection, found, None, email_audit, "week", start)
    assert registrations(engine) == [f"public.{email_audit}"]
    for _ in range(2):
        with pytest.warns(UserWarning, match="not registered with pg_partman"):
            maintain(engine, email)
    assert registrations(engine) == []
    defaults = [n for n, b in partition_bounds(engine, email_audit) if b == "DEFAULT"]
    assert defaults == [default_partition(email_audit)]
    run_partman_maintenance(engine)


def week_name(moment: datetime.datetime) -> str:
    return f"accounts_audit_p{moment:%Gw%V}"


def test_a_relation_holding_pg_partmans_next_name_is_refused_naming_it(
    partman_engine: sa.Engine,
) -> None:
    """pg_partman skips a period whose name a relation holds, silently (a gap in the middle);
    its names are predictable, so ``maintain`` refuses first, naming the table and owner."""
    engine, table = partman_engine, accounts()
    table.metadata.create_all(engine)
    fifth = datetime.datetime.now(UTC) + datetime.timedelta(weeks=5)  # pg_partman makes it too
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE TABLE {week_name(fifth)} (x int)"))
    with pytest.raises(AuditError, match=rf"{week_name(fifth)}.*owned by 'postgres'"):
        maintain(engine, table)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP TABLE {week_name(fifth)}"))
    maintain(engine, table)
    with engine.connect() as connection:
        beyond = range_partitions(connection, None, "accounts_audit")[-1].upper  # next week
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE TABLE {week_name(beyond)} (x int)"))
    with pytest.raises(AuditError, match=rf"{week_name(beyond)}.*owned by 'postgres'"):
        maintain(engine, table, at=beyond)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP TABLE {week_name(beyond)}"))
    (done,) = maintain(engine, table, at=beyond)
    assert week_name(beyond) in done.created


def test_names_pg_partman_cannot_quote_stay_on_the_built_in_path(
    partman_engine: sa.Engine,
) -> None:
    engine, table = partman_engine, named('o\'brien "t"')
    table.metadata.create_all(engine)
    with pytest.warns(UserWarning, match="o'brien.*not registered with pg_partman.*quote"):
        (done,) = maintain(engine, table)
    assert len(done.created) == 5
    assert registrations(engine) == []
    run_partman_maintenance(engine)


def test_a_kept_partition_holding_pg_partmans_name_does_not_wedge_maintain(
    partman_engine: sa.Engine,
) -> None:
    """Retention kept an old week's partition under pg_partman's name; a row of that week
    arrives (a restore, a late apply): its new partition takes the next name, as on the
    built-in path (pg_partman would skip the period and the drain would fail every run)."""
    engine = partman_engine
    table = accounts(retention=datetime.timedelta(weeks=1), retention_keep=True)
    table.metadata.create_all(engine)
    now = datetime.datetime.now(UTC)
    maintain(engine, table, at=now - datetime.timedelta(weeks=8))
    (kept,) = maintain(engine, table)
    old = now - datetime.timedelta(weeks=6)
    assert week_name(old) in kept.detached
    audit = table.info["audit.table"]
    with engine.begin() as connection:
        connection.execute(
            audit.insert().values(
                id=5, balance=5, audit_operation="I", audit_operation_timestamp=old
            )
        )
    (done,) = maintain(engine, table)
    assert done.created == (f"{week_name(old)}_2",) and done.drained == 1
    assert set(partitions(engine).values()) == {partition_comment("accounts_audit")}
    with engine.connect() as connection:
        moved = f"SELECT id FROM {week_name(old)}_2"
        assert list(connection.execute(sa.text(moved)).scalars()) == [5]
    run_partman_maintenance(engine)
