"""Partitioned audit tables: the DEFAULT partition keeps every write audited, ``maintain``
creates, drains and drops partitions (idempotent, one process at a time per table), retention
leaves an ``X`` marker that ``history`` shows, and a hold pauses retention."""

from __future__ import annotations

import datetime
import json
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from alembic_env import make_project
from cli_run import run, url_text
from sqlalchemy_postgresql_audit import (
    AuditConfigurationError,
    as_of,
    history,
    hold,
    maintain,
    release,
)
from sqlalchemy_postgresql_audit.declare.audit_table import AUDIT_TABLE_KEY
from sqlalchemy_postgresql_audit.install.grants import grant_least_privilege
from sqlalchemy_postgresql_audit.lifecycle.coverage import GAP, coverage, coverage_watched
from sqlalchemy_postgresql_audit.lifecycle.partition_catalog import (
    detached_partitions,
    partition_comment,
)

UTC = datetime.timezone.utc
#: A Wednesday; its ISO week starts on Monday 2026-03-02.
NOW = datetime.datetime(2026, 3, 4, 12, tzinfo=UTC)


def accounts(**options: Any) -> sa.Table:
    return sa.Table(
        "accounts",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": True, "partition": "week", **options}},
    )


def audit_table_of(table: sa.Table) -> sa.Table:
    audit: sa.Table = table.info[AUDIT_TABLE_KEY]
    return audit


def write_at(engine: sa.Engine, moment: datetime.datetime, statement: str) -> None:
    """Run ``statement``, then move its audit row's time to ``moment`` (past the append-only
    guard, as a replica's apply would: a test-only way to write at another time)."""
    with engine.begin() as connection:
        connection.execute(sa.text(statement))
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(
            sa.text(
                "UPDATE accounts_audit SET audit_operation_timestamp = :moment "
                "WHERE audit_id = (SELECT max(audit_id) FROM accounts_audit)"
            ),
            {"moment": moment},
        )


def partitions(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'accounts_audit'::regclass ORDER BY 1"
                )
            ).scalars()
        )


def test_bad_partition_options_are_refused_at_declaration() -> None:
    with pytest.raises(AuditConfigurationError, match="partition"):
        accounts(partition="year")
    with pytest.raises(AuditConfigurationError, match="retention"):
        accounts(retention=30)
    with pytest.raises(AuditConfigurationError, match=r"retention.*needs 'partition'"):
        accounts(partition=None, retention=datetime.timedelta(days=1))
    with pytest.raises(AuditConfigurationError, match="legacy_timestamp"):
        accounts(legacy_timestamp=True)


@pytest.mark.parametrize("mode", ["statement", "row"])
def test_a_write_without_its_partition_lands_in_default_and_is_audited(
    engine: sa.Engine, mode: str
) -> None:
    table = accounts(mode=mode)
    table.metadata.create_all(engine)
    assert partitions(engine) == ["accounts_audit_default"]
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=10))
        kind = connection.execute(
            sa.text("SELECT relkind FROM pg_class WHERE oid = 'accounts_audit'::regclass")
        ).scalar_one()
        indexes = (
            connection.execute(
                sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'accounts_audit'")
            )
            .scalars()
            .all()
        )
        waiting = connection.execute(sa.text("SELECT count(*) FROM accounts_audit_default"))
        assert waiting.scalar_one() == 1
    assert kind == "p"
    assert indexes  # the history index exists on the partitioned parent
    with engine.connect() as connection:
        assert [v.audit_operation for v in connection.execute(history(table, 1))] == ["I"]


def test_maintain_creates_drains_drops_and_is_idempotent(engine: sa.Engine) -> None:
    table = accounts(retention=datetime.timedelta(weeks=2))
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=10))
    # The row was written now, in the DEFAULT partition; maintain as of now drains it.
    first = maintain(engine, table)
    (done,) = first
    assert len(done.created) == 5
    assert done.drained == 1
    assert done.dropped == ()
    with engine.connect() as connection:
        assert (
            connection.execute(sa.text("SELECT count(*) FROM accounts_audit_default")).scalar_one()
            == 0
        )
        assert connection.execute(sa.text("SELECT count(*) FROM accounts_audit")).scalar_one() == 1
    again = maintain(engine, table)
    assert again[0].created == () and again[0].drained == 0 and again[0].dropped == ()
    later = datetime.datetime.now(UTC) + datetime.timedelta(weeks=3)
    (retained,) = maintain(engine, table, at=later)
    assert retained.dropped and retained.dropped == retained.detached
    assert retained.removed_before is not None
    assert retained.created  # the weeks after `later` are made ahead
    with engine.connect() as connection:
        left = (
            connection.execute(
                sa.text("SELECT audit_operation FROM accounts_audit ORDER BY audit_id")
            )
            .scalars()
            .all()
        )
    assert left == ["X"]
    with engine.connect() as connection:  # all of the row's history went: the marker says so
        assert [v.audit_operation for v in connection.execute(history(table, 1))] == ["X"]
    assert not set(retained.dropped) & set(partitions(engine))


def test_retention_under_append_only_leaves_a_marker_history_shows(engine: sa.Engine) -> None:
    table = accounts(append_only=True, retention=datetime.timedelta(weeks=1))
    table.metadata.create_all(engine)
    maintain(engine, table, at=NOW)
    write_at(engine, NOW - datetime.timedelta(weeks=1), "INSERT INTO accounts VALUES (1, 10)")
    write_at(engine, NOW, "UPDATE accounts SET balance = 20")
    (done,) = maintain(engine, table, at=NOW + datetime.timedelta(weeks=1))
    assert done.drained == 1  # the old week had no partition: its row waited in DEFAULT
    assert done.dropped == ("accounts_audit_p20260223",)
    with engine.connect() as connection:
        versions = connection.execute(history(table, 1)).all()
    assert [v.audit_operation for v in versions] == ["X", "U"]
    assert versions[0].audit_operation_timestamp == datetime.datetime(2026, 3, 2, tzinfo=UTC)
    # Only maintain drops history: a TRUNCATE naming a partition is refused like one of the
    # parent, even to the owner.
    for partition in partitions(engine):
        with pytest.raises(sa.exc.ProgrammingError, match="append-only"), engine.begin() as c:
            c.execute(sa.text(f"TRUNCATE {partition}"))


def test_a_hold_stops_retention_until_released(engine: sa.Engine) -> None:
    table = accounts(retention=datetime.timedelta(weeks=1))
    table.metadata.create_all(engine)
    maintain(engine, table, at=NOW)
    hold(engine, table, "litigation 2026-17")
    later = NOW + datetime.timedelta(weeks=3)
    (held,) = maintain(engine, table, at=later)
    assert held.held == "litigation 2026-17" and held.dropped == ()
    assert release(engine, table) is True
    (released,) = maintain(engine, table, at=later)
    assert released.held is None and released.dropped


def waiting_for_both(engine: sa.Engine, errors: list[BaseException]) -> None:
    """Return once two other client sessions wait for a lock (the table's or maintain's own);
    a maintain call that failed instead is reported as itself."""
    with engine.connect() as watcher:
        for _ in range(1200):
            if errors:
                raise errors[0]
            waiting = watcher.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND backend_type = 'client backend' AND datname = current_database()"
                )
            ).scalar_one()
            if waiting >= 2:
                return
            watcher.execute(sa.text("SELECT pg_sleep(0.05)"))
    raise AssertionError("the two maintain calls never waited together")


def test_two_maintain_calls_at_once_take_turns(engine: sa.Engine) -> None:
    table = accounts()
    table.metadata.create_all(engine)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(maintain(engine, table, at=NOW)[0])
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    with engine.begin() as connection:
        # Hold the table's lock so that both calls queue behind it and then run together.
        connection.execute(sa.text("LOCK TABLE accounts_audit IN SHARE MODE"))
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        waiting_for_both(engine, errors)
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(len(r.created) for r in results) == [0, 5]


MODELS = """
import datetime
import sqlalchemy as sa

metadata = sa.MetaData()
accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("balance", sa.Integer),
    info={"audit.options": {
        "enabled": True, "partition": "week", "retention": datetime.timedelta(weeks=1)
    }},
)
"""


def test_cli_check_reports_a_gap_and_maintain_hold_release_close_it(
    engine: sa.Engine, database_url: Any, tmp_path: Any
) -> None:
    (tmp_path / "partmodels.py").write_text(MODELS)
    target, url = "partmodels:metadata", ["--url", url_text(database_url)]
    table = accounts(retention=datetime.timedelta(weeks=1))
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=1))
    gap = run("check", target, *url, path=tmp_path)
    assert gap.returncode == 1, gap.stderr
    assert "gap" in gap.stdout and "1 rows wait in the DEFAULT partition" in gap.stdout
    done = run("--json", "maintain", target, *url, path=tmp_path)
    assert done.returncode == 0, done.stderr
    (maintained,) = json.loads(done.stdout)["maintained"]
    assert len(maintained["created"]) == 5 and maintained["drained"] == 1
    covered = run("check", target, *url, path=tmp_path)
    assert covered.returncode == 0, covered.stdout
    assert "partitions until" in covered.stdout
    held = run("hold", target, "accounts", "--reason", "audit 7", *url, path=tmp_path)
    assert held.returncode == 0, held.stderr
    later = (datetime.datetime.now(UTC) + datetime.timedelta(weeks=4)).isoformat()
    kept = run("--json", "maintain", target, *url, "--at", later, path=tmp_path)
    assert json.loads(kept.stdout)["maintained"][0]["held"] == "audit 7"
    assert run("release", target, "accounts", *url, path=tmp_path).returncode == 0
    dropped = run("--json", "maintain", target, *url, "--at", later, path=tmp_path)
    assert json.loads(dropped.stdout)["maintained"][0]["dropped"]


def test_check_reports_a_detach_left_pending(engine: sa.Engine) -> None:
    """A ``DETACH ... CONCURRENTLY`` interrupted while it waits for a reader leaves the
    partition pending: it takes no writes and its rows are out of history until FINALIZE.
    (PostgreSQL refuses a concurrent detach beside a DEFAULT partition, so someone dropped
    that first; the library never detaches concurrently.)"""
    table = accounts()
    table.metadata.create_all(engine)
    maintain(engine, table, at=NOW - datetime.timedelta(weeks=2))
    old = "accounts_audit_p20260216"
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE accounts_audit_default"))
    with engine.connect() as reader:
        reader.execute(sa.text("SELECT count(*) FROM accounts_audit"))  # holds its lock
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as detacher:
            detacher.execute(sa.text("SET statement_timeout = '1s'"))
            detach = sa.text(f"ALTER TABLE accounts_audit DETACH PARTITION {old} CONCURRENTLY")
            with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
                detacher.execute(detach)
    with engine.connect() as connection:
        found = coverage(connection, None, "accounts_audit", at=NOW)
    assert found.pending == (old,)
    watched = coverage_watched("accounts_audit", found)
    assert watched.state == GAP
    assert any(f"detach of partition {old} was left pending" in r for r in watched.reasons)
    with engine.begin() as connection:
        connection.execute(sa.text(f"ALTER TABLE accounts_audit DETACH PARTITION {old} FINALIZE"))
        assert coverage(connection, None, "accounts_audit", at=NOW).pending == ()


def assert_owner_only(engine: sa.Engine, writer: str) -> None:
    """Every partition of accounts_audit: the parent's owner, and no right for anyone else."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT c.relname, pg_get_userbyid(c.relowner) = pg_get_userbyid(p.relowner), "
                "has_table_privilege(:w, c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE'), "
                "c.relacl IS NULL OR NOT EXISTS (SELECT FROM aclexplode(c.relacl) a "
                "  WHERE a.grantee <> c.relowner) "
                "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent "
                "WHERE i.inhparent = 'accounts_audit'::regclass"
            ),
            {"w": writer},
        ).all()
    assert len(rows) == 6  # DEFAULT and five weeks
    assert all(
        same_owner and not writer_may and owner_only
        for _, same_owner, writer_may, owner_only in rows
    )


def test_writers_get_nothing_on_partitions_and_the_owner_owns_them(
    engine: sa.Engine, database_url: Any, make_role: Any
) -> None:
    writer = make_role("writer")
    quoted = engine.dialect.identifier_preparer.quote(writer)
    with engine.begin() as connection:
        # Hostile default privileges: every new table grants everything to the writer.
        connection.execute(sa.text(f"ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO {quoted}"))
        connection.execute(sa.text("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC"))
    table = accounts()
    table.metadata.create_all(engine)
    grant_least_privilege(engine, table.metadata, writers=[writer])
    maintain(engine, table)
    assert_owner_only(engine, writer)
    # A grant made on a partition later is taken back by the grant step.
    with engine.begin() as connection:
        connection.execute(sa.text(f"GRANT ALL ON accounts_audit_default TO {quoted}"))
    grant_least_privilege(engine, table.metadata, writers=[writer])
    assert_owner_only(engine, writer)
    as_writer = sa.create_engine(database_url.set(username=writer, password=None))
    try:
        with as_writer.begin() as connection:
            connection.execute(table.insert().values(id=1, balance=1))
    finally:
        as_writer.dispose()
    with engine.connect() as connection:
        assert [v.audit_operation for v in connection.execute(history(table, 1))] == ["I"]


def test_alembic_creates_the_partitioned_audit_table_and_keeps_its_partitions(
    engine: sa.Engine, tmp_path: Any
) -> None:
    table = accounts()
    project = make_project(tmp_path, engine.url)
    migration = project.revision(table.metadata, "accounts")
    assert "postgresql_partition_by='RANGE (audit_operation_timestamp)'" in migration
    project.upgrade(table.metadata)
    assert partitions(engine) == ["accounts_audit_default"]
    maintain(engine, table)
    project.check(table.metadata)  # no operation: partitions are not proposed for dropping
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=1))
    with engine.connect() as connection:
        assert [v.audit_operation for v in connection.execute(history(table, 1))] == ["I"]


def test_retention_keep_needs_retention() -> None:
    with pytest.raises(AuditConfigurationError, match=r"retention_keep.*needs 'retention'"):
        accounts(retention_keep=True)
    with pytest.raises(AuditConfigurationError, match="retention_keep"):
        accounts(retention=datetime.timedelta(weeks=1), retention_keep="yes")


def test_retention_keep_detaches_and_keeps_partitions_for_archiving(engine: sa.Engine) -> None:
    table = accounts(append_only=True, retention=datetime.timedelta(weeks=1), retention_keep=True)
    table.metadata.create_all(engine)
    maintain(engine, table, at=NOW)
    write_at(engine, NOW - datetime.timedelta(weeks=1), "INSERT INTO accounts VALUES (1, 10)")
    write_at(engine, NOW, "UPDATE accounts SET balance = 20")
    (done,) = maintain(engine, table, at=NOW + datetime.timedelta(weeks=1))
    kept = "accounts_audit_p20260223"
    assert done.detached == (kept,) and done.dropped == ()
    assert done.removed_before == datetime.datetime(2026, 3, 2, tzinfo=UTC)
    assert kept not in partitions(engine)
    with engine.connect() as connection:
        assert detached_partitions(connection, audit_table_of(table)) == [kept]
        comment = connection.execute(
            sa.text("SELECT obj_description(CAST(:t AS regclass), 'pg_class')"), {"t": kept}
        ).scalar_one()
        archived = connection.execute(sa.text(f"SELECT audit_operation, balance FROM {kept}")).all()
        versions = connection.execute(history(table, 1)).all()
    assert comment == partition_comment("accounts_audit")
    assert [tuple(row) for row in archived] == [("I", 10)]  # the rows are all there
    assert [v.audit_operation for v in versions] == ["X", "U"]  # the trail says it was removed
    # Kept history stays append-only, though DETACH took the parent's row guard away.
    with pytest.raises(sa.exc.ProgrammingError, match="append-only"), engine.begin() as c:
        c.execute(sa.text(f"UPDATE {kept} SET balance = 0"))
    again = maintain(engine, table, at=NOW + datetime.timedelta(weeks=1))
    assert again[0].detached == ()


def with_note() -> sa.Table:
    return sa.Table(
        "accounts",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.Integer),
        sa.Column("note", sa.String),
        info={"audit.options": {"enabled": True, "partition": "week"}},
    )


def partition_columns(engine: sa.Engine) -> dict[str, set[str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT c.relname, a.attname FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
                "AND NOT a.attisdropped WHERE i.inhparent = 'accounts_audit'::regclass"
            )
        ).all()
    found: dict[str, set[str]] = {}
    for partition, column in rows:
        found.setdefault(partition, set()).add(column)
    return found


def test_alembic_adds_a_column_to_every_partition_and_downgrades_keeping_rows(
    engine: sa.Engine, tmp_path: Any
) -> None:
    table = accounts()
    project = make_project(tmp_path, engine.url)
    project.revision(table.metadata, "accounts")
    project.upgrade(table.metadata)
    maintain(engine, table)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=1))
    noted = with_note()
    migration = project.revision(noted.metadata, "note")
    assert "op.add_column('accounts_audit'" in migration
    project.upgrade(noted.metadata)
    columns = partition_columns(engine)
    assert len(columns) == 6 and all("note" in each for each in columns.values())
    with engine.begin() as connection:
        connection.execute(noted.update().values(note="checked"))
    with engine.connect() as connection:
        versions = connection.execute(history(noted, 1)).all()
    assert [(v.audit_operation, v.note) for v in versions] == [("I", None), ("U", "checked")]
    project.downgrade(noted.metadata)
    columns = partition_columns(engine)
    assert all("note" not in each for each in columns.values())
    with engine.connect() as connection:
        kept = connection.execute(history(table, 1)).all()
    assert [v.audit_operation for v in kept] == ["I", "U"]  # rows stay; the new column goes
    project.upgrade(noted.metadata)
    assert all("note" in each for each in partition_columns(engine).values())


def test_the_default_partition_is_guarded_from_creation(engine: sa.Engine) -> None:
    """Rows wait in the DEFAULT partition until the first maintain: a TRUNCATE naming it is
    refused under append_only from the start, not only once maintain has run."""
    table = accounts(append_only=True)
    table.metadata.create_all(engine)
    assert partitions(engine) == ["accounts_audit_default"]
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=1))
    with pytest.raises(sa.exc.ProgrammingError, match="append-only"), engine.begin() as c:
        c.execute(sa.text("TRUNCATE accounts_audit_default"))
    with engine.connect() as connection:
        assert [v.audit_operation for v in connection.execute(history(table, 1))] == ["I"]


def test_a_history_query_reads_each_partition_once(engine: sa.Engine) -> None:
    """Planning dominates a history query over many partitions where the driver does not
    prepare it (psycopg2), and each reference to the partitioned table is planned over all of
    them: the row's versions and the markers are read together, in one scan of each."""
    table = accounts()
    table.metadata.create_all(engine)
    for week in range(8):
        maintain(engine, table, at=NOW + datetime.timedelta(weeks=week))
    query = history(table, 1).compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        plan = "\n".join(
            connection.exec_driver_sql(f"EXPLAIN (COSTS OFF) {query}").scalars().all()
        )
    names = partitions(engine)
    assert len(names) == 13
    for name in names:
        assert plan.count(f" on {name} ") == 1, (name, plan)


@pytest.mark.parametrize("capture", [(), ("transaction_id",)])
def test_one_rows_as_of_reads_each_partition_once(
    engine: sa.Engine, capture: tuple[str, ...]
) -> None:
    """The row's versions and the TRUNCATE markers before ``at`` are read in one scan, as in a
    history query: every partition the time bound leaves is planned once, not twice."""
    table = accounts(capture=list(capture))
    table.metadata.create_all(engine)
    for week in range(8):
        maintain(engine, table, at=NOW - datetime.timedelta(weeks=week))
    query = as_of(table, NOW, 1).compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        plan = "\n".join(
            connection.exec_driver_sql(f"EXPLAIN (COSTS OFF) {query}").scalars().all()
        )
    names = partitions(engine)
    assert " on accounts_audit_p20260112 " in plan  # seven weeks before NOW's
    for name in names:
        assert plan.count(f" on {name} ") <= 1, (name, plan)


@pytest.mark.parametrize("capture", [(), ("transaction_id",)])
def test_as_of_skips_the_partitions_written_after_its_moment(
    engine: sa.Engine, capture: tuple[str, ...]
) -> None:
    table = accounts(capture=list(capture))
    table.metadata.create_all(engine)
    for week in range(8):
        maintain(engine, table, at=NOW + datetime.timedelta(weeks=week))
    for query in (as_of(table, NOW, 1), as_of(table, NOW)):
        compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
        with engine.connect() as connection:
            plan = "\n".join(
                connection.exec_driver_sql(f"EXPLAIN (COSTS OFF) {compiled}").scalars().all()
            )
        assert " on accounts_audit_p20260302 " in plan  # NOW's week
        assert " on accounts_audit_p20260309 " not in plan, plan  # written after NOW
