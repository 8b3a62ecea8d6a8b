"""Change-data-capture does not follow ``schema_translate_map``: the consumer reads published
tables as the metadata declares them, so a tenant's table installed through a map would have a
trail no consumer can write.  Installing one is refused before anything is made, and so is a
write through a map to a CDC table; tenants declared with ``schema=`` keep their trails."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from cdc_decoder_setup import drop_slot
from sqlalchemy_postgresql_audit import audit_context, install_audit_triggers
from sqlalchemy_postgresql_audit.cdc import Consumer
from sqlalchemy_postgresql_audit.declare.cdc import cdc_names
from sqlalchemy_postgresql_audit.errors import AuditConfigurationError

CDC = {"enabled": True, "mode": "cdc", "session_settings": [sa.Column("username", sa.Text)]}
TENANTS = ("tenant_a", "tenant_b")


@pytest.fixture
def slot(source: sa.Engine) -> Iterator[str]:
    name = f"tnt_{uuid.uuid4().hex[:12]}"
    yield name
    drop_slot(source, sa.MetaData(naming_convention={"audit.slot": name}))


@pytest.fixture
def tenants(source: sa.Engine) -> None:
    with source.begin() as connection:
        connection.exec_driver_sql("CREATE SCHEMA tenant_a; CREATE SCHEMA tenant_b")


def _account(metadata: sa.MetaData, schema: str | None = None) -> sa.Table:
    return sa.Table(
        "account",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Text),
        schema=schema,
        info={"audit.options": CDC},
    )


def _models(slot: str) -> sa.MetaData:
    metadata = sa.MetaData(naming_convention={"audit.slot": slot})
    _account(metadata)
    return metadata


def _tenant(engine: sa.Engine, tenant: str = "tenant_a") -> sa.Engine:
    return engine.execution_options(schema_translate_map={None: tenant})


def _state(engine: sa.Engine, slot: str) -> dict[str, Any]:
    """What an install would have made: publications, the slot, tables in the tenant schemas."""
    with engine.connect() as connection:
        return {
            "publications": connection.exec_driver_sql(
                "SELECT count(*) FROM pg_publication"
            ).scalar(),
            "slot": connection.exec_driver_sql(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).scalar(),
            "tenant_tables": sorted(
                connection.exec_driver_sql(
                    "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') "
                    "AND relnamespace::regnamespace::text LIKE 'tenant_%%'"
                ).scalars()
            ),
        }


def _refused(error: pytest.ExceptionInfo[AuditConfigurationError]) -> None:
    message = str(error.value)
    assert "account" in message and "mode" in message
    assert "does not follow schema_translate_map" in message and "tenant_a" in message


@pytest.mark.usefixtures("tenants")
def test_create_all_through_a_translate_map_refuses_a_cdc_table_before_anything_is_made(
    source: sa.Engine, slot: str
) -> None:
    with pytest.raises(AuditConfigurationError) as error:
        _models(slot).create_all(_tenant(source))
    _refused(error)
    assert _state(source, slot) == {"publications": 0, "slot": 0, "tenant_tables": []}


@pytest.mark.usefixtures("tenants")
def test_install_audit_triggers_through_a_translate_map_refuses_a_cdc_table(
    source: sa.Engine, slot: str
) -> None:
    with source.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE tenant_a.account (id integer PRIMARY KEY, v text)")
    with pytest.raises(AuditConfigurationError) as error:
        install_audit_triggers(_models(slot), _tenant(source))
    _refused(error)
    assert _state(source, slot) == {"publications": 0, "slot": 0, "tenant_tables": ["account"]}


@pytest.mark.usefixtures("tenants")
def test_the_publishing_migration_op_through_a_translate_map_is_refused(
    source: sa.Engine, slot: str
) -> None:
    names = cdc_names(_models(slot))
    with source.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE tenant_a.account (id integer PRIMARY KEY, v text)")
    with _tenant(source).begin() as connection:
        operations = Operations(MigrationContext.configure(connection))
        with pytest.raises(AuditConfigurationError) as error:
            operations.publish_audit_table(  # type: ignore[attr-defined]
                "account",
                schema=None,
                publication=names.publication,
                context_schema=names.context_schema,
                context_table=names.context_table,
                replica_identity="default",
            )
    _refused(error)
    assert _state(source, slot)["publications"] == 0


@pytest.mark.usefixtures("tenants")
def test_a_write_through_a_translate_map_to_a_cdc_table_is_refused_even_if_published(
    source: sa.Engine, slot: str
) -> None:
    """A tenant's table an older release published through the map: the consumer stops on it,
    so writes to it are refused, not accepted without a trail."""
    metadata = _models(slot)
    metadata.create_all(source)
    with source.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE tenant_a.account (id integer PRIMARY KEY, v text);"
            f"ALTER PUBLICATION {cdc_names(metadata).publication} ADD TABLE tenant_a.account"
        )
    account = metadata.tables["account"]
    with (
        pytest.raises(AuditConfigurationError) as error,
        audit_context(username="alice"),
        _tenant(source).begin() as connection,
    ):
        connection.execute(account.insert().values(id=1, v="a"))
    _refused(error)
    with source.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM tenant_a.account").scalar() == 0


@pytest.mark.usefixtures("tenants")
def test_tenants_declared_with_schema_keep_their_trails_through_the_decoder(
    source: sa.Engine, slot: str
) -> None:
    """What the refusal points to: each tenant's tables declared with ``schema=``."""
    metadata = sa.MetaData(naming_convention={"audit.slot": slot})
    accounts = {tenant: _account(metadata, tenant) for tenant in TENANTS}
    metadata.create_all(source)
    for tenant, user in zip(TENANTS, ("alice", "bob"), strict=True):
        with audit_context(username=user), source.begin() as connection:
            connection.execute(accounts[tenant].insert().values(id=1, v=tenant))
    Consumer(source, metadata=metadata, timeout=60).run_once()
    with source.connect() as connection:
        trails = {
            tenant: [
                tuple(row)
                for row in connection.exec_driver_sql(
                    "SELECT audit_operation, id, v, audit_username "
                    f"FROM {tenant}.account_audit WHERE audit_operation <> 'B' ORDER BY audit_id"
                )
            ]
            for tenant in TENANTS
        }
    assert trails == {
        "tenant_a": [("I", 1, "tenant_a", "alice")],
        "tenant_b": [("I", 1, "tenant_b", "bob")],
    }
