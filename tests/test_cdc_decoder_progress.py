"""The decoder's progress row cannot be used to make it skip changes: no role but its owner
holds rights on the progress table, and a recorded position beyond the server's WAL is
refused by name."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_decoder_setup import decoder, published
from sqlalchemy_postgresql_audit.cdc.decoder import DecoderError
from sqlalchemy_postgresql_audit.declare.cdc import cdc_names


@pytest.fixture
def engine(logical_database_url: sa.URL) -> Any:
    engine = sa.create_engine(logical_database_url)
    yield engine
    engine.dispose()


def declare() -> sa.Table:
    return sa.Table(
        "ledger",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )


@pytest.fixture
def writer_role(engine: sa.Engine) -> Any:
    """A writer role that default privileges give every right on new tables."""
    role = f"writer_{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role}")
        connection.exec_driver_sql(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {role}"
        )
    yield role
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP OWNED BY {role}")
        connection.exec_driver_sql(f"DROP ROLE {role}")


def test_no_role_but_the_owner_keeps_rights_on_the_progress_table(
    engine: sa.Engine, writer_role: str
) -> None:
    table = declare()
    with published(engine, table.metadata):
        decoder(engine, table.metadata).run_once()
        with engine.connect() as connection:
            rights = connection.exec_driver_sql(
                "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a "
                "WHERE c.oid = 'audit_cdc_progress'::regclass AND a.grantee <> c.relowner"
            ).scalar_one()
            may_update = connection.exec_driver_sql(
                f"SELECT has_table_privilege('{writer_role}', 'audit_cdc_progress', 'UPDATE')"
            ).scalar_one()
        assert (rights, may_update) == (0, False)


def test_a_progress_position_beyond_the_wal_is_refused_naming_the_slot(
    engine: sa.Engine,
) -> None:
    """What a restore from another server, or a writer moving the row, leaves behind."""
    table = declare()
    with published(engine, table.metadata):
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, v=1))
        assert decoder(engine, table.metadata).run_once() == 1
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "UPDATE audit_cdc_progress SET end_lsn = 'FFFFFFFF/0', complete = true"
            )
            connection.execute(table.insert().values(id=2, v=2))
        slot = cdc_names(table.metadata).slot
        with pytest.raises(DecoderError, match=rf"slot '{slot}'.*FFFFFFFF/0.*beyond"):
            decoder(engine, table.metadata).run_once()
