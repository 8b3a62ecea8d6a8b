"""Never silently unaudited on the source of change-data-capture: a publication whose options
were changed by hand, a column added by hand, a TRUNCATE of one partition.  Each is reported by
``check``, refused by the runtime check or the server, and put back by installing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from alembic_env import make_project
from cdc_decoder_setup import drop_slot_named
from sqlalchemy_postgresql_audit import (
    AuditConfigurationError,
    install_audit_triggers,
    uninstall_audit_triggers,
)
from sqlalchemy_postgresql_audit.cdc import Consumer, create_slot
from sqlalchemy_postgresql_audit.cli.check import table_states
from sqlalchemy_postgresql_audit.install.ddl import audited_tables


def _models(slot: str) -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData(naming_convention={"audit.slot": slot})
    table = sa.Table(
        "account",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.Text),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    return metadata, table


@pytest.fixture
def source(logical_database_url: URL) -> Iterator[tuple[sa.Engine, sa.MetaData, sa.Table]]:
    engine = sa.create_engine(logical_database_url)
    slot = f"cdc_{uuid.uuid4().hex[:12]}"
    metadata, table = _models(slot)
    metadata.create_all(engine)
    yield engine, metadata, table
    drop_slot_named(engine, slot)
    engine.dispose()


def _check(engine: sa.Engine, metadata: sa.MetaData) -> tuple[str, str]:
    with engine.connect() as connection:
        (state,) = table_states(connection, list(audited_tables(metadata)))
    return state.status, "; ".join(state.details)


def _publication(engine: sa.Engine) -> tuple[bool, ...]:
    with engine.connect() as connection:
        row = connection.exec_driver_sql(
            "SELECT pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot "
            "FROM pg_publication WHERE pubname = 'audit_cdc'"
        ).one()
    return tuple(row)


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ("SET (publish = 'insert')", "publish update"),
        ("SET (publish_via_partition_root = false)", "publish_via_partition_root"),
    ],
)
def test_publication_options_changed_by_hand_are_drift_refused_and_put_back(
    source: tuple[sa.Engine, sa.MetaData, sa.Table], change: str, option: str
) -> None:
    engine, metadata, account = source
    assert _check(engine, metadata)[0] == "ok"
    with engine.begin() as connection:
        connection.exec_driver_sql(f"ALTER PUBLICATION audit_cdc {change}")
    status, details = _check(engine, metadata)
    assert status == "outdated"
    assert "'audit_cdc'" in details and option in details
    fresh = sa.create_engine(engine.url)  # a new pool: the runtime check asks again
    try:
        with (
            pytest.raises(AuditConfigurationError, match=f"account.*audit_cdc.*{option}"),
            fresh.begin() as connection,
        ):
            connection.execute(account.insert().values(id=1, owner="a"))
        install_audit_triggers(metadata, engine)
        assert _publication(engine) == (True,) * 5
        assert _check(engine, metadata) == (
            "ok",
            "captured by change-data-capture (publication 'audit_cdc')",
        )
        with fresh.begin() as connection:
            connection.execute(account.insert().values(id=1, owner="a"))
    finally:
        fresh.dispose()


@pytest.mark.parametrize(
    "narrowed", ["account WHERE (id > 100)", "account (id)"], ids=["row filter", "column list"]
)
def test_a_table_published_with_a_row_filter_or_column_list_is_refused_and_put_back(
    source: tuple[sa.Engine, sa.MetaData, sa.Table], narrowed: str
) -> None:
    """PostgreSQL 15+ can publish part of a table's rows or columns: the rest of its changes
    would never reach a consumer (a row missing from the trail, a column recorded NULL)."""
    engine, metadata, account = source
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER PUBLICATION audit_cdc DROP TABLE account")
        connection.exec_driver_sql(f"ALTER PUBLICATION audit_cdc ADD TABLE {narrowed}")
    status, details = _check(engine, metadata)
    assert status != "ok" and "audit_cdc" in details
    fresh = sa.create_engine(engine.url)  # a new pool: the runtime check asks again
    try:
        with (
            pytest.raises(AuditConfigurationError, match="row filter or column list"),
            fresh.begin() as connection,
        ):
            connection.execute(account.insert().values(id=1, owner="a"))
        install_audit_triggers(metadata, engine)
        with engine.connect() as connection:
            whole = connection.exec_driver_sql(
                "SELECT prqual IS NULL AND prattrs IS NULL FROM pg_publication_rel "
                "WHERE prrelid = 'account'::regclass"
            ).scalar_one()
        assert whole
        assert _check(engine, metadata)[0] == "ok"
        with fresh.begin() as connection:
            connection.execute(account.insert().values(id=1, owner="a"))
    finally:
        fresh.dispose()


def test_alembic_republishes_when_the_publication_options_drifted(
    tmp_path: Path, logical_database_url: URL
) -> None:
    slot = f"cdc_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(logical_database_url)
    project = make_project(tmp_path, engine.url)
    try:
        create_slot(engine, _models(slot)[0])
        project.revision(_models(slot)[0], "cdc")
        project.upgrade(_models(slot)[0])
        project.check(_models(slot)[0])
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER PUBLICATION audit_cdc SET (publish = 'insert')")
        drift = project.revision(_models(slot)[0], "drift")
        assert "op.publish_audit_table(" in drift
        project.upgrade(_models(slot)[0])
        assert _publication(engine) == (True,) * 5
        project.check(_models(slot)[0])
    finally:
        drop_slot_named(engine, slot)
        engine.dispose()


def test_a_column_added_by_hand_to_a_cdc_table_is_drift(
    source: tuple[sa.Engine, sa.MetaData, sa.Table],
) -> None:
    engine, metadata, _ = source
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE account ADD COLUMN note text")
    status, details = _check(engine, metadata)
    assert status == "outdated"
    assert "column note of account is neither mirrored nor excluded" in details


@pytest.fixture
def partitioned(
    logical_database_url: URL,
) -> Iterator[tuple[sa.Engine, sa.MetaData, sa.Table]]:
    engine = sa.create_engine(logical_database_url)
    slot = f"cdc_{uuid.uuid4().hex[:12]}"
    metadata = sa.MetaData(naming_convention={"audit.slot": slot})
    measure = sa.Table(
        "measure",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Integer),
        postgresql_partition_by="RANGE (id)",
        info={"audit.options": {"enabled": True, "mode": "cdc", "truncate_rows": True}},
    )
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE measure_1 PARTITION OF measure FOR VALUES FROM (0) TO (100)"
        )
        connection.exec_driver_sql(
            "CREATE TABLE measure_2 PARTITION OF measure FOR VALUES FROM (100) TO (200)"
        )
    yield engine, metadata, measure
    drop_slot_named(engine, slot)
    engine.dispose()


def test_partitions_made_after_the_install_are_drift_until_installed_again(
    partitioned: tuple[sa.Engine, sa.MetaData, sa.Table],
) -> None:
    engine, metadata, _ = partitioned
    status, details = _check(engine, metadata)
    assert status == "outdated"
    assert "measure_1 has no enabled TRUNCATE trigger audit_cdc_partition_truncate" in details
    assert "measure_2 has no enabled TRUNCATE trigger" in details
    install_audit_triggers(metadata, engine)
    assert _check(engine, metadata)[0] == "ok"
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE measure_2 DISABLE TRIGGER USER")
    status, details = _check(engine, metadata)
    assert status == "outdated"
    assert "measure_2 has no enabled TRUNCATE trigger" in details
    install_audit_triggers(metadata, engine)
    assert _check(engine, metadata)[0] == "ok"


def test_a_truncate_of_one_partition_is_refused_and_one_of_the_table_is_captured(
    partitioned: tuple[sa.Engine, sa.MetaData, sa.Table],
) -> None:
    engine, metadata, measure = partitioned
    install_audit_triggers(metadata, engine)
    consumer = Consumer(engine, metadata=metadata)
    consumer.run_once()
    with engine.begin() as connection:
        connection.execute(measure.insert(), [{"id": i, "v": i} for i in (1, 2, 150)])
    with (
        pytest.raises(
            sa.exc.DBAPIError,
            match=r"partition public\.measure_1 of change-data-capture table public\.measure ",
        ),
        engine.begin() as connection,
    ):
        connection.exec_driver_sql("TRUNCATE measure_1")
    with engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE measure")
        with (
            pytest.raises(sa.exc.DBAPIError, match="TRUNCATE the table itself"),
            connection.begin_nested(),
        ):
            connection.exec_driver_sql("TRUNCATE measure_2")
    consumer.run_once()
    with engine.connect() as connection:
        trail = connection.exec_driver_sql(
            "SELECT audit_operation, id FROM measure_audit ORDER BY audit_id"
        ).all()
        left = connection.exec_driver_sql("SELECT count(*) FROM measure").scalar_one()
    assert left == 0
    assert [tuple(row) for row in trail] == [
        ("I", 1),
        ("I", 2),
        ("I", 150),
        ("T", 1),
        ("T", 2),
        ("T", 150),
    ]


def test_uninstalling_takes_the_partition_truncate_guards_off(
    partitioned: tuple[sa.Engine, sa.MetaData, sa.Table],
) -> None:
    engine, metadata, _ = partitioned
    install_audit_triggers(metadata, engine)
    uninstall_audit_triggers(metadata, engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE measure_1")
        guards = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'audit_cdc_%%truncate%%'"
        ).scalar_one()
    assert guards == 0


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        (
            "ALTER TABLE account ALTER COLUMN owner SET NOT NULL; "
            "CREATE UNIQUE INDEX account_owner ON account (owner); "
            "ALTER TABLE account REPLICA IDENTITY USING INDEX account_owner",
            "USING INDEX",
        ),
        ("ALTER TABLE account REPLICA IDENTITY FULL", "FULL"),
    ],
)
def test_a_replica_identity_changed_by_hand_is_drift_until_installed_again(
    source: tuple[sa.Engine, sa.MetaData, sa.Table], change: str, shown: str
) -> None:
    engine, metadata, _ = source
    with engine.begin() as connection:
        connection.exec_driver_sql(change)
    status, details = _check(engine, metadata)
    assert status == "outdated"
    assert f"account has REPLICA IDENTITY {shown}, not DEFAULT" in details
    install_audit_triggers(metadata, engine)
    assert _check(engine, metadata)[0] == "ok"
