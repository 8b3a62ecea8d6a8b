"""Virtual generated columns (PostgreSQL 18) are recorded with their values.

Transition tables and ``NEW``/``OLD`` hold NULL for a virtual column, and comparing one in a
transition table fails (``unexpected virtual generated column reference``), so the trigger
computes the expression over the row's stored columns.  Before PostgreSQL 18 SQLAlchemy creates
the same declaration as a STORED column: these tests then check that recomputing it gives the
stored value, and say which case they ran.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import SPEC_KEY, AuditSpec
from sqlalchemy_postgresql_audit.declare.spec import VirtualColumnSpec

OPTION_SETS = [
    pytest.param("statement", {}, id="statement"),
    pytest.param("statement", {"skip_unchanged": True}, id="statement-skip"),
    pytest.param("statement", {"capture": ["changed_columns"]}, id="statement-changed"),
    pytest.param("statement", {"exclude_columns": ["price"]}, id="statement-excluded-base"),
    pytest.param("row", {"skip_unchanged": True, "capture": ["changed_columns"]}, id="row"),
    pytest.param("row", {"truncate_rows": True}, id="row-truncate-rows"),
]


def declare(mode: str, options: dict[str, Any]) -> sa.Table:
    return sa.Table(
        "line",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("price", sa.Integer),
        sa.Column("qty", sa.Integer),
        sa.Column("total", sa.Integer, sa.Computed("price * qty")),
        sa.Column("label", sa.Text, sa.Computed("'n:' || qty::text")),
        info={"audit.options": {"enabled": True, "mode": mode, **options}},
    )


@pytest.mark.filterwarnings("ignore:Computed column:sqlalchemy.exc.SAWarning")
@pytest.mark.parametrize(("mode", "options"), OPTION_SETS)
def test_virtual_columns_are_recorded_with_their_values(
    engine: sa.Engine, server_version: int, mode: str, options: dict[str, Any]
) -> None:
    table = declare(mode, options)
    spec = table.info[SPEC_KEY]
    assert isinstance(spec, AuditSpec)
    assert [v.name for v in spec.virtual_columns] == ["total", "label"]
    table.metadata.create_all(engine)
    with engine.connect() as connection:
        generated = connection.exec_driver_sql(
            "SELECT attgenerated FROM pg_attribute WHERE attrelid = 'line'::regclass "
            "AND attname = 'total'"
        ).scalar_one()
    # PostgreSQL 15 has no virtual columns: there the declaration is stored, and the test
    # checks that recomputing the expression records the same value.
    assert generated == ("v" if server_version >= 180000 else "s")
    audit = table.info["audit.table"]
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, price=2, qty=3))
        connection.execute(table.update().values(qty=4))
        connection.execute(table.update().values(qty=4))  # unchanged
        connection.execute(table.update().values(price=5))  # only the excluded base changes
        connection.execute(table.delete())
        connection.execute(table.insert().values(id=2, price=1, qty=1))
        connection.exec_driver_sql("TRUNCATE line")
        rows = connection.execute(
            sa.select(audit.c.audit_operation, audit.c.total, audit.c.label).order_by(
                audit.c.audit_id
            )
        ).all()
    skips = options.get("skip_unchanged") or "exclude_columns" in options
    expected = [
        ("I", 6, "n:3"),
        ("U", 8, "n:4"),
        *([] if skips else [("U", 8, "n:4")]),
        ("U", 20, "n:4"),  # total depends on price: recorded even when price is excluded
        ("D", 20, "n:4"),
        ("I", 1, "n:1"),
        ("T", 1, "n:1") if options.get("truncate_rows") else ("T", None, None),
    ]
    assert [tuple(r) for r in rows] == expected
    if "changed_columns" in options.get("capture", ()):
        with engine.connect() as connection:
            changed = connection.execute(
                sa.select(audit.c.audit_changed_columns)
                .where(audit.c.audit_operation == "U")
                .order_by(audit.c.audit_id)
            ).scalars()
            assert list(changed) == [
                ["qty", "total", "label"],
                *([] if skips else [[]]),
                ["price", "total"],
            ]


@pytest.mark.parametrize(
    "expression",
    ["a); DROP TABLE x; --", "a -- b", "(a", "a :b", "'open"],
)
def test_a_generation_expression_must_be_one_expression(expression: str) -> None:
    spec = AuditSpec(
        schema=None,
        table="t",
        audit_table="t_audit",
        function="f",
        triggers=(),
        columns=("a", "v"),
        virtual_columns=(VirtualColumnSpec(name="v", expression="a + 1"),),
    )
    assert AuditSpec.from_json(spec.to_json()) == spec
    tampered = json.loads(spec.to_json())
    tampered["virtual_columns"][0]["expression"] = expression
    with pytest.raises(ValueError, match=r"audit spec: .*expression"):
        AuditSpec.from_dict(tampered)
