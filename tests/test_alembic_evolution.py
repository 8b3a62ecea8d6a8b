"""A model walked through thirteen evolutions in a real Alembic project against the real server.

Each step autogenerates a revision, upgrades, proves auditing by real writes and reads, checks
that autogenerate then finds nothing (``alembic check``), downgrades, proves the previous step's
auditing still works, and upgrades again.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from alembic_env import make_project
from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, SPEC_KEY, set_session_vars

_ids = itertools.count(1000)


def orders(
    *,
    name: str = "orders",
    schema: str | None = None,
    columns: tuple[tuple[str, Any], ...] = (("code", sa.String(20)),),
    settings: tuple[sa.Column[Any], ...] = (),
    enabled: bool = True,
    mode: str = "statement",
    exclude: tuple[str, ...] = (),
    capture: tuple[str, ...] = (),
) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        *(sa.Column(column_name, column_type) for column_name, column_type in columns),
        schema=schema,
        info={
            "audit.options": {
                "enabled": enabled,
                "mode": mode,
                "session_settings": [s._copy() for s in settings],
                "exclude_columns": list(exclude),
                "capture": list(capture),
            }
        },
    )
    return metadata


def _value(column: sa.Column[Any], row_id: int) -> Any:
    if isinstance(column.type, sa.Integer):
        return row_id
    if isinstance(column.type, sa.Numeric):
        return 1.5
    return f"v{row_id}"


def assert_audited(engine: sa.Engine, metadata: sa.MetaData) -> None:
    """Insert, update and delete a row in every table; audited ones must record exactly that."""
    for table in metadata.tables.values():
        if table.info.get("audit.is_audit_table"):
            continue
        spec = table.info.get(SPEC_KEY)
        row_id = next(_ids)
        row = {c.name: _value(c, row_id) for c in table.columns}
        other = next((c for c in table.columns if c.name != "id"), None)
        with engine.begin() as connection:
            if spec is not None:
                set_session_vars(
                    connection,
                    **{s.name: "7" if "INT" in s.sql_type else "someone" for s in spec.settings},
                )
            connection.execute(table.insert().values(row))
            if other is not None:
                connection.execute(
                    table.update()
                    .where(table.c.id == row_id)
                    .values({other.name: _value(other, row_id + 1)})
                )
            connection.execute(table.delete().where(table.c.id == row_id))
        if spec is None:
            continue
        audit_table = table.info[AUDIT_TABLE_KEY]
        with engine.connect() as connection:
            recorded = connection.execute(
                sa.select(audit_table)
                .where(audit_table.c.id == row_id)
                .order_by(audit_table.c.audit_id)
            ).all()
        expected_ops = ["I", "U", "D"] if other is not None else ["I", "D"]
        assert [r.audit_operation for r in recorded] == expected_ops, table.fullname
        for setting in spec.settings:
            assert {str(r._mapping[setting.column]) for r in recorded} == {
                "7" if "INT" in setting.sql_type else "someone"
            }
        assert {c: recorded[0]._mapping[c] for c in spec.columns} == {
            c: row[c] for c in spec.columns
        }


def assert_not_audited(engine: sa.Engine, table_name: str, audit_table_name: str) -> None:
    audit_table = sa.table(audit_table_name)
    with engine.begin() as connection:
        before = connection.execute(
            sa.select(sa.func.count()).select_from(audit_table)
        ).scalar_one()
        row_id = next(_ids)
        connection.execute(sa.text(f"INSERT INTO {table_name} (id) VALUES (:id)"), {"id": row_id})
        after = connection.execute(sa.select(sa.func.count()).select_from(audit_table)).scalar_one()
    assert after == before


@dataclass
class Step:
    name: str
    metadata: sa.MetaData
    expect: tuple[str, ...] = ()
    forbid: tuple[str, ...] = ()
    before: Callable[[sa.Engine], None] | None = None
    after: Callable[[sa.Engine], None] | None = None


def _drop_trigger_by_hand(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TRIGGER public_purchases_audit_update ON purchases"))


USERNAME = sa.Column("username", sa.String)
TENANT = sa.Column("tenant", sa.Integer, nullable=False)
CODE_TOTAL = (("code", sa.String(20)), ("total", sa.Numeric(10, 2)))
TEXT_TOTAL = (("code", sa.Text), ("total", sa.Numeric(10, 2)))
TEXT_ONLY = (("code", sa.Text),)
TEXT_NOTE = (("code", sa.Text), ("note", sa.Text))


def _total_history_is_kept(engine: sa.Engine) -> None:
    """The dropped source column's audit column is kept, with the values recorded before."""
    with engine.connect() as connection:
        kept = connection.execute(
            sa.text("SELECT count(*) FROM orders_audit WHERE total IS NOT NULL")
        ).scalar_one()
    assert kept > 0


def _transaction_ids_are_recorded(engine: sa.Engine) -> None:
    row_id = next(_ids)
    with engine.begin() as connection:
        set_session_vars(connection, username="someone", tenant=7)
        connection.execute(sa.text("INSERT INTO purchases (id) VALUES (:id)"), {"id": row_id})
        expected = connection.execute(sa.text("SELECT pg_current_xact_id()::text::bigint")).scalar()
        recorded = connection.execute(
            sa.text("SELECT audit_transaction_id FROM purchases_audit WHERE id = :id"),
            {"id": row_id},
        ).scalar_one()
    assert recorded == expected


STEPS = [
    Step(
        "new audited table",
        orders(settings=(USERNAME,)),
        expect=(
            "op.create_table('orders'",
            "op.create_table('orders_audit'",
            "op.create_audit_trigger(",
            "import sqlalchemy_postgresql_audit.alembic",
        ),
        forbid=("info=", "Column('username'"),
    ),
    Step(
        "add column",
        orders(settings=(USERNAME,), columns=CODE_TOTAL),
        expect=(
            "op.add_column('orders', sa.Column('total'",
            "op.add_column('orders_audit', sa.Column('total'",
            "op.replace_audit_trigger(",
        ),
    ),
    Step(
        "retype column",
        orders(settings=(USERNAME,), columns=TEXT_TOTAL),
        expect=("op.alter_column('orders_audit', 'code'", "type_=sa.Text()"),
        forbid=("replace_audit_trigger",),
    ),
    Step(
        "drop column",
        orders(settings=(USERNAME,), columns=TEXT_ONLY),
        expect=(
            "op.drop_column('orders', 'total')",
            "# audit orders: columns -total",
            "op.replace_audit_trigger(",
        ),
        # the audit column and its history are kept; dropping it is a hand-written choice
        forbid=("op.drop_column('orders_audit'",),
        after=_total_history_is_kept,
    ),
    Step(
        "add required setting to a table with history",
        orders(settings=(USERNAME, TENANT), columns=TEXT_ONLY),
        expect=("op.add_column('orders_audit', sa.Column('audit_tenant'", "'required': True"),
    ),
    Step(
        "rename table",
        orders(name="purchases", settings=(USERNAME, TENANT), columns=TEXT_ONLY),
        expect=(
            "op.create_table('purchases'",
            "op.drop_audit_trigger(",
            "op.create_audit_trigger(",
        ),
        forbid=("op.drop_table('orders_audit')",),
    ),
    Step(
        "disable auditing",
        orders(name="purchases", enabled=False, columns=TEXT_ONLY),
        expect=("op.drop_audit_trigger(",),
        forbid=("op.drop_table('purchases_audit')",),
        after=lambda engine: assert_not_audited(engine, "purchases", "purchases_audit"),
    ),
    Step(
        "re-enable auditing",
        orders(name="purchases", settings=(USERNAME, TENANT), columns=TEXT_ONLY),
        expect=("op.create_audit_trigger(",),
        forbid=("op.create_table('purchases_audit'",),
    ),
    Step(
        "hand-dropped trigger",
        orders(name="purchases", settings=(USERNAME, TENANT), columns=TEXT_ONLY),
        before=_drop_trigger_by_hand,
        expect=("op.replace_audit_trigger(",),
    ),
    Step(
        "add an excluded column",
        orders(name="purchases", settings=(USERNAME, TENANT), columns=TEXT_NOTE, exclude=("note",)),
        expect=(
            "op.add_column('purchases', sa.Column('note'",
            "exclude_columns=['note']",
            "skip_unchanged=True",
            "# audit purchases: exclude_columns +note; skip_unchanged False -> True",
        ),
        forbid=("op.add_column('purchases_audit'",),
        after=lambda engine: _note_only_update_is_not_recorded(engine, "purchases"),
    ),
    Step(
        "row mode",
        orders(
            name="purchases",
            settings=(USERNAME, TENANT),
            columns=TEXT_NOTE,
            exclude=("note",),
            mode="row",
        ),
        expect=("mode='row'", "op.replace_audit_trigger("),
        after=lambda engine: _note_only_update_is_not_recorded(engine, "purchases"),
    ),
    Step(
        "capture the transaction id",
        orders(
            name="purchases",
            settings=(USERNAME, TENANT),
            columns=TEXT_NOTE,
            exclude=("note",),
            mode="row",
            capture=("transaction_id",),
        ),
        expect=(
            "op.add_column('purchases_audit', sa.Column('audit_transaction_id'",
            "captures=['transaction_id']",
        ),
        after=_transaction_ids_are_recorded,
    ),
    Step(
        "move to another schema",
        orders(
            name="purchases",
            schema="sales",
            settings=(USERNAME, TENANT),
            columns=TEXT_NOTE,
            exclude=("note",),
            capture=("transaction_id",),
        ),
        expect=("op.create_table('purchases_audit'", "schema='sales'", "op.drop_audit_trigger("),
        before=lambda engine: _create_schema(engine, "sales"),
    ),
]


def _note_only_update_is_not_recorded(engine: sa.Engine, table_name: str) -> None:
    row_id = next(_ids)
    table = sa.table(table_name, sa.column("id"), sa.column("code"), sa.column("note"))
    audit_table = sa.table(f"{table_name}_audit", sa.column("id"), sa.column("audit_operation"))
    with engine.begin() as connection:
        set_session_vars(connection, username="someone", tenant=7)
        connection.execute(sa.insert(table).values(id=row_id, code="c", note="n"))
        connection.execute(sa.update(table).where(table.c.id == row_id).values(note="changed"))
        connection.execute(sa.update(table).where(table.c.id == row_id).values(code="c"))
        recorded = (
            connection.execute(
                sa.select(audit_table.c.audit_operation).where(audit_table.c.id == row_id)
            )
            .scalars()
            .all()
        )
    assert recorded == ["I"]


def _create_schema(engine: sa.Engine, name: str) -> None:
    with engine.begin() as connection:
        connection.execute(sa.schema.CreateSchema(name, if_not_exists=True))


def test_model_evolution_upgrades_downgrades_and_stays_audited(
    tmp_path: Path, engine: sa.Engine
) -> None:
    project = make_project(tmp_path, engine.url)
    previous = sa.MetaData()
    for step in STEPS:
        if step.before:
            step.before(engine)
        text = project.revision(step.metadata, step.name)
        for fragment in step.expect:
            assert fragment in text, f"{step.name}: {fragment!r} missing from\n{text}"
        for fragment in step.forbid:
            assert fragment not in text, f"{step.name}: {fragment!r} present in\n{text}"
        for operation in ("create_audit_trigger(", "replace_audit_trigger(", "drop_audit_trigger("):
            # registered once: never two operations for one table in one step
            assert text.split("def downgrade")[0].count(operation) <= 1, text
        compile(text, step.name, "exec")
        project.upgrade(step.metadata)
        assert_audited(engine, step.metadata)
        if step.after:
            step.after(engine)
        project.check(step.metadata)
        project.downgrade(previous)
        assert_audited(engine, previous)
        project.upgrade(step.metadata)
        assert_audited(engine, step.metadata)
        project.check(step.metadata)
        previous = step.metadata


def test_offline_mode_emits_the_same_ddl(tmp_path: Path, engine: sa.Engine) -> None:
    metadata = orders(settings=(USERNAME,), columns=(("50% off", sa.Text), ("it's", sa.Text)))
    project = make_project(tmp_path, engine.url)
    project.revision(metadata, "first")
    sql = project.offline_sql(metadata, "head")
    for statement in next(iter(metadata.tables.values())).info["audit.create_ddl"]:
        assert statement in sql


def test_no_changes_means_an_empty_revision(tmp_path: Path, engine: sa.Engine) -> None:
    metadata = orders(settings=(USERNAME,))
    project = make_project(tmp_path, engine.url)
    project.revision(metadata, "first")
    project.upgrade(metadata)
    project.check(metadata)
    text = project.revision(orders(settings=(USERNAME,)), "nothing")
    upgrade_body = text.split("def upgrade", 1)[1].split("def downgrade", 1)[0]
    assert "op." not in upgrade_body
    assert "pass" in upgrade_body


def test_include_object_filter_is_honoured(tmp_path: Path, engine: sa.Engine) -> None:
    metadata = orders()
    project = make_project(tmp_path, engine.url)
    project.edit_env("include_schemas=True", f"include_schemas=True, {INCLUDE_OBJECT}")
    text = project.revision(metadata, "filtered")
    assert "audit_trigger" not in text
    assert "create_table" not in text


@pytest.fixture(autouse=True)
def _quiet_alembic_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")


INCLUDE_NAME = "include_name=lambda n, t, p: not (t == 'table' and n.startswith('orders'))"
INCLUDE_OBJECT = (
    "include_object=lambda o, n, t, r, c: not (t == 'table' and n.startswith('orders'))"
)


def installed_then_filtered(tmp_path: Path, engine: sa.Engine, hook: str) -> Any:
    """A project with audited ``orders`` installed, whose env.py then filters ``orders`` out."""
    metadata = orders()
    project = make_project(tmp_path, engine.url)
    project.revision(metadata, "first")
    project.upgrade(metadata)
    project.edit_env("include_schemas=True", f"include_schemas=True, {hook}")
    return project


def test_include_name_filter_is_honoured_for_installed_auditing(
    tmp_path: Path, engine: sa.Engine
) -> None:
    project = installed_then_filtered(tmp_path, engine, INCLUDE_NAME)
    text = project.revision(sa.MetaData(), "model emptied but orders filtered out")
    assert "audit_trigger" not in text
    assert "drop_table" not in text


def test_include_object_keeps_autogenerate_away_from_installed_auditing(
    tmp_path: Path, engine: sa.Engine
) -> None:
    project = installed_then_filtered(tmp_path, engine, INCLUDE_OBJECT)
    for model in (orders(), orders(enabled=False), sa.MetaData()):
        text = project.revision(model, "filtered")
        assert "audit_trigger" not in text, text
        for path in (tmp_path / "migrations" / "versions").glob("*filtered*.py"):
            path.unlink()  # each model is compared with the same database state
