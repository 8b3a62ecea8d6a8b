"""Declaration-time validation of ``info["audit.options"]`` (no database needed)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, SPEC_KEY, AuditConfigurationError


def audited(
    name: str, options: Any, *columns: sa.Column[Any], metadata: sa.MetaData | None = None
) -> sa.Table:
    return sa.Table(
        name,
        metadata or sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        *columns,
        info={"audit.options": options},
    )


@pytest.mark.parametrize(
    ("options", "key", "fragment"),
    [
        ({"enabled": True, "enabeld": True}, "enabeld", "is not an audit option"),
        ({"enabled": "yes"}, "enabled", "must be True or False"),
        ({"enabled": True, "session_settings": "username"}, "session_settings", "list of Column"),
        (
            {"enabled": True, "session_settings": ["username"]},
            "session_settings[0]",
            "sqlalchemy Column",
        ),
        (
            {"enabled": True, "session_settings": [sa.Column("user name", sa.String)]},
            "session_settings[0]",
            "not a valid setting name",
        ),
        (
            {
                "enabled": True,
                "session_settings": [sa.Column("u", sa.String), sa.Column("U", sa.String)],
            },
            "session_settings[1]",
            "declared twice",
        ),
        ({"enabled": True, "mode": "batch"}, "mode", "'statement', 'row' or 'cdc'"),
        ({"enabled": True, "operations": ["INSERT", "MERGE"]}, "operations", "not one of"),
        ({"enabled": True, "operations": []}, "operations", "at least one"),
        ({"enabled": True, "legacy_timestamp": 1}, "legacy_timestamp", "True or False"),
        (["enabled"], "audit.options", "must be a dict"),
    ],
)
def test_bad_options_fail_at_declaration_naming_table_and_key(
    options: Any, key: str, fragment: str
) -> None:
    metadata = sa.MetaData()
    with pytest.raises(AuditConfigurationError) as caught:
        audited("orders", options, metadata=metadata)
    assert caught.value.table == "orders"
    assert caught.value.key == key
    assert "'orders'" in str(caught.value)
    assert repr(key) in str(caught.value)
    assert fragment in str(caught.value)
    assert not any(t.name.endswith("_audit") for t in metadata.tables.values())


def test_source_column_colliding_with_audit_column_is_an_error() -> None:
    with pytest.raises(AuditConfigurationError) as caught:
        audited("orders", {"enabled": True}, sa.Column("audit_operation", sa.String))
    assert caught.value.key == "audit_operation"
    assert "collides" in str(caught.value)


def test_setting_column_colliding_with_source_column_is_an_error() -> None:
    with pytest.raises(AuditConfigurationError) as caught:
        audited(
            "orders",
            {"enabled": True, "session_settings": [sa.Column("username", sa.String)]},
            sa.Column("audit_username", sa.String),
        )
    assert caught.value.key == "audit_username"


def test_appended_column_that_collides_is_an_error() -> None:
    table = audited("orders", {"enabled": True})
    with pytest.raises(AuditConfigurationError):
        table.append_column(sa.Column("audit_current_user", sa.String))


def test_users_info_dicts_are_never_modified_even_when_shared() -> None:
    setting = sa.Column("username", sa.String, nullable=False)
    shared = {"audit.options": {"enabled": True, "session_settings": [setting]}, "mine": 1}
    before = copy.copy(shared), copy.copy(shared["audit.options"])
    metadata = sa.MetaData()
    first = sa.Table("a", metadata, sa.Column("id", sa.Integer), info=shared)
    second = sa.Table("b", metadata, sa.Column("id", sa.Integer), info=shared)
    assert (shared, shared["audit.options"]) == before
    assert set(shared) == {"audit.options", "mine"}
    assert first.info[AUDIT_TABLE_KEY].name == "a_audit"
    assert second.info[AUDIT_TABLE_KEY].name == "b_audit"
    assert first.info[SPEC_KEY].table == "a"
    assert first.info["mine"] == 1


@pytest.mark.parametrize("options", [{"enabled": False}, {}])
def test_disabled_or_absent_enabled_declares_nothing(options: dict[str, Any]) -> None:
    metadata = sa.MetaData()
    table = audited("orders", options, metadata=metadata)
    assert list(metadata.tables) == ["orders"]
    assert SPEC_KEY not in table.info
