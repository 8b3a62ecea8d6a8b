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
from partition_models import accounts
from sqlalchemy_postgresql_audit import (
    AuditConfigurationError,
    AuditError,
    MaintenanceError,
    as_of,
    history,
    hold,
    maintain,
    release,
    removed_history,
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
    now = datetime.datetime.now(UTC)
    (ahead,) = maintain(engine, table, at=now + datetime.timedelta(weeks=3))
    assert ahead.created  # the weeks after `at` are made ahead
    # The present week can still receive writes: retention never removes it, whatever `at`.
    assert ahead.detached == () and ahead.removed_before is None
    # A row of a week long gone waits in DEFAULT; maintain drains it, and retention then
    # drops its week, leaving the marker at the front of the trail.
    old = now - datetime.timedelta(weeks=4)
    write_at(engine, old, "INSERT INTO accounts VALUES (2, 20)")
    (retained,) = maintain(engine, table)
    monday = (old - datetime.timedelta(days=old.weekday())).strftime("%Y%m%d")
    assert retained.drained == 1 and retained.created == (f"accounts_audit_p{monday}",)
    assert retained.dropped == retained.detached == (f"accounts_audit_p{monday}",)
    assert retained.removed_before is not None and retained.removed_before <= now
    with engine.connect() as connection:
        assert [v.audit_operation for v in connection.execute(history(table, 2))] == ["X"]
        assert [v.audit_operation for v in connection.execute(history(table, 1))] == ["I"]
        marker, first_left = connection.execute(
            sa.text(
                "SELECT max(audit_operation_timestamp) FILTER (WHERE audit_operation = 'X'), "
                "min(audit_operation_timestamp) FILTER (WHERE audit_operation <> 'X') "
                "FROM accounts_audit"
            )
        ).one()
    assert marker <= first_left  # the marker is never dated after a row that stays
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
    release(engine, table, "litigation 2026-17")
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
            watcher.commit()  # pg_stat_activity is read once per transaction
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
    # A catch-up from three weeks ago makes the weeks since, which retention then removes.
    earlier = (datetime.datetime.now(UTC) - datetime.timedelta(weeks=3)).isoformat()
    caught_up = run("maintain", target, *url, "--at", earlier, path=tmp_path)
    assert caught_up.returncode == 0, caught_up.stderr
    held = run("hold", target, "accounts", "--reason", "audit 7", *url, path=tmp_path)
    assert held.returncode == 0, held.stderr
    kept = run("--json", "maintain", target, *url, path=tmp_path)
    assert json.loads(kept.stdout)["maintained"][0]["held"] == "audit 7"
    released = run("release", target, "accounts", "--reason", "audit 7", *url, path=tmp_path)
    assert released.returncode == 0, released.stderr
    dropped = run("--json", "maintain", target, *url, path=tmp_path)
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
        plan = "\n".join(connection.exec_driver_sql(f"EXPLAIN (COSTS OFF) {query}").scalars().all())
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
        plan = "\n".join(connection.exec_driver_sql(f"EXPLAIN (COSTS OFF) {query}").scalars().all())
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


def test_the_drain_keeps_values_of_audit_columns_the_model_no_longer_declares(
    engine: sa.Engine,
) -> None:
    """A source column dropped from the model keeps its audit column and history: the drain
    copies every column the audit table has in the database, not only the declared ones."""
    noted = with_note()
    noted.metadata.create_all(engine)
    with engine.begin() as connection:  # before any maintain: into the DEFAULT partition
        connection.execute(noted.insert().values(id=1, balance=1, note="first"))
        connection.execute(noted.update().values(note="second"))
        connection.execute(sa.text("ALTER TABLE accounts DROP COLUMN note"))
    (done,) = maintain(engine, accounts())  # the model without the column
    assert done.drained == 2
    with engine.connect() as connection:
        notes = connection.execute(
            sa.text("SELECT note FROM accounts_audit ORDER BY audit_id")
        ).scalars()
        assert list(notes) == ["first", "second"]


def test_a_kept_partition_does_not_block_making_its_period_again(engine: sa.Engine) -> None:
    """Retention kept a week's partition (detached, under its name); a catch-up ``at`` makes
    that week again: the new partition takes another name, and later runs keep working."""
    table = accounts(retention=datetime.timedelta(weeks=1), retention_keep=True)
    table.metadata.create_all(engine)
    maintain(engine, table, at=NOW - datetime.timedelta(weeks=1))
    (retained,) = maintain(engine, table, at=NOW + datetime.timedelta(weeks=1))
    assert retained.detached == ("accounts_audit_p20260223",)
    (again,) = maintain(engine, table, at=NOW - datetime.timedelta(weeks=1))
    assert again.created == ("accounts_audit_p20260223_2",)
    write_at(
        engine, datetime.datetime(2026, 2, 24, tzinfo=UTC), "INSERT INTO accounts VALUES (1, 1)"
    )
    assert maintain(engine, table, at=NOW - datetime.timedelta(weeks=1))[0].drained == 0
    (later,) = maintain(engine, table, at=NOW + datetime.timedelta(weeks=1))
    assert later.detached == ("accounts_audit_p20260223_2",)
    with engine.connect() as connection:
        kept = detached_partitions(connection, audit_table_of(table))
        row = connection.execute(sa.text("SELECT id FROM accounts_audit_p20260223_2")).all()
    assert kept == ["accounts_audit_p20260223", "accounts_audit_p20260223_2"]
    assert [tuple(r) for r in row] == [(1,)]


def test_a_table_squatting_a_partition_name_is_refused_and_the_others_are_maintained(
    engine: sa.Engine, make_role: Any
) -> None:
    squatter = make_role("squatter")
    quoted = engine.dialect.identifier_preparer.quote(squatter)
    metadata = sa.MetaData()
    accounts(retention=datetime.timedelta(weeks=1)).to_metadata(metadata)
    sa.Table(
        "zeta",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        info={"audit.options": {"enabled": True, "partition": "week"}},
    )
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text(f"GRANT CREATE ON SCHEMA public TO {quoted}"))
        connection.execute(sa.text(f"SET LOCAL ROLE {quoted}"))
        connection.execute(sa.text("CREATE TABLE accounts_audit_p20260309 (x int)"))
    with pytest.raises(MaintenanceError) as raised:
        maintain(engine, metadata, at=NOW)
    error = raised.value
    assert [name for name, _ in error.failures] == ["accounts_audit"]
    message = str(error)
    assert "accounts_audit_p20260309" in message and repr(squatter) in message
    assert "rename or drop it" in message
    assert [done.audit_table for done in error.done] == ["zeta_audit"]  # maintained anyway
    assert len(error.done[0].created) == 5
    with engine.connect() as connection:  # never adopted
        assert (
            connection.execute(
                sa.text(
                    "SELECT relispartition FROM pg_class WHERE relname = 'accounts_audit_p20260309'"
                )
            ).scalar_one()
            is False
        )


def test_an_at_out_of_range_is_refused_naming_it(engine: sa.Engine) -> None:
    table = accounts(retention=datetime.timedelta(weeks=1))
    table.metadata.create_all(engine)
    for at in (datetime.datetime(9999, 12, 1, tzinfo=UTC), datetime.datetime(1, 1, 2, tzinfo=UTC)):
        with pytest.raises(AuditError, match=r"at=.*out of range.*accounts_audit"):
            maintain(engine, table, at=at)


def test_partitions_of_years_before_1000_have_zero_padded_names(engine: sa.Engine) -> None:
    table = accounts()
    table.metadata.create_all(engine)
    (done,) = maintain(engine, table, at=datetime.datetime(1, 1, 10, tzinfo=UTC))
    assert done.created[0] == "accounts_audit_p00010108"
    (month,) = maintain(engine, accounts(partition="month"), at=NOW)  # normal years unchanged
    assert "accounts_audit_p202603" in month.created


def test_removed_before_is_in_utc_whatever_the_session_time_zone(database_url: Any) -> None:
    engine = sa.create_engine(database_url, connect_args={"options": "-c timezone=Asia/Tokyo"})
    try:
        table = accounts(retention=datetime.timedelta(weeks=1))
        table.metadata.create_all(engine)
        maintain(engine, table, at=NOW - datetime.timedelta(weeks=1))
        (done,) = maintain(engine, table, at=NOW + datetime.timedelta(weeks=1))
    finally:
        engine.dispose()
    assert done.removed_before == datetime.datetime(2026, 3, 2, tzinfo=UTC)
    assert done.removed_before.tzinfo == UTC


def test_long_table_names_keep_the_period_in_partition_names(engine: sa.Engine) -> None:
    """Names too long for PostgreSQL shorten the table's part, never the period's, so that
    kept partitions still list oldest first."""
    name = "a" * 50 + "accounts"
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        info={
            "audit.options": {
                "enabled": True,
                "partition": "day",
                "retention": datetime.timedelta(days=1),
                "retention_keep": True,
            }
        },
    )
    table.metadata.create_all(engine)
    maintain(engine, table, at=NOW - datetime.timedelta(days=5))
    (done,) = maintain(engine, table, at=NOW)
    days = ["_p20260227", "_p20260228", "_p20260301", "_p20260302"]
    assert [p[-len(day) :] for p, day in zip(done.detached, days, strict=True)] == days
    assert all(len(partition.encode()) <= 63 for partition in done.detached)
    with engine.connect() as connection:
        kept = detached_partitions(connection, audit_table_of(table))
    assert kept == list(done.detached)


def waiting_maintain(engine: sa.Engine, results: list[Any]) -> None:
    """Return once the maintain call waits for a lock; one that ended instead is reported
    as itself."""
    with engine.connect() as watcher:
        for _ in range(1200):
            if results:
                raise AssertionError(f"maintain ended: {results[0]!r}")
            waiting = watcher.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    "WHERE NOT l.granted AND a.datname = current_database()"
                )
            ).scalar_one()
            if waiting:
                return
            watcher.execute(sa.text("SELECT pg_sleep(0.05)"))
    raise AssertionError("maintain never waited")


def maintain_in_thread(engine: sa.Engine, table: sa.Table) -> tuple[threading.Thread, list[Any]]:
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(maintain(engine, table)[0])
        except BaseException as error:  # pragma: no cover - reported by the caller
            results.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, results


def test_rows_of_ended_periods_are_copied_before_writers_are_held(engine: sa.Engine) -> None:
    """After a maintenance gap the DEFAULT partition holds rows of weeks that have ended: they
    are copied into their partitions before the lock writers wait for (only the check and the
    ATTACH run under it), so a writer gets through while the copy is under way."""
    table = accounts()
    table.metadata.create_all(engine)
    maintain(engine, table)
    old = datetime.datetime.now(UTC) - datetime.timedelta(weeks=3)
    write_at(engine, old, "INSERT INTO accounts VALUES (1, 1)")  # waits in DEFAULT
    monday = (old - datetime.timedelta(days=old.weekday())).strftime("%Y%m%d")
    with engine.connect() as blocker:
        # A table of the same name, not committed: maintain's CREATE waits for this session.
        blocker.execute(sa.text(f"CREATE TABLE accounts_audit_p{monday} (x int)"))
        thread, results = maintain_in_thread(engine, table)
        waiting_maintain(engine, results)  # its CREATE of that name waits
        with engine.begin() as writer:  # not held: maintain is copying, not locking
            writer.execute(sa.text("SET LOCAL lock_timeout = '20s'"))
            writer.execute(table.insert().values(id=2, balance=2))
        blocker.rollback()
    thread.join()
    (done,) = results
    assert not isinstance(done, BaseException), done
    assert done.drained == 1 and done.created == (f"accounts_audit_p{monday}",)
    with engine.connect() as connection:
        for key in (1, 2):
            assert [v.audit_operation for v in connection.execute(history(table, key))] == ["I"]
        waiting = connection.execute(sa.text("SELECT count(*) FROM accounts_audit_default"))
        assert waiting.scalar_one() == 0


def test_a_row_of_an_ended_period_arriving_during_the_copy_is_moved_too(
    engine: sa.Engine,
) -> None:
    """The copy made before the lock is checked under it: a row that reached the DEFAULT
    partition's ended period since is not dropped; that period is moved under the lock."""
    table = accounts()
    table.metadata.create_all(engine)
    maintain(engine, table)
    old = datetime.datetime.now(UTC) - datetime.timedelta(weeks=3)
    write_at(engine, old, "INSERT INTO accounts VALUES (1, 1)")
    with engine.connect() as late:
        late.execute(table.insert().values(id=2, balance=2))  # holds the parent's ROW EXCLUSIVE
        thread, results = maintain_in_thread(engine, table)
        waiting_maintain(engine, results)  # the copy is made; its lock waits
        late.execute(sa.text("SET LOCAL session_replication_role = replica"))
        late.execute(
            sa.text("UPDATE accounts_audit SET audit_operation_timestamp = :t WHERE id = 2"),
            {"t": old},
        )
        late.commit()
    thread.join()
    (done,) = results
    assert not isinstance(done, BaseException), done
    assert done.drained == 2
    with engine.connect() as connection:
        ids = connection.execute(sa.text("SELECT id FROM accounts_audit ORDER BY id")).scalars()
        assert list(ids) == [1, 2]
        waiting = connection.execute(sa.text("SELECT count(*) FROM accounts_audit_default"))
        assert waiting.scalar_one() == 0


def test_retention_across_a_gap_leaves_nothing_for_the_next_runs(engine: sa.Engine) -> None:
    """The last partition retention removes is followed by missing ones (a catch-up ``at``
    left a gap): the marker is dated at the first partition that stays, so it lands there,
    and the next runs with the same ``at`` find nothing to do (no partition made to hold the
    marker, drained and removed again, run after run)."""
    for keep in (False, True):
        table = accounts(partition="day", retention=datetime.timedelta(days=1), retention_keep=keep)
        table.metadata.create_all(engine)
        maintain(engine, table, at=NOW - datetime.timedelta(days=10))  # Feb 22 to Feb 26
        write_at(
            engine,
            datetime.datetime(2026, 3, 4, 13, tzinfo=UTC),
            "INSERT INTO accounts VALUES (1, 1)",
        )
        (first,) = maintain(engine, table, at=NOW)
        assert len(first.detached) == 5
        for _ in range(2):
            (again,) = maintain(engine, table, at=NOW)
            assert (again.created, again.drained, again.detached, again.dropped) == ((), 0, (), ())
        # Nothing was written from Feb 27 to Mar 3: the trail holds nothing before Mar 4.
        assert first.removed_before == datetime.datetime(2026, 3, 4, tzinfo=UTC)
        with engine.connect() as connection:
            default = connection.execute(sa.text("SELECT count(*) FROM accounts_audit_default"))
            assert default.scalar_one() == 0
            versions = [v.audit_operation for v in connection.execute(history(table, 1))]
            removed = removed_history(connection, table)
            kept = detached_partitions(connection, audit_table_of(table))
        assert versions == ["I"]  # its history is whole: no marker before its INSERT
        assert removed is not None and removed.before == first.removed_before
        assert len(kept) == (5 if keep else 0)
        table.metadata.drop_all(engine)
        with engine.begin() as connection:
            for name in kept:
                connection.execute(sa.text(f"DROP TABLE {name}"))


def test_offline_migration_emits_the_default_partition(tmp_path: Any, engine: sa.Engine) -> None:
    """``alembic upgrade --sql`` of a new partitioned audit table writes the DEFAULT
    partition, its comment and the revocation of default privileges into the script (it
    cannot ask the database who holds them), and the script works."""
    table = accounts(append_only=True)
    project = make_project(tmp_path, engine.url)
    project.revision(table.metadata, "accounts")
    script = project.offline_sql(table.metadata, "head")
    assert "PARTITION OF accounts_audit DEFAULT" in script
    assert partition_comment("accounts_audit") in script
    assert "aclexplode" in script  # rights are taken back where the script runs
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE alembic_version")  # made by the revision
        with engine.connect() as connection:
            connection.exec_driver_sql(script)  # BEGIN; ... COMMIT;
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "ALTER DEFAULT PRIVILEGES REVOKE SELECT ON TABLES FROM PUBLIC"
            )
    assert partitions(engine) == ["accounts_audit_default"]
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=1))
    with engine.connect() as connection:
        assert (
            connection.execute(sa.text("SELECT count(*) FROM accounts_audit_default")).scalar_one()
            == 1
        )
        acl = connection.execute(
            sa.text("SELECT relacl::text FROM pg_class WHERE relname = 'accounts_audit_default'")
        ).scalar_one()
        with pytest.raises(sa.exc.DBAPIError, match="append"):
            connection.execute(sa.text("TRUNCATE accounts_audit_default"))
    assert acl is None or "=r/" not in acl  # PUBLIC's SELECT taken back


@pytest.mark.parametrize("partition", [None, "week"])
def test_append_only_on_names_holding_a_colon(engine: sa.Engine, partition: str | None) -> None:
    """A ``:`` is written ``U&"...\\003a..."`` in identifiers (hidden from bind parameters);
    the guard's partition loop names the table inside a string for ``to_regclass``, where
    only the plain quoting is valid."""
    with engine.begin() as connection:
        connection.exec_driver_sql('CREATE SCHEMA "Sch :x"')
    options: dict[str, Any] = {"enabled": True, "append_only": True}
    if partition:
        options["partition"] = partition
    table = sa.Table(
        "acc :y",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.Integer),
        schema="Sch :x",
        info={"audit.options": options},
    )
    table.metadata.create_all(engine)  # PostgreSQL 15 refused the guard's loop here
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=1))
    audit = audit_table_of(table)
    with engine.connect() as connection:
        assert connection.execute(sa.select(audit.c.id)).scalars().all() == [1]
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            connection.execute(audit.delete())
    if partition:  # later versions found no table by that name, and guarded no partition
        with engine.connect() as connection, pytest.raises(sa.exc.DBAPIError, match="append"):
            connection.exec_driver_sql('TRUNCATE "Sch :x"."acc :y_audit_default"')
