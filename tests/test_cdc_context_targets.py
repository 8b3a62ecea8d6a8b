"""A process may declare CDC tables of several metadatas whose context tables differ (an
error only for a transaction that has context to send): a connection without context writes
as usual, before and after a rollback."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import audit_context
from sqlalchemy_postgresql_audit.declare.declaration import _DECLARED
from sqlalchemy_postgresql_audit.errors import AuditConfigurationError


@pytest.fixture(autouse=True)
def forget_declarations() -> Iterator[None]:
    """The tables declared here must not outlive their test (other tests' context goes to one
    table): forgotten at once, not when the garbage collector gets to them."""
    before = set(_DECLARED)
    yield
    for table in set(_DECLARED) - before:
        _DECLARED.discard(table)
    gc.collect()


def cdc_metadata(context_table: str) -> sa.MetaData:
    metadata = sa.MetaData(naming_convention={"audit.cdc_context": context_table})
    sa.Table(
        f"ledger_{context_table}",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        info={
            "audit.options": {
                "enabled": True,
                "mode": "cdc",
                "session_settings": [sa.Column("username", sa.Text)],
            }
        },
    )
    return metadata


def test_writes_without_context_ignore_which_context_table_is_declared(
    engine: sa.Engine,
) -> None:
    declared = [cdc_metadata("context_one"), cdc_metadata("context_two")]
    plain = sa.Table("plain", sa.MetaData(), sa.Column("id", sa.Integer))
    plain.metadata.create_all(engine)
    with engine.connect() as connection:
        connection.execute(plain.insert().values(id=1))
        connection.rollback()
        connection.execute(plain.insert().values(id=2))
        connection.commit()
        assert connection.scalar(sa.select(sa.func.count()).select_from(plain)) == 1
    # With context to send, the ambiguity is an error naming both tables.
    with (
        pytest.raises(AuditConfigurationError, match="context_one, context_two"),
        audit_context(username="alice"),
        engine.begin() as connection,
    ):
        connection.execute(plain.insert().values(id=3))
    assert len(declared) == 2


def test_a_decoder_writing_a_batch_again_ignores_other_context_tables(
    logical_database_url: sa.URL, caplog: pytest.LogCaptureFixture
) -> None:
    """The decoder writes a batch again after a bad context value, on a connection without
    context, in a process where other metadatas declare other context tables."""
    from test_cdc_decoder_values import (
        test_a_context_value_the_audit_column_cannot_hold_is_recorded_null as decode_bad_values,
    )

    declared = [cdc_metadata("context_one"), cdc_metadata("context_two")]
    engine = sa.create_engine(logical_database_url)
    try:
        decode_bad_values(engine, caplog)
    finally:
        engine.dispose()
    assert len(declared) == 2
