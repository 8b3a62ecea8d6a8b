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
from sqlalchemy_postgresql_audit import AuditConfigurationError, install_audit_triggers
from sqlalchemy_postgresql_audit.cdc import create_slot
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
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s",
            (slot,),
        )
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
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s",
                (slot,),
            )
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
