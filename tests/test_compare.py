"""The pure comparison of declared and installed auditing (no database needed)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from sqlalchemy_postgresql_audit import SPEC_KEY, AuditSpec
from sqlalchemy_postgresql_audit.install.catalog import InstalledAudit
from sqlalchemy_postgresql_audit.install.compare import (
    DropAudit,
    InstallAudit,
    ReplaceAudit,
    compare,
    expected_triggers,
)
from sqlalchemy_postgresql_audit.render import function_config, render, resolved


def spec_of(name: str = "orders", **options: Any) -> AuditSpec:
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        info={"audit.options": {"enabled": True, **options}},
    )
    spec = table.info[SPEC_KEY]
    assert isinstance(spec, AuditSpec)
    return spec


def installed(declared: AuditSpec, **changes: Any) -> InstalledAudit:
    """What the catalog reads after installing ``spec`` into schema public."""
    item = InstalledAudit(
        schema=declared.schema or "public",
        function=declared.function,
        body=render(declared).function_body,
        config=function_config(declared),
        security_definer=True,
        spec=resolved(declared),
        triggers=tuple(sorted(expected_triggers(declared, "public"), key=lambda t: t.name)),
    )
    return replace(item, **changes)


def test_in_sync_means_no_changes() -> None:
    spec = spec_of()
    assert compare([spec], [installed(spec)], "public") == []


def test_declared_but_missing_is_installed() -> None:
    spec = spec_of()
    assert compare([spec], [], "public") == [InstallAudit(spec)]


def test_installed_but_undeclared_is_dropped_with_its_installed_spec() -> None:
    old = spec_of("gone", mode="row")
    assert compare([], [installed(old)], "public") == [DropAudit(resolved(old))]


def test_changed_columns_replace_from_the_installed_spec() -> None:
    old = spec_of()
    new = replace(old, columns=(*old.columns, "total"))
    assert compare([new], [installed(old)], "public") == [ReplaceAudit(new, previous=old)]


def test_hand_edited_body_is_detected() -> None:
    spec = spec_of()
    edited = installed(spec, body=render(spec).function_body.replace("'I'", "'X'"))
    assert compare([spec], [edited], "public") == [ReplaceAudit(spec, previous=spec)]


def test_a_function_that_is_not_security_definer_or_lost_its_settings_is_drift() -> None:
    for spec in (spec_of(), spec_of(skip_unchanged=True), spec_of(capture=["changed_columns"])):
        assert compare([spec], [installed(spec)], "public") == []
        for tampered in (
            installed(spec, security_definer=False),
            installed(spec, config=()),
            installed(spec, config=function_config(spec)[1:]),
        ):
            assert compare([spec], [tampered], "public") == [ReplaceAudit(spec, previous=spec)]


def test_a_declared_spec_is_compared_in_the_default_schema() -> None:
    """The comment stores the resolved spec; the change still carries the declared one."""
    spec = spec_of()
    tenant = InstalledAudit(
        schema="tenant",
        function=spec.function,
        body=render(resolved(spec, "tenant")).function_body,
        config=function_config(spec),
        security_definer=True,
        spec=resolved(spec, "tenant"),
        triggers=tuple(expected_triggers(spec, "tenant")),
    )
    assert compare([spec], [tenant], "tenant") == []
    assert compare([spec], [installed(spec)], "public") == []


def test_disabled_or_missing_trigger_is_detected() -> None:
    spec = spec_of()
    item = installed(spec)
    disabled = replace(
        item, triggers=(replace(item.triggers[0], enabled=False), *item.triggers[1:])
    )
    missing = replace(item, triggers=item.triggers[1:])
    assert compare([spec], [disabled], "public") == [ReplaceAudit(spec, previous=spec)]
    assert compare([spec], [missing], "public") == [ReplaceAudit(spec, previous=spec)]


def test_a_template_change_is_one_replace() -> None:
    spec = spec_of()
    older = installed(spec, spec=replace(resolved(spec), template=0), body="-- older template")
    assert compare([spec], [older], "public") == [
        ReplaceAudit(spec, previous=replace(spec, template=0))
    ]


def test_unreadable_comment_is_matched_by_function_name() -> None:
    spec = spec_of()
    assert compare([spec], [installed(spec, spec=None)], "public") == [
        ReplaceAudit(spec, previous=spec)
    ]


def test_explicit_default_schema_matches_unqualified_installation() -> None:
    """Both install the same fully qualified function, so neither is drift of the other."""
    spec = spec_of()
    qualified = replace(spec, schema="public")
    assert compare([qualified], [installed(spec)], "public") == []
    assert compare([spec], [installed(qualified)], "public") == []
