"""Released template versions never change: old migrations must install the same SQL.

A golden file per version holds its output for representative specs.  If a test fails, the
change belongs in a new template version (render's ``_TEMPLATES``), not in a released one.
Version 2 is still open for the writer-cost rework: its golden file is regenerated on purpose,
in the same commit as the change.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import SPEC_KEY, AuditSpec
from sqlalchemy_postgresql_audit.declare.options import CAPTURES
from sqlalchemy_postgresql_audit.declare.spec import TEMPLATE_VERSION
from sqlalchemy_postgresql_audit.render import render

GOLDEN = Path(__file__).parent / "golden"


def representative_specs() -> list[AuditSpec]:
    def spec(**options: object) -> AuditSpec:
        table = sa.Table(
            "Order Items",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("if", sa.Text),
            sa.Column("note", sa.Text),
            schema="Sales Dept",
            info={"audit.options": {"enabled": True, **options}},
        )
        result = table.info[SPEC_KEY]
        assert isinstance(result, AuditSpec)
        return result

    required = [
        sa.Column("username", sa.String(30), nullable=False),
        sa.Column("tenant", sa.Integer),
    ]
    virtual = sa.Table(
        "line",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("qty", sa.Integer),
        sa.Column("total", sa.Integer, sa.Computed("qty * 2")),
        info={"audit.options": {"enabled": True, "capture": ["changed_columns"]}},
    ).info[SPEC_KEY]
    keyless = sa.Table(
        "log", sa.MetaData(), sa.Column("line", sa.Text), info={"audit.options": {"enabled": True}}
    ).info[SPEC_KEY]
    return [
        virtual,
        spec(),
        spec(mode="row", session_settings=required),
        spec(session_settings=required, operations=["UPDATE", "DELETE"]),
        spec(exclude_columns=["note"]),
        spec(mode="row", skip_unchanged=True),
        spec(capture=list(CAPTURES), truncate_rows=True, session_settings=required),
        spec(mode="row", capture=list(CAPTURES), operations=["UPDATE", "TRUNCATE"]),
        keyless,
    ]


#: The specs each golden file was made from: version 1's predate keyless tables in the list.
_SPECS_PER_VERSION = {1: 8, 2: 9}


def rendered(version: int) -> str:
    parts = []
    for spec in representative_specs()[: _SPECS_PER_VERSION[version]]:
        assert spec.template == TEMPLATE_VERSION
        out = render(dataclasses.replace(spec, template=version))
        parts.append(";\n".join([*out.install, *out.uninstall]) + ";\n")
    return "\n-- next spec\n".join(parts)


@pytest.mark.parametrize("version", [1, 2])
def test_template_output_is_frozen(version: int) -> None:
    assert rendered(version) == (GOLDEN / f"template_v{version}.sql").read_text()


def test_the_newest_template_has_a_golden_file() -> None:
    assert TEMPLATE_VERSION in _SPECS_PER_VERSION
