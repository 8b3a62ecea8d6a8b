"""The decoder at the edges of its slot and publication: names that need quoting, a slot made
again or moved by hand behind its back, and a table that joins the publication while it runs."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from cdc_decoder_setup import decoder, published
from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY


@pytest.fixture
def engine(logical_database_url: sa.URL) -> Any:
    engine = sa.create_engine(logical_database_url)
    yield engine
    engine.dispose()


def declare(name: str = "ledger", **conventions: Any) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(naming_convention=conventions),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )


def trail(engine: sa.Engine, table: sa.Table) -> list[tuple[Any, ...]]:
    audit = table.info[AUDIT_TABLE_KEY]
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(audit.c.audit_operation, audit.c.id, audit.c.v).order_by(audit.c.audit_id)
        )
        return [tuple(r) for r in rows]


@pytest.mark.parametrize("publication", ["CdcPub", "cdc pub", "a,b", 'say "hi"'])
def test_publication_names_that_need_quoting_are_read(
    engine: sa.Engine, publication: str
) -> None:
    """pgoutput reads ``publication_names`` as a list of identifiers: unquoted, "CdcPub" would
    be folded to cdcpub and "a,b" split in two."""
    table = declare(**{"audit.publication": publication})
    with published(engine, table.metadata, "DEFAULT"):
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, v=1))
            connection.execute(table.update().values(v=2))
        assert decoder(engine, table.metadata).run_once() == 2
        assert trail(engine, table) == [("I", 1, 1), ("U", 1, 2)]
