"""Change-data-capture mode on the source: declaring it, installing the publication and slot,
and the checks that call a CDC table audited only when its changes can reach a consumer."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

import cdc_models
from alembic_env import make_project
from cdc_decoder_setup import drop_slot
from cli_run import run, url_text
from sqlalchemy_postgresql_audit import (
    AuditConfigurationError,
    audit_context,
    install_audit_triggers,
)
from sqlalchemy_postgresql_audit.cdc import Consumer, create_slot
from sqlalchemy_postgresql_audit.declare.declaration import declare_metadata
from sqlalchemy_postgresql_audit.install.catalog import default_schema, installed_audits
from sqlalchemy_postgresql_audit.install.compare import compare


def _table(metadata: sa.MetaData, **options: object) -> sa.Table:
    return sa.Table(
        "account",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.Text),
        info={"audit.options": {"enabled": True, **options}},
    )


def test_mode_names_cdc_among_its_choices() -> None:
    with pytest.raises(AuditConfigurationError, match="'statement', 'row' or 'cdc'"):
        declare_metadata(_table(sa.MetaData(), mode="cdcc").metadata)


def test_switching_to_cdc_replaces_the_triggers_by_the_publication(
    logical_database_url: URL,
) -> None:
    engine = sa.create_engine(logical_database_url)
    slot = f"cdc_{uuid.uuid4().hex[:12]}"
    try:
        _table(sa.MetaData()).metadata.create_all(engine)
        cdc = sa.MetaData(naming_convention={"audit.slot": slot})
        account = _table(cdc, mode="cdc")
        install_audit_triggers(cdc, engine)
        with engine.connect() as connection:
            triggers = connection.exec_driver_sql(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'account'::regclass"
            ).scalar()
            published = (
                connection.exec_driver_sql(
                    "SELECT tablename FROM pg_publication_tables WHERE pubname = 'audit_cdc'"
                )
                .scalars()
                .all()
            )
            slots = (
                connection.exec_driver_sql(
                    "SELECT plugin FROM pg_replication_slots WHERE slot_name = %s", (slot,)
                )
                .scalars()
                .all()
            )
            context_published = (
                connection.exec_driver_sql(
                    "SELECT tablename FROM pg_publication_tables "
                    "WHERE pubname = 'audit_cdc_context' ORDER BY tablename"
                )
                .scalars()
                .all()
            )
            default = default_schema(connection)
            changes = compare(
                [account.info["audit.spec"]], installed_audits(connection, [default]), default
            )
        assert triggers == 0
        assert published == ["account"]
        assert slots == ["pgoutput"]
        # the joins table holds design 1's subscription at a table's install until it is seeded
        assert context_published == ["audit_cdc_context", "audit_cdc_context_joins"]
        assert changes == []
        with engine.begin() as connection:
            connection.execute(account.insert().values(id=1, owner="a"))
    finally:
        engine.dispose()


def test_switching_to_cdc_warns_only_about_triggers_the_library_did_not_make(
    logical_database_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    """The statement-mode key trigger is the library's own: dropped without a warning; a
    trigger made by hand that calls the audit function is dropped with one."""
    engine = sa.create_engine(logical_database_url)
    cdc = sa.MetaData(naming_convention={"audit.slot": f"cdc_{uuid.uuid4().hex[:12]}"})
    try:
        _table(sa.MetaData()).metadata.create_all(engine)
        with engine.begin() as connection:
            own = connection.execute(
                sa.text(
                    "SELECT tgname FROM pg_trigger WHERE tgrelid = 'account'::regclass "
                    "AND right(tgname, 4) = '_key'"
                )
            ).scalar_one()
            connection.exec_driver_sql(
                "CREATE TRIGGER stray AFTER INSERT ON account "
                "FOR EACH STATEMENT EXECUTE FUNCTION public_account_audit()"
            )
        _table(cdc, mode="cdc")
        with caplog.at_level(logging.INFO, "sqlalchemy_postgresql_audit"):
            install_audit_triggers(cdc, engine)
        warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert [m for m in warned if own in m] == []
        assert [m.split(":")[0] for m in warned] == [
            "Dropping trigger stray on table public.account"
        ]
        assert _trigger_count(engine) == 0
    finally:
        drop_slot(engine, cdc)
        engine.dispose()


def test_a_slot_cannot_be_made_in_a_transaction_that_wrote(logical_database_url: URL) -> None:
    engine = sa.create_engine(logical_database_url)
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdc_{uuid.uuid4().hex[:12]}"})
    _table(metadata, mode="cdc")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE account (id integer primary key, owner text)")
            connection.exec_driver_sql(
                "CREATE TABLE account_audit (audit_id bigint, audit_operation char(1), "
                "audit_operation_timestamp timestamptz, audit_current_user text, id integer, "
                "owner text)"
            )
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE unrelated (id integer)")
            with pytest.raises(AuditConfigurationError, match="create_slot"):
                install_audit_triggers(metadata, connection)
    finally:
        engine.dispose()


@pytest.fixture
def cli_source(logical_database_url: URL) -> Iterator[sa.Engine]:
    engine = sa.create_engine(logical_database_url)
    cdc_models.metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_cli_runs_the_consumer_once_and_reports_its_status(
    cli_source: sa.Engine, second_database_url: URL
) -> None:
    source, target = url_text(cli_source.url), url_text(second_database_url)
    with cli_source.begin() as connection:
        connection.execute(cdc_models.ledger.insert(), [{"id": 1}, {"id": 2}])
    try:
        once = run(
            "cdc",
            "run",
            "cdc_models:metadata",
            "--source",
            source,
            "--target",
            target,
            "--once",
            "--json",
        )
        assert once.returncode == 0, once.stderr
        assert json.loads(once.stdout) == {"written": 2}
        status = run(
            "cdc", "status", "cdc_models:metadata", "--source", source, "--target", target, "--json"
        )
        assert status.returncode == 0, status.stderr
        document = json.loads(status.stdout)
        assert document["slot"] == "cdc_cli_models" and document["subscription_enabled"]
        assert document["problems"] == []
        check = run("check", "cdc_models:metadata", "--url", source, "--json")
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        Consumer(cli_source, second_database_url, metadata=cdc_models.metadata).drop()
    missing = run(
        "cdc",
        "status",
        "cdc_models:metadata",
        "--source",
        url_text(cli_source.url.set(database="postgres")),
    )
    assert missing.returncode == 1
    assert "decodes database" in missing.stdout + missing.stderr


def test_cli_without_a_target_decodes_into_the_source_database(cli_source: sa.Engine) -> None:
    with cli_source.begin() as connection:
        connection.execute(cdc_models.ledger.insert(), [{"id": 1}, {"id": 2}])
        connection.execute(cdc_models.ledger.update().values(amount=5))
    source = url_text(cli_source.url)
    once = run("cdc", "run", "cdc_models:metadata", "--source", source, "--once", "--json")
    assert once.returncode == 0, once.stderr
    assert json.loads(once.stdout) == {"written": 4}
    with cli_source.connect() as connection:
        trail = connection.exec_driver_sql(
            "SELECT audit_operation, id, amount FROM ledger_audit ORDER BY audit_id"
        ).all()
    assert [tuple(r) for r in trail] == [("I", 1, None), ("I", 2, None), ("U", 1, 5), ("U", 2, 5)]


def test_alembic_moves_a_table_to_cdc_and_back_and_sees_publication_drift(
    tmp_path: Path, logical_database_url: URL
) -> None:
    slot = f"cdc_{uuid.uuid4().hex[:12]}"

    def models(mode: str | None) -> sa.MetaData:
        metadata = sa.MetaData(naming_convention={"audit.slot": slot})
        _table(metadata, **({"mode": mode} if mode else {}))
        return metadata

    engine = sa.create_engine(logical_database_url)
    project = make_project(tmp_path, engine.url)
    try:
        project.revision(models(None), "trigger mode")
        project.upgrade(models(None))
        create_slot(engine, models("cdc"))
        switched = project.revision(models("cdc"), "cdc mode")
        assert "op.drop_audit_trigger(" in switched
        assert "op.publish_audit_table(" in switched
        assert "replica_identity='default'" in switched
        project.upgrade(models("cdc"))
        assert _published(engine) == ["account"]
        assert _trigger_count(engine) == 0
        project.check(models("cdc"))
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER PUBLICATION audit_cdc DROP TABLE account")
        drift = project.revision(models("cdc"), "drift")
        assert "op.publish_audit_table(" in drift
        project.upgrade(models("cdc"))
        project.downgrade(models("cdc"), "-2")
        assert _published(engine) == []
        assert _trigger_count(engine) > 0
    finally:
        engine.dispose()


def _published(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.exec_driver_sql(
                "SELECT tablename FROM pg_publication_tables WHERE pubname = 'audit_cdc'"
            ).scalars()
        )


def _trigger_count(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.exec_driver_sql(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'account'::regclass"
            ).scalar_one()
        )


def test_context_in_a_database_without_cdc_sends_no_context_row(engine: sa.Engine) -> None:
    """This process declares CDC tables (``cdc_models``); a database without them has no
    context table, and context there is applied as always."""
    assert cdc_models.ledger.info["audit.spec"].cdc
    metadata = sa.MetaData()
    plain = sa.Table(
        "plain",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        info={
            "audit.options": {
                "enabled": True,
                "session_settings": [sa.Column("username", sa.Text)],
            }
        },
    )
    metadata.create_all(engine)
    with audit_context(username="carol"), engine.begin() as connection:
        connection.execute(plain.insert().values(id=1))
    with engine.connect() as connection:
        recorded = connection.exec_driver_sql("SELECT audit_username FROM plain_audit").scalar()
    assert recorded == "carol"


def test_the_install_script_makes_the_slot_first_and_publishes(logical_database_url: URL) -> None:
    slot = f"cdc_{uuid.uuid4().hex[:12]}"
    metadata = sa.MetaData(naming_convention={"audit.slot": slot})
    _table(metadata, mode="cdc")
    script = install_audit_triggers(metadata)
    assert script is not None
    assert script.index("pg_create_logical_replication_slot") < script.index("CREATE PUBLICATION")
    engine = sa.create_engine(logical_database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE account (id integer primary key, owner text)")
        with engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw is not None
            raw.autocommit = True
            cursor = raw.cursor()
            cursor.execute(script)
            cursor.execute(script)  # idempotent
        assert _published(engine) == ["account"]
        with engine.connect() as connection:
            found = connection.exec_driver_sql(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).scalar()
        assert found == 1
    finally:
        engine.dispose()


def test_redaction_is_refused_in_cdc_mode_saying_why_and_what_to_do_instead() -> None:
    with pytest.raises(AuditConfigurationError) as raised:
        _table(sa.MetaData(), mode="cdc", redact={"owner": "mask"})
    assert (raised.value.table, raised.value.key) == ("account", "redact")
    message = str(raised.value)
    assert "'account'" in message and "'redact'" in message
    assert "travel through the WAL in clear" in message  # why
    assert "mode='statement' or 'row'" in message and "exclude_columns" in message  # instead
