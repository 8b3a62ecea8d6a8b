"""The command line over change-data-capture: ``install`` captures a CDC table fully, ``cdc
run`` says what is wrong with the slot instead of failing like a bug, ``cdc create-slot`` makes
the slot a migration cannot, and ``cdc status`` notices a target the trail does not reach."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.extras
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

import cdc_models
from cli_run import run, url_text
from sqlalchemy_postgresql_audit import AuditConfigurationError
from sqlalchemy_postgresql_audit.cdc import Consumer

MODELS = "cdc_models:metadata"
SLOT = "cdc_cli_models"


@pytest.fixture
def plain(logical_database_url: URL) -> Iterator[sa.Engine]:
    """The source with ``ledger`` created by hand, holding rows, nothing audited yet."""
    engine = sa.create_engine(logical_database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE ledger (id integer PRIMARY KEY, amount integer)")
        connection.exec_driver_sql("INSERT INTO ledger VALUES (1, 10), (2, 20)")
    yield engine
    engine.dispose()


def _scalars(engine: sa.Engine, query: str) -> list[object]:
    with engine.connect() as connection:
        return list(connection.exec_driver_sql(query).scalars())


def test_install_creates_the_publication_slot_and_context_table_of_a_cdc_table(
    plain: sa.Engine,
) -> None:
    url = url_text(plain.url)
    before = run("cdc", "run", MODELS, "--source", url, "--once")
    assert before.returncode == 2
    assert f"slot '{SLOT}' does not exist" in before.stderr and "install" in before.stderr
    assert "internal error" not in before.stderr
    installed = run("install", MODELS, "--url", url, "--json")
    assert installed.returncode == 0, installed.stderr
    assert json.loads(installed.stdout)["cdc"] == [
        {"slot": SLOT, "publication": "audit_cdc", "tables": ["public.ledger"], "baseline_rows": 2}
    ]
    assert _scalars(plain, "SELECT slot_name FROM pg_replication_slots") == [SLOT]
    assert _scalars(
        plain, "SELECT tablename FROM pg_publication_tables WHERE pubname = 'audit_cdc'"
    ) == ["ledger"]
    assert _scalars(plain, "SELECT to_regclass('audit_cdc_context') IS NOT NULL") == [True]
    with plain.begin() as connection:  # another program, after the install
        connection.exec_driver_sql("UPDATE ledger SET amount = 11 WHERE id = 1")
    once = run("cdc", "run", MODELS, "--source", url, "--once", "--json")
    assert once.returncode == 0, once.stderr
    assert json.loads(once.stdout) == {"written": 1}
    trail = "SELECT audit_operation || id || amount FROM ledger_audit ORDER BY audit_id"
    assert _scalars(plain, trail) == ["B110", "B220", "U111"]
    removed = run("uninstall", MODELS, "--url", url)
    assert removed.returncode == 0, removed.stderr
    published = "SELECT tablename FROM pg_publication_tables WHERE pubname = 'audit_cdc'"
    assert _scalars(plain, published) == []


def test_install_without_tables_publishes_a_cdc_table_whose_audit_table_is_missing(
    plain: sa.Engine,
) -> None:
    installed = run("install", MODELS, "--url", url_text(plain.url), "--no-tables")
    assert installed.returncode == 0, installed.stderr
    assert "ledger_audit does not exist: the consumer fails until it does" in installed.stderr
    published = "SELECT tablename FROM pg_publication_tables WHERE pubname = 'audit_cdc'"
    assert _scalars(plain, published) == ["ledger"]


def test_the_ddl_script_of_a_cdc_table_creates_its_slot_first_and_publishes_it() -> None:
    script = run("ddl", MODELS, "--no-tables")
    assert script.returncode == 0, script.stderr
    slot = script.stdout.index("pg_create_logical_replication_slot")
    assert slot < script.stdout.index("ADD TABLE")


@pytest.fixture
def installed(logical_database_url: URL) -> Iterator[sa.Engine]:
    """The source with the CDC models created and installed from Python (``create_all``)."""
    engine = sa.create_engine(logical_database_url)
    cdc_models.metadata.create_all(engine)
    yield engine
    engine.dispose()


def _lose_slot(engine: sa.Engine) -> None:
    """Invalidate the slot: let the server remove WAL it still holds."""
    admin = engine.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
        connection.exec_driver_sql("SELECT pg_reload_conf()")
        try:
            for value in range(4):
                connection.exec_driver_sql("INSERT INTO ledger VALUES (%s, 0)", (100 + value,))
                connection.exec_driver_sql("SELECT pg_switch_wal()")
                connection.exec_driver_sql("CHECKPOINT")
        finally:
            connection.exec_driver_sql("ALTER SYSTEM RESET max_slot_wal_keep_size")
            connection.exec_driver_sql("SELECT pg_reload_conf()")
    assert _scalars(engine, "SELECT wal_status FROM pg_replication_slots") == ["lost"]


def test_install_and_run_refuse_a_lost_slot_saying_so(installed: sa.Engine) -> None:
    url = url_text(installed.url)
    _lose_slot(installed)
    again = run("install", MODELS, "--url", url)
    assert again.returncode == 2
    assert "invalidated" in again.stderr and "installed auditing" not in again.stdout
    consume = run("cdc", "run", MODELS, "--source", url, "--once")
    assert consume.returncode == 2
    assert "invalidated" in consume.stderr and "cdc status" in consume.stderr
    assert "internal error" not in consume.stderr


def test_run_names_the_process_that_reads_the_slot(installed: sa.Engine) -> None:
    url = url_text(installed.url)
    dsn = installed.url.set(drivername="postgresql").render_as_string(hide_password=False)
    reader = psycopg2.connect(dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection)
    try:
        cursor = reader.cursor()
        cursor.start_replication(
            slot_name=SLOT, options={"proto_version": "1", "publication_names": "audit_cdc"}
        )
        consume = run("cdc", "run", MODELS, "--source", url, "--once")
    finally:
        reader.close()
    assert consume.returncode == 2
    assert f"slot '{SLOT}' is being read by" in consume.stderr
    assert "internal error" not in consume.stderr


def test_a_missing_slot_is_named_with_create_slot_and_the_command_makes_it(
    logical_database_url: URL,
) -> None:
    engine = sa.create_engine(logical_database_url)
    try:
        cdc_models.metadata.create_all(engine)
        with engine.connect() as connection:  # what a database migrated by Alembic lacks
            connection.exec_driver_sql(f"SELECT pg_drop_replication_slot('{SLOT}')")
            connection.commit()
        with (
            pytest.raises(AuditConfigurationError, match=r"create_slot\(engine, metadata\)"),
            engine.begin() as connection,
        ):
            connection.execute(cdc_models.ledger.insert().values(id=1))
        made = run("cdc", "create-slot", MODELS, "--source", url_text(engine.url))
        assert made.returncode == 0, made.stderr
        assert _scalars(engine, "SELECT slot_name FROM pg_replication_slots") == [SLOT]
    finally:
        engine.dispose()
    fresh = sa.create_engine(logical_database_url)
    try:
        with fresh.begin() as connection:
            connection.execute(cdc_models.ledger.insert().values(id=1))
    finally:
        fresh.dispose()


def test_status_with_a_target_that_has_no_subscription_is_a_problem(
    logical_database_url: URL, second_database_url: URL
) -> None:
    installed = sa.create_engine(logical_database_url)
    try:
        cdc_models.metadata.create_all(installed)
    finally:
        installed.dispose()
    source = url_text(logical_database_url)
    status = run(
        "cdc", "status", MODELS, "--source", source, "--target", url_text(second_database_url)
    )
    assert status.returncode == 1
    assert "no subscription" in status.stdout + status.stderr
    itself = run("cdc", "status", MODELS, "--source", source, "--target", source)
    assert itself.returncode == 0, itself.stdout + itself.stderr


def test_run_with_a_subscription_says_what_its_count_leaves_out(
    installed: sa.Engine, second_database_url: URL
) -> None:
    """The subscription applies changes while no ``cdc run`` waits: the count of a later run
    does not hold them, and the output says so."""
    source, target = url_text(installed.url), url_text(second_database_url)
    consumer = Consumer(installed, second_database_url, metadata=cdc_models.metadata)
    try:
        consumer.run_once()
        with installed.begin() as connection:
            connection.execute(cdc_models.ledger.insert(), [{"id": n} for n in range(1, 6)])
        consumer.run_once()  # the trail holds the five rows before the command runs
        once = run("cdc", "run", MODELS, "--source", source, "--target", target, "--once")
        assert once.returncode == 0, once.stderr
        assert "caught up: 0 audit rows written while this run waited" in once.stdout
        assert "between runs" in once.stdout
    finally:
        consumer.drop()


def test_run_once_gives_up_after_its_timeout_and_status_shows_why(
    installed: sa.Engine, second_database_url: URL
) -> None:
    """The subscription applies nothing (disabled on the target): ``--timeout`` ends the wait,
    the run's error is recorded on the target, ``cdc status`` reports it, and the next run
    that succeeds clears it."""
    source, target = url_text(installed.url), url_text(second_database_url)
    consumer = Consumer(installed, second_database_url, metadata=cdc_models.metadata)
    trail = sa.create_engine(second_database_url, isolation_level="AUTOCOMMIT")
    try:
        consumer.run_once()  # the replica and the subscription
        with trail.connect() as connection:
            connection.exec_driver_sql(f"ALTER SUBSCRIPTION {SLOT} DISABLE")
        with installed.begin() as connection:
            connection.execute(cdc_models.ledger.insert().values(id=1))
        arguments = ("--source", source, "--target", target, "--once", "--timeout", "1")
        once = run("cdc", "run", MODELS, *arguments)
        assert once.returncode == 2, once.stdout + once.stderr
        assert "1.0 s" in once.stderr and "it is disabled on the target" in once.stderr
        status = run("cdc", "status", MODELS, "--source", source, "--target", target, "--json")
        assert status.returncode == 1, status.stdout + status.stderr
        found = json.loads(status.stdout)
        assert found["failures"] == 1 and "1.0 s" in found["last_error"]
        assert [p for p in found["problems"] if "failed 1 time(s) in a row" in p] != []
        with trail.connect() as connection:
            connection.exec_driver_sql(f"ALTER SUBSCRIPTION {SLOT} ENABLE")
        assert consumer.run_once() >= 1
        cleared = json.loads(
            run("cdc", "status", MODELS, "--source", source, "--target", target, "--json").stdout
        )
        assert (cleared["failures"], cleared["last_error"], cleared["problems"]) == (0, None, [])
    finally:
        trail.dispose()
        consumer.drop()


def test_timeout_must_be_a_positive_number_of_seconds(installed: sa.Engine) -> None:
    refused = run(
        "cdc", "run", MODELS, "--source", url_text(installed.url), "--once", "--timeout", "0"
    )
    assert refused.returncode == 2
    assert "--timeout" in refused.stderr and "positive number of seconds" in refused.stderr


#: The same models once their last CDC table went back to trigger mode.
_LEFT_CDC = """
import sqlalchemy as sa

metadata = sa.MetaData(naming_convention={"audit.slot": "cdc_cli_models"})
sa.Table(
    "parcel",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    info={"audit.options": {"enabled": True}},
)
"""


def test_a_slot_left_by_a_metadata_without_cdc_tables_is_reported_with_how_to_drop_it(
    installed: sa.Engine, tmp_path: Path
) -> None:
    """Nothing consumes it any more, and it holds WAL until the disk fills: ``check`` and
    ``cdc status`` say so (exit 1); before, both said all was well."""
    (tmp_path / "left_cdc.py").write_text(_LEFT_CDC)
    url = url_text(installed.url)
    with installed.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE parcel (id integer PRIMARY KEY)")
    made = run("install", "left_cdc:metadata", "--url", url, path=tmp_path)
    assert made.returncode == 0, made.stderr
    leftover = (
        r"slot 'cdc_cli_models' exists, but the metadata declares no mode='cdc' table.*"
        r"retains \d+ bytes of WAL.*pg_drop_replication_slot\('cdc_cli_models'\)"
    )
    checked = run("check", "left_cdc:metadata", "--url", url, path=tmp_path)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert re.search(leftover, " ".join((checked.stdout + checked.stderr).split()))
    assert "1 tables: 1 ok" in checked.stdout
    status = run("cdc", "status", "left_cdc:metadata", "--source", url, path=tmp_path)
    assert status.returncode == 1, status.stdout + status.stderr
    assert re.search(leftover, " ".join((status.stdout + status.stderr).split()))
    with installed.connect() as connection:
        connection.exec_driver_sql("SELECT pg_drop_replication_slot('cdc_cli_models')")
    checked = run("check", "left_cdc:metadata", "--url", url, path=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    status = run("cdc", "status", "left_cdc:metadata", "--source", url, path=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
