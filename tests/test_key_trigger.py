"""The key trigger of a statement-mode table (``render.key_trigger``): moved keys (``K`` rows)
recorded by a row trigger whose condition PostgreSQL evaluates, not by the statement trigger;
its inheritance children, a partitioned table forced into statement mode, and its drift."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from alembic_env import make_project
from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, SPEC_KEY, AuditSpec, install_audit_triggers
from sqlalchemy_postgresql_audit.declare.spec import key_trigger_name
from sqlalchemy_postgresql_audit.install.catalog import installed_audits
from sqlalchemy_postgresql_audit.install.compare import ReplaceAudit, compare, drifts
from sqlalchemy_postgresql_audit.install.ddl import execute_statements
from sqlalchemy_postgresql_audit.render import render, resolved

KEY_TRIGGER = "public_parcel_audit_update_key"


def declare(*, deferrable_key: bool = False, **options: Any) -> sa.Table:
    key = sa.PrimaryKeyConstraint("id", deferrable=True) if deferrable_key else None
    return sa.Table(
        "parcel",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=not deferrable_key, autoincrement=False),
        sa.Column("place", sa.Text),
        *([key] if key is not None else []),
        info={"audit.options": {"enabled": True, "mode": "statement", **options}},
    )


def spec_of(table: sa.Table) -> AuditSpec:
    spec = table.info[SPEC_KEY]
    assert isinstance(spec, AuditSpec)
    return spec


def trail(connection: sa.Connection, table: sa.Table) -> list[tuple[str, int | None, str | None]]:
    audit = table.info[AUDIT_TABLE_KEY]
    rows = connection.execute(
        sa.select(audit.c.audit_operation, audit.c.id, audit.c.place).order_by(audit.c.audit_id)
    )
    return [(r.audit_operation, r.id, r.place) for r in rows]


def current_drifts(engine: sa.Engine, table: sa.Table) -> list[str]:
    with engine.connect() as connection:
        (installed,) = installed_audits(connection, ["public"])
    return [d.reason for d in drifts(spec_of(table), installed, "public")]


def test_the_key_trigger_is_named_after_the_update_trigger() -> None:
    spec = spec_of(declare())
    assert spec.key_trigger is not None
    assert spec.key_trigger.name == KEY_TRIGGER
    long = key_trigger_name("t" * 63)
    assert len(long.encode()) == 63 and long != key_trigger_name("t" * 62 + "u")
    assert spec_of(declare(mode="row")).key_trigger is None
    assert spec_of(declare(operations=["INSERT", "DELETE"])).key_trigger is None


def test_k_rows_come_from_the_key_trigger_not_the_statement_trigger(engine: sa.Engine) -> None:
    table = declare()
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "place": "a"}, {"id": 2, "place": "b"}])
        connection.execute(table.update().where(table.c.id == 1).values(id=10))
        connection.exec_driver_sql(f"ALTER TABLE parcel DISABLE TRIGGER {KEY_TRIGGER}")
        connection.execute(table.update().where(table.c.id == 2).values(id=20))
        assert trail(connection, table)[2:] == [("K", 1, "a"), ("U", 10, "a"), ("U", 20, "b")]


def test_a_key_set_by_a_before_trigger_is_recorded(engine: sa.Engine) -> None:
    """No ``UPDATE OF`` column list: a key changed by a BEFORE trigger still fires it."""
    table = declare()
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE FUNCTION renumber() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.id := NEW.id + 100; RETURN NEW; END $$"
        )
        connection.exec_driver_sql(
            "CREATE TRIGGER renumber BEFORE UPDATE OF place ON parcel "
            "FOR EACH ROW EXECUTE FUNCTION renumber()"
        )
        connection.execute(table.insert().values(id=1, place="a"))
        connection.execute(table.update().values(place="b"))
        assert trail(connection, table) == [("I", 1, "a"), ("K", 1, "a"), ("U", 101, "b")]


def test_a_multi_row_shift_leaves_only_the_vacated_key(engine: sa.Engine) -> None:
    """``id = id + 1`` over 1..3 under a deferrable key: every row's key changed, but only key
    1 is held by no row once the statement is done."""
    table = declare(deferrable_key=True)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": i, "place": str(i)} for i in (1, 2, 3)])
        connection.execute(table.update().values(id=table.c.id + 1))
        assert trail(connection, table)[3:] == [
            ("K", 1, "1"),
            ("U", 2, "1"),
            ("U", 3, "2"),
            ("U", 4, "3"),
        ]


def test_a_key_moved_through_an_inheritance_child_is_recorded(engine: sa.Engine) -> None:
    table = declare()
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE parcel_child () INHERITS (parcel)")
    assert any("key trigger" in reason for reason in current_drifts(engine, table))
    install_audit_triggers(table.metadata, engine)
    assert current_drifts(engine, table) == []
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO parcel_child VALUES (5, 'c')")
        connection.execute(table.update().where(table.c.id == 5).values(id=50))
        assert trail(connection, table) == [("K", 5, "c"), ("U", 50, "c")]


def test_a_partitioned_table_forced_into_statement_mode_records_moves_across_partitions(
    engine: sa.Engine,
) -> None:
    """A row moving to another partition fires no UPDATE row trigger: the statement call looks
    for moved keys there, and the key trigger's clones do nothing, so each K is written once.

    ``install_audit_triggers`` refuses statement mode on a partitioned table; a migration
    running the rendered SQL over a table partitioned by hand does not ask."""
    table = declare()
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE parcel (id integer PRIMARY KEY, place text) PARTITION BY RANGE (id)"
        )
        for name, bounds in (("low", "(0) TO (100)"), ("high", "(100) TO (200)")):
            connection.exec_driver_sql(
                f"CREATE TABLE parcel_{name} PARTITION OF parcel FOR VALUES FROM {bounds}"
            )
        table.info[AUDIT_TABLE_KEY].create(connection)
        execute_statements(connection, render(resolved(spec_of(table))).install)
    assert current_drifts(engine, table) == []
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "place": "a"}, {"id": 2, "place": "b"}])
        connection.execute(table.update().where(table.c.id == 1).values(id=150))
        connection.execute(table.update().where(table.c.id == 2).values(id=3))
        assert trail(connection, table)[2:] == [
            ("K", 1, "a"),
            ("U", 150, "a"),
            ("K", 2, "b"),
            ("U", 3, "b"),
        ]


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (f"DROP TRIGGER {KEY_TRIGGER} ON parcel", f"trigger {KEY_TRIGGER} missing"),
        (f"ALTER TABLE parcel DISABLE TRIGGER {KEY_TRIGGER}", f"trigger {KEY_TRIGGER} disabled"),
        (
            f"CREATE OR REPLACE TRIGGER {KEY_TRIGGER} AFTER UPDATE ON parcel FOR EACH ROW "
            "WHEN (OLD.id IS DISTINCT FROM NEW.id AND false) "
            "EXECUTE FUNCTION public_parcel_audit()",
            f"trigger {KEY_TRIGGER} differs",
        ),
        (
            f"CREATE OR REPLACE TRIGGER {KEY_TRIGGER} AFTER UPDATE ON parcel FOR EACH ROW "
            "EXECUTE FUNCTION public_parcel_audit()",
            f"trigger {KEY_TRIGGER} differs",
        ),
    ],
)
def test_a_missing_disabled_or_altered_key_trigger_is_drift(
    engine: sa.Engine, tamper: str, reason: str
) -> None:
    table = declare()
    table.metadata.create_all(engine)
    assert current_drifts(engine, table) == []
    with engine.begin() as connection:
        connection.exec_driver_sql(tamper)
    assert current_drifts(engine, table) == [reason]
    with engine.connect() as connection:
        found = compare([spec_of(table)], installed_audits(connection, ["public"]), "public")
    assert [type(c) for c in found] == [ReplaceAudit]
    install_audit_triggers(table.metadata, engine)
    assert current_drifts(engine, table) == []


def test_an_altered_key_trigger_on_an_inheritance_child_is_drift(engine: sa.Engine) -> None:
    table = declare()
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE parcel_child () INHERITS (parcel)")
    install_audit_triggers(table.metadata, engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"CREATE OR REPLACE TRIGGER {KEY_TRIGGER} AFTER UPDATE ON parcel_child FOR EACH ROW "
            "WHEN (OLD.place IS DISTINCT FROM NEW.place) EXECUTE FUNCTION public_parcel_audit()"
        )
    assert current_drifts(engine, table) == [
        f"key trigger {KEY_TRIGGER} on inheritance child public.parcel_child differs"
    ]


def test_switching_to_row_mode_removes_the_key_trigger(engine: sa.Engine) -> None:
    table = declare()
    table.metadata.create_all(engine)
    row = declare(mode="row")
    install_audit_triggers(row.metadata, engine)
    assert current_drifts(engine, row) == []
    with engine.begin() as connection:
        connection.execute(row.update().values(id=2))  # no row: nothing, and no error
        names = connection.exec_driver_sql(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'parcel'::regclass ORDER BY 1"
        ).scalars()
        assert KEY_TRIGGER not in list(names)


def test_an_installation_of_template_2_before_the_key_trigger_is_replaced_by_alembic(
    tmp_path: Path, engine: sa.Engine
) -> None:
    """Template 2 is still open: an installation made before the key trigger (the anti-join in
    every UPDATE call, no key trigger) reads as drifted, and autogenerate replaces it."""
    table = declare()
    project = make_project(tmp_path, engine.url)
    project.revision(table.metadata, "parcels")
    project.upgrade(table.metadata)
    with engine.begin() as connection:
        function = connection.exec_driver_sql(
            "SELECT pg_get_functiondef('public_parcel_audit()'::regprocedure)"
        ).scalar_one()
        branch = re.search(
            r"(?s)IF TG_LEVEL = 'ROW' THEN\n.*?RETURN NULL;\n    END IF;\n    ", function
        )
        gate = re.search(
            r"(?s)IF pg_catalog\.pg_partition_root\(TG_RELID\) IS NOT NULL THEN\n(.*?END IF;\n)    END IF;\n",
            function,
        )
        assert branch is not None and gate is not None
        before = function.replace(branch.group(0), "").replace(gate.group(0), gate.group(1))
        connection.exec_driver_sql(before)
        connection.exec_driver_sql(f"DROP TRIGGER {KEY_TRIGGER} ON parcel")
    assert sorted(current_drifts(engine, table)) == [
        "function body edited",
        f"trigger {KEY_TRIGGER} missing",
    ]
    assert "op.replace_audit_trigger(" in project.revision(table.metadata, "key trigger")
    project.upgrade(table.metadata)
    assert current_drifts(engine, table) == []
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, place="a"))
        connection.execute(table.update().values(id=2))
        assert trail(connection, table) == [("I", 1, "a"), ("K", 1, "a"), ("U", 2, "a")]


def test_hostile_names_are_quoted_in_the_key_trigger(engine: sa.Engine) -> None:
    schema, name, key = "sch\"ema 'x", 'Par\'cel "Select"', "k\"ey ' id"
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column(key, sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("place", sa.Text),
        schema=schema,
        info={"audit.options": {"enabled": True}},
    )
    with engine.begin() as connection:
        connection.execute(sa.schema.CreateSchema(schema))
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values({key: 1, "place": "a"}))
        connection.execute(table.update().values({key: 2}))
        audit = table.info[AUDIT_TABLE_KEY]
        rows = connection.execute(
            sa.select(audit.c.audit_operation, audit.c[key]).order_by(audit.c.audit_id)
        ).all()
        assert [tuple(r) for r in rows] == [("I", 1), ("K", 1), ("U", 2)]
        (installed,) = installed_audits(connection, [schema])
    assert drifts(spec_of(table), installed, "public") == []
