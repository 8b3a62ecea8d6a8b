"""Released template versions never change: old migrations must install the same SQL.

The golden file holds template 1's output for representative specs.  If this test fails, the
change belongs in a new template version (render.py's ``_TEMPLATES``), not in version 1.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from sqlalchemy_postgresql_audit import SPEC_KEY, AuditSpec
from sqlalchemy_postgresql_audit.options import CAPTURES
from sqlalchemy_postgresql_audit.render import render

GOLDEN = Path(__file__).parent / "golden" / "template_v1.sql"


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
    return [
        virtual,
        spec(),
        spec(mode="row", session_settings=required),
        spec(session_settings=required, operations=["UPDATE", "DELETE"]),
        spec(exclude_columns=["note"]),
        spec(mode="row", skip_unchanged=True),
        spec(capture=list(CAPTURES), truncate_rows=True, session_settings=required),
        spec(mode="row", capture=list(CAPTURES), operations=["UPDATE", "TRUNCATE"]),
    ]


def rendered() -> str:
    parts = []
    for spec in representative_specs():
        assert spec.template == 1
        out = render(spec)
        parts.append(";\n".join([*out.install, *out.uninstall]) + ";\n")
    return "\n-- next spec\n".join(parts)


def test_template_1_output_is_frozen() -> None:
    assert rendered() == GOLDEN.read_text()
