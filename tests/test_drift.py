"""Drift between declared and installed auditing, read from a real catalog."""

from __future__ import annotations

import enum
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import SPEC_KEY, AuditSpec, install_audit_triggers
from sqlalchemy_postgresql_audit.context.session import setting_value
from sqlalchemy_postgresql_audit.install.catalog import installed_audits
from sqlalchemy_postgresql_audit.install.compare import DropAudit, ReplaceAudit, compare
from sqlalchemy_postgresql_audit.install.ddl import AuditDDL
from sqlalchemy_postgresql_audit.render import render, resolved


def declare(name: str = "ledger", **options: Any) -> sa.Table:
    partitioned = options.pop("_partitioned", False)
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("note", sa.Text),
        info={"audit.options": {"enabled": True, **options}},
        **({"postgresql_partition_by": "RANGE (id)"} if partitioned else {}),
    )


def changes(engine: sa.Engine, *specs: AuditSpec) -> list[Any]:
    with engine.connect() as connection:
        return compare(specs, installed_audits(connection, ["public"]), "public")


def spec_of(table: sa.Table) -> AuditSpec:
    spec = table.info[SPEC_KEY]
    assert isinstance(spec, AuditSpec)
    return spec


@pytest.mark.parametrize(
    "tamper",
    [
        "ALTER TABLE ledger DISABLE TRIGGER public_ledger_audit_update",
        "ALTER TABLE ledger ENABLE REPLICA TRIGGER public_ledger_audit_update",
        "ALTER FUNCTION public_ledger_audit() SET search_path = pg_temp, public",
        "ALTER FUNCTION public_ledger_audit() SECURITY INVOKER",
        "ALTER FUNCTION public_ledger_audit() RESET search_path",
        "ALTER FUNCTION public_ledger_audit() RESET ALL",
        "CREATE OR REPLACE TRIGGER public_ledger_audit_insert AFTER INSERT ON ledger "
        "REFERENCING NEW TABLE AS x FOR EACH STATEMENT EXECUTE FUNCTION public_ledger_audit()",
        "DROP TRIGGER public_ledger_audit_delete ON ledger",
        "CREATE OR REPLACE TRIGGER public_ledger_audit_update AFTER UPDATE OF note ON ledger "
        "FOR EACH ROW EXECUTE FUNCTION public_ledger_audit()",
        "CREATE OR REPLACE TRIGGER public_ledger_audit_insert AFTER INSERT ON ledger "
        "REFERENCING NEW TABLE AS audit_new_rows FOR EACH STATEMENT WHEN (false) "
        "EXECUTE FUNCTION public_ledger_audit()",
    ],
)
def test_hand_tampering_is_detected(engine: sa.Engine, tamper: str) -> None:
    table = declare()
    table.metadata.create_all(engine)
    spec = spec_of(table)
    assert changes(engine, spec) == []
    with engine.begin() as connection:
        connection.execute(sa.text(tamper))
    assert changes(engine, spec) == [ReplaceAudit(spec, previous=spec)]
    install_audit_triggers(table.metadata, engine)
    assert changes(engine, spec) == []


def test_partition_clones_of_row_triggers_are_not_drift(engine: sa.Engine) -> None:
    table = declare(_partitioned=True)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.text("CREATE TABLE ledger_all PARTITION OF ledger FOR VALUES FROM (0) TO (1000)")
        )
    install_audit_triggers(table.metadata, engine)  # the partition's TRUNCATE trigger
    assert spec_of(table).mode == "row"
    assert changes(engine, spec_of(table)) == []


def test_a_stale_function_is_dropped_without_touching_live_triggers(engine: sa.Engine) -> None:
    old = declare()
    old.metadata.create_all(engine)
    renamed = sa.Table(
        "ledger",
        sa.MetaData(naming_convention={"audit.function": "fn_%(table_name)s"}),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("note", sa.Text),
        info={"audit.options": {"enabled": True}},
    )
    install_spec(engine, spec_of(renamed))  # by hand: same trigger names, new function
    assert changes(engine, spec_of(renamed)) == [
        DropAudit(replace(resolved(spec_of(old)), triggers=()))
    ]
    install_audit_triggers(renamed.metadata, engine)  # replaces the older declaration's
    assert changes(engine, spec_of(renamed)) == []


def test_specs_read_back_are_checked_before_they_reach_sql() -> None:
    spec = spec_of(declare(session_settings=[sa.Column("user", sa.String(20))]))
    data = __import__("json").loads(spec.to_json())
    assert AuditSpec.from_dict(data) == spec
    for path, bad in (
        (("mode",), "row; DROP TABLE x"),
        (("triggers", 0, "operation"), "INSERT OR DELETE"),
        (("settings", 0, "sql_type"), "TEXT; DROP TABLE x"),
    ):
        tampered = __import__("json").loads(spec.to_json())
        target: Any = tampered
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = bad
        with pytest.raises(ValueError, match="audit spec"):
            AuditSpec.from_dict(tampered)


def test_setting_values_are_text() -> None:
    class Role(enum.Enum):
        ADMIN = "admin"

    assert setting_value(Role.ADMIN) == "admin"
    with pytest.raises(TypeError, match="decode"):
        setting_value(b"raw")


def install_spec(engine: sa.Engine, spec: AuditSpec) -> None:
    with engine.begin() as connection:
        for sql in render(spec).install:
            connection.execute(AuditDDL(sql))


def partitioned_with_partition(engine: sa.Engine, **options: Any) -> sa.Table:
    table = declare(_partitioned=True, **options)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.text("CREATE TABLE ledger_all PARTITION OF ledger FOR VALUES FROM (0) TO (1000)")
        )
    return table


def audit_rows_after_writes(engine: sa.Engine, table: sa.Table) -> list[tuple[Any, ...]]:
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, note="a"))
        connection.execute(sa.text("UPDATE ledger_all SET note = 'b'"))
        connection.execute(table.delete())
        rows = connection.execute(
            sa.text("SELECT audit_operation, id, note FROM ledger_audit ORDER BY audit_id")
        ).all()
    return [tuple(row) for row in rows]


def test_switching_a_partitioned_table_to_statement_mode_drops_the_row_clones(
    engine: sa.Engine,
) -> None:
    row_mode = partitioned_with_partition(engine)
    assert spec_of(row_mode).mode == "row"
    # Declaring statement mode on a partitioned table is refused; a hand-written spec is not.
    spec = replace(spec_of(row_mode), mode="statement")
    install_spec(engine, spec)
    assert changes(engine, spec) == []
    # Addressed to the parent: the statement triggers record it (writes to a partition
    # directly are not seen in statement mode, which is why partitioned tables default to row).
    with engine.begin() as connection:
        connection.execute(row_mode.insert().values(id=1, note="a"))
        connection.execute(row_mode.update().values(note="b"))
        rows = connection.execute(
            sa.text("SELECT audit_operation, id, note FROM ledger_audit ORDER BY audit_id")
        ).all()
    assert [tuple(r) for r in rows] == [("I", 1, "a"), ("U", 1, "b")]
    # And back: row-level clones come back on the partition.
    install_audit_triggers(row_mode.metadata, engine)
    assert changes(engine, spec_of(row_mode)) == []


def test_row_clones_left_behind_by_a_level_change_are_drift(engine: sa.Engine) -> None:
    spec = replace(spec_of(partitioned_with_partition(engine)), mode="statement")
    with engine.begin() as connection:  # a plain CREATE OR REPLACE TRIGGER, as before the fix
        for sql in render(spec).install:
            if not sql.startswith("DO "):
                connection.execute(AuditDDL(sql))
    assert changes(engine, spec) == [ReplaceAudit(spec, previous=spec)]
    install_spec(engine, spec)
    assert changes(engine, spec) == []


def test_a_clone_disabled_on_one_partition_is_drift(engine: sa.Engine) -> None:
    table = partitioned_with_partition(engine)
    spec = spec_of(table)
    with engine.begin() as connection:
        connection.execute(
            sa.text("ALTER TABLE ledger_all DISABLE TRIGGER public_ledger_audit_update")
        )
    assert changes(engine, spec) == [ReplaceAudit(spec, previous=spec)]
    install_audit_triggers(table.metadata, engine)
    assert changes(engine, spec) == []
    assert audit_rows_after_writes(engine, table) == [("I", 1, "a"), ("U", 1, "b"), ("D", 1, "b")]


@pytest.mark.parametrize(
    "options",
    [
        {"skip_unchanged": True},
        {"exclude_columns": ["note"]},
        {"capture": ["changed_columns"]},
    ],
)
def test_a_fresh_installation_is_current_and_a_lost_setting_is_drift(
    engine: sa.Engine, options: dict[str, Any]
) -> None:
    table = declare(mode="statement", **options)
    table.metadata.create_all(engine)
    spec = spec_of(table)
    assert changes(engine, spec) == []
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER FUNCTION public_ledger_audit() RESET enable_nestloop"))
    assert changes(engine, spec) == [ReplaceAudit(spec, previous=spec)]


def test_trigger_states_read_through_asyncpg_are_enabled(database_url: sa.URL) -> None:
    """asyncpg returns ``"char"`` columns as bytes (``b'O'``): they must read as enabled."""
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    table = declare()
    sync_engine = sa.create_engine(database_url)
    table.metadata.create_all(sync_engine)
    sync_engine.dispose()

    async def read() -> list[Any]:
        engine = create_async_engine(database_url.set(drivername="postgresql+asyncpg"))
        try:
            async with engine.connect() as connection:
                raw = await connection.exec_driver_sql("SELECT tgenabled FROM pg_trigger LIMIT 1")
                assert isinstance(raw.scalar_one(), bytes)  # what the normalisation is for
                return await connection.run_sync(
                    lambda sync: compare(
                        [spec_of(table)], installed_audits(sync, ["public"]), "public"
                    )
                )
        finally:
            await engine.dispose()

    assert asyncio.run(read()) == []
