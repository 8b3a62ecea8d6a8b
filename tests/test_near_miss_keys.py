"""A misspelt ``audit.options`` key fails at declaration instead of leaving the table unaudited."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import AuditConfigurationError, declare_metadata, is_audit_table

NEAR_MISSES = [
    "audit_options",
    "audit.option",
    "Audit.Options",
    "audit-options",
    "audit options",
    "auditoptions",
    "audit.table.options",
    "audit.opts",
    "audit.optoins",
    "sqlalchemy_audit_options",
]

UNRELATED = [
    "edit_options",
    "audio_options",
    "options",
    "audit",
    "audit_log",
    "audited_by",
    "audit.settings",
    "credit_options",
]


def table(metadata: sa.MetaData, info: dict[str, object]) -> sa.Table:
    return sa.Table("ledger", metadata, sa.Column("id", sa.Integer, primary_key=True), info=info)


@pytest.mark.parametrize("key", NEAR_MISSES)
def test_a_near_miss_fails_when_the_table_is_defined(key: str) -> None:
    with pytest.raises(
        AuditConfigurationError, match=r"'ledger'.*misspelling of 'audit\.options'"
    ) as error:
        table(sa.MetaData(), {key: {"enabled": True}})
    assert (error.value.table, error.value.key) == ("ledger", key)


@pytest.mark.parametrize("key", NEAR_MISSES[:3])
def test_a_near_miss_set_late_fails_at_the_entry_point(key: str) -> None:
    metadata = sa.MetaData()
    ledger = table(metadata, {})
    ledger.info = {key: {"enabled": True}}
    with pytest.raises(AuditConfigurationError, match=key.replace(".", r"\.")):
        declare_metadata(metadata)


def test_a_near_miss_beside_the_real_key_fails_too() -> None:
    with pytest.raises(AuditConfigurationError, match="'audit_options'"):
        table(sa.MetaData(), {"audit.options": {"enabled": True}, "audit_options": {}})


@pytest.mark.parametrize("key", UNRELATED)
def test_unrelated_keys_are_left_alone(key: str) -> None:
    metadata = sa.MetaData()
    table(metadata, {key: {"enabled": True}})
    declare_metadata(metadata)
    assert list(metadata.tables) == ["ledger"]


def test_the_librarys_own_keys_are_not_near_misses() -> None:
    metadata = sa.MetaData()
    ledger = table(metadata, {"audit.options": {"enabled": True}})
    assert {"audit.spec", "audit.table", "audit.create_ddl", "audit.drop_ddl"} <= set(ledger.info)
    audit_table = ledger.info["audit.table"]
    assert is_audit_table(audit_table)
    copy = sa.MetaData()
    ledger.to_metadata(copy, schema="other")  # carries every library key in its info
    audit_table.to_metadata(copy, schema="other")
    declare_metadata(copy)
    declare_metadata(metadata)
    assert sorted(copy.tables) == ["other.ledger", "other.ledger_audit"]
