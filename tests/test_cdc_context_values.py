"""A context value the audit column cannot hold never stops the trail: the writer's call refuses
what it can check, and design 1's context trigger records NULL (with a WARNING) for the rest."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import AuditSettingError, audit_context
from sqlalchemy_postgresql_audit.cdc import Consumer
from sqlalchemy_postgresql_audit.declare.declaration import declare_metadata


def _models() -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData(naming_convention={"audit.slot": f"cdcv_{uuid.uuid4().hex[:12]}"})
    settings = [sa.Column("username", sa.Text), sa.Column("shard", sa.Integer)]
    tier = sa.Enum("gold", "silver", name="cdcv_tier", schema="public", metadata=metadata)
    acct = sa.Table(
        "acct",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={
            "audit.options": {
                "enabled": True,
                "mode": "cdc",
                "session_settings": [*settings, sa.Column("tier", tier)],
            }
        },
    )
    return metadata, acct


def test_an_enum_setting_of_a_cdc_table_is_checked_at_the_call() -> None:
    """Trigger mode refuses the write; CDC mode cannot, so the call does, naming the setting."""
    metadata, _ = _models()
    declare_metadata(metadata)
    with pytest.raises(AuditSettingError, match=r"'tier'.*'platinum' is not a label"):
        audit_context(tier="platinum")
    with pytest.raises(AuditSettingError, match="'shard'"):
        audit_context(shard="abc")
    with audit_context(tier="gold", shard=3) as values:
        assert dict(values) == {"tier": "gold", "shard": "3"}


def test_design_1_records_null_for_a_context_value_its_column_cannot_hold(
    source: sa.Engine, target: sa.Engine
) -> None:
    """Rows a writer inserts by hand (INSERT on the context table is what it needs to carry
    context at all): a value that does not cast, and settings that are not an object."""
    metadata, acct = _models()
    metadata.create_all(source)
    # The setting's enum type, which the target's audit table needs (SQLAlchemy 2.0 does not
    # create it with the table there).
    sa.Enum("gold", "silver", name="cdcv_tier", schema="public").create(target, checkfirst=True)
    consumer = Consumer(source, target, metadata=metadata, timeout=60)
    try:
        consumer.run_once()
        with source.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO audit_cdc_context (settings) "
                """VALUES ('{"shard": "abc", "username": "eve", "current_user": "postgres"}')"""
            )
            connection.execute(acct.insert().values(id=1))
        with source.begin() as connection:
            connection.exec_driver_sql("INSERT INTO audit_cdc_context (settings) VALUES ('[]')")
            connection.execute(acct.insert().values(id=2))
        with source.begin() as connection:
            connection.execute(acct.insert().values(id=3))
        assert consumer.run_once() == 3
        with target.connect() as connection:
            trail = connection.exec_driver_sql(
                "SELECT id, audit_shard, audit_username FROM acct_audit ORDER BY audit_id"
            ).all()
        assert [tuple(row) for row in trail] == [
            (1, None, "eve"),
            (2, None, None),
            (3, None, None),
        ]
    finally:
        consumer.drop()
