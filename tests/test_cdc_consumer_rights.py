"""Design 1's consumer on the source with the rights the docs list, and none more: it runs; and
the rights it most easily lacks, INSERT on the context table (each run's fence) and SELECT on a
CDC table (its comparisons), are named.
Two real servers: the source and the target."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from cdc_replica_setup import cdc_metadata, cdc_table, trail
from sqlalchemy_postgresql_audit.cdc import CdcError, Consumer


def test_design_1_runs_with_the_documented_rights_and_names_those_it_lacks(
    source: sa.Engine,
    target: sa.Engine,
    make_role: Callable[[str], str],
    consumers: list[Consumer],  # after make_role: its subscription goes before the role
) -> None:
    metadata = cdc_metadata()
    account = cdc_table(metadata, "account")
    metadata.create_all(source)
    with source.begin() as connection:
        connection.execute(account.insert().values(id=1, value=1))
    role = make_role("consumer")
    with source.begin() as connection:
        connection.exec_driver_sql(f'ALTER ROLE "{role}" REPLICATION')
        connection.exec_driver_sql(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        for table in ("account_audit", "audit_cdc_context_joins"):
            connection.exec_driver_sql(f'GRANT SELECT ON {table} TO "{role}"')
        connection.exec_driver_sql(f'GRANT SELECT, DELETE ON audit_cdc_context TO "{role}"')
    as_consumer = sa.create_engine(source.url.set(username=role))
    consumer = Consumer(as_consumer, target, metadata=metadata, timeout=60)
    consumers.append(consumer)
    try:
        with pytest.raises(CdcError, match=r"GRANT INSERT \(settings\) ON it") as refused:
            consumer.run_once()
        assert "audit_cdc_context" in str(refused.value)
        with source.begin() as connection:
            connection.exec_driver_sql(f'GRANT INSERT (settings) ON audit_cdc_context TO "{role}"')
        with pytest.raises(CdcError, match=r"GRANT SELECT ON .*account.* TO the consumer"):
            consumer.run_once()  # the new subscription's comparison reads the table
        with source.begin() as connection:
            connection.exec_driver_sql(f'GRANT SELECT ON account TO "{role}"')
        consumer.run_once()
        with source.begin() as connection:
            connection.execute(account.update().values(value=2))
        assert consumer.run_once() == 1
        assert trail(target, "account") == [("I", 1, 1), ("U", 1, 2)]
    finally:
        consumer.drop()
        as_consumer.dispose()
