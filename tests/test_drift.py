"""Drift between declared and installed auditing, read from a real catalog."""

from __future__ import annotations

import enum
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import SPEC_KEY, AuditSpec, install_audit_triggers
from sqlalchemy_postgresql_audit.catalog import installed_audits
from sqlalchemy_postgresql_audit.compare import DropAudit, ReplaceAudit, compare
from sqlalchemy_postgresql_audit.render import resolved
from sqlalchemy_postgresql_audit.session import setting_value


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
    assert changes(engine, spec) == [ReplaceAudit(spec, previous=resolved(spec))]
    install_audit_triggers(table.metadata, engine)
    assert changes(engine, spec) == []


def test_partition_clones_of_row_triggers_are_not_drift(engine: sa.Engine) -> None:
    table = declare(_partitioned=True)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.text("CREATE TABLE ledger_all PARTITION OF ledger FOR VALUES FROM (0) TO (1000)")
        )
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
    install_audit_triggers(renamed.metadata, engine)  # same trigger names, new function
    assert changes(engine, spec_of(renamed)) == [
        DropAudit(replace(resolved(spec_of(old)), triggers=()))
    ]


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
