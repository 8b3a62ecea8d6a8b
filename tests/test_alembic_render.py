"""The text of generated migrations, without a database."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import render_python_code
from alembic.operations import ops

from sqlalchemy_postgresql_audit import SPEC_KEY, AuditSpec
from sqlalchemy_postgresql_audit.alembic import (
    CreateAuditTriggerOp,
    DropAuditTriggerOp,
    ReplaceAuditTriggerOp,
)
from sqlalchemy_postgresql_audit.alembic.ops import (
    previous_from_arguments,
    spec_arguments,
    spec_from_arguments,
)


def spec_of(name: str, schema: str | None = None, **options: Any) -> AuditSpec:
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column('we"ird %s', sa.Text),
        schema=schema,
        info={"audit.options": {"enabled": True, **options}},
    )
    spec = table.info[SPEC_KEY]
    assert isinstance(spec, AuditSpec)
    return spec


class RecordingOp:
    """Stands in for ``alembic.op`` to read back what a rendered call passes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, AuditSpec, AuditSpec | None]] = []

    def __getattr__(self, name: str) -> Any:
        def call(table: str, *, previous: dict[str, Any] | None = None, **kw: Any) -> None:
            new = spec_from_arguments(table, kw)
            old = previous_from_arguments(new, previous) if previous is not None else None
            self.calls.append((name, new, old))

        return call


SPECS = [
    spec_of("orders"),
    spec_of("Order Items", schema="Sales Dept", mode="row", operations=["DELETE"]),
    spec_of("x", session_settings=[sa.Column("username", sa.String(30), nullable=False)]),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.table)
def test_rendered_operations_are_plain_python_that_round_trips(spec: AuditSpec) -> None:
    other = spec_of("orders", mode="row")
    upgrade = ops.UpgradeOps(
        ops=[
            CreateAuditTriggerOp(spec),
            ReplaceAuditTriggerOp(spec, previous=other),
            DropAuditTriggerOp(spec),
        ]
    )
    code = render_python_code(upgrade)
    assert "Column(" not in code
    assert "execute(" not in code
    recorder = RecordingOp()
    body = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("#"))
    exec(compile(textwrap.dedent(body), "migration", "exec"), {"op": recorder})
    assert recorder.calls == [
        ("create_audit_trigger", spec, None),
        ("replace_audit_trigger", spec, other),
        ("drop_audit_trigger", spec, None),
    ]


def test_rendered_create_reads_like_a_reviewer_wants() -> None:
    code = render_python_code(ops.UpgradeOps(ops=[CreateAuditTriggerOp(spec_of("orders"))]))
    assert code.strip().splitlines()[1:] == [
        "    op.create_audit_trigger(",
        "        'orders',",
        "        schema=None,",
        "        audit_table='orders_audit',",
        "        function='public_orders_audit',",
        "        triggers=[{'name': 'public_orders_audit_insert', 'operation': 'INSERT'},",
        "         {'name': 'public_orders_audit_update', 'operation': 'UPDATE'},",
        "         {'name': 'public_orders_audit_delete', 'operation': 'DELETE'},",
        "         {'name': 'public_orders_audit_truncate', 'operation': 'TRUNCATE'}],",
        "        columns=['id', 'we\"ird %s'],",
        "        settings=[],",
        "        mode='statement',",
        "        template=2,",
        "        exclude_columns=[],",
        "        skip_unchanged=False,",
        "        key_columns=['id'],",
        "        captures=[],",
        "        truncate_rows=False,",
        "    )",
        "    # ### end Alembic commands ###",
    ]


def test_a_replace_shows_its_change_and_writes_each_spec_once() -> None:
    """A summary comment, the new spec, and only the arguments the old spec had otherwise."""
    new = spec_of("orders", session_settings=[sa.Column("username", sa.String)])
    table = sa.Table(
        "orders",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column('we"ird %s', sa.Text),
        sa.Column("total", sa.Numeric(10, 2)),
        info={"audit.options": {"enabled": True, "mode": "row"}},
    )
    old = table.info[SPEC_KEY]
    code = render_python_code(ops.UpgradeOps(ops=[ReplaceAuditTriggerOp(new, previous=old)]))
    assert code.strip().splitlines()[1:] == [
        "    # audit orders: columns -total; settings +username; mode 'row' -> 'statement'",
        "    op.replace_audit_trigger(",
        "        'orders',",
        "        schema=None,",
        "        audit_table='orders_audit',",
        "        function='public_orders_audit',",
        "        triggers=[{'name': 'public_orders_audit_insert', 'operation': 'INSERT'},",
        "         {'name': 'public_orders_audit_update', 'operation': 'UPDATE'},",
        "         {'name': 'public_orders_audit_delete', 'operation': 'DELETE'},",
        "         {'name': 'public_orders_audit_truncate', 'operation': 'TRUNCATE'}],",
        "        columns=['id', 'we\"ird %s'],",
        "        settings=[{'name': 'username',",
        "          'column': 'audit_username',",
        "          'sql_type': 'VARCHAR',",
        "          'required': False}],",
        "        mode='statement',",
        "        template=2,",
        "        exclude_columns=[],",
        "        skip_unchanged=False,",
        "        key_columns=['id'],",
        "        captures=[],",
        "        truncate_rows=False,",
        "        previous={'columns': ['id', 'we\"ird %s', 'total'], 'settings': [], 'mode': 'row'},",
        "    )",
        "    # ### end Alembic commands ###",
    ]


def test_a_reinstall_says_so_and_has_an_empty_previous() -> None:
    spec = spec_of("orders")
    code = render_python_code(ops.UpgradeOps(ops=[ReplaceAuditTriggerOp(spec, previous=spec)]))
    assert "# audit orders: reinstall as declared (the installed objects differ)" in code
    assert "previous={}," in code


def test_a_full_previous_of_older_migrations_still_means_the_previous_spec() -> None:
    new, old = spec_of("orders"), spec_of("orders", mode="row", operations=["DELETE"])
    recorder = RecordingOp()
    recorder.replace_audit_trigger(
        "orders", previous={"table": "orders", **spec_arguments(old)}, **spec_arguments(new)
    )
    assert recorder.calls == [("replace_audit_trigger", new, old)]


def test_every_operation_reverses_exactly() -> None:
    new, old = SPECS[0], spec_of("orders", mode="row")
    replace = ReplaceAuditTriggerOp(new, previous=old)
    assert (replace.reverse().spec, replace.reverse().previous) == (old, new)
    assert isinstance(CreateAuditTriggerOp(new).reverse(), DropAuditTriggerOp)
    assert CreateAuditTriggerOp(new).reverse().reverse().spec == new
    assert CreateAuditTriggerOp(new).to_diff_tuple() == ("create_audit_trigger", None, "orders")


def test_create_table_info_is_rendered_without_library_entries() -> None:
    """Covered end to end in test_alembic_evolution; here: the user's own info keys survive."""
    from sqlalchemy_postgresql_audit.alembic.comparator import _clean_table_ops

    table = sa.Table(
        "t",
        sa.MetaData(),
        sa.Column("id", sa.Integer),
        info={"audit.options": {"enabled": True}, "owner": "team-a"},
    )
    upgrade = ops.UpgradeOps(ops=[ops.CreateTableOp.from_table(table)])
    _clean_table_ops(upgrade)
    code = render_python_code(upgrade)
    assert "info={'owner': 'team-a'}" in code
    assert "audit." not in code
