"""``check`` watches every object the library installs or governs: the function and triggers,
the append-only guard, the history index, and (once ``grant`` ran) the privileges it set."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from cli_run import run, url_text
from sqlalchemy_postgresql_audit import SPEC_KEY, install_audit_triggers
from sqlalchemy_postgresql_audit.cli.check import table_states
from sqlalchemy_postgresql_audit.install.catalog import installed_audits
from sqlalchemy_postgresql_audit.install.compare import ReplaceAudit, compare
from sqlalchemy_postgresql_audit.install.grants import grant_least_privilege

MODELS = """
import sqlalchemy as sa

metadata = sa.MetaData()
ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("note", sa.Text),
    info={"audit.options": {"enabled": True, "append_only": True, "operations": OPERATIONS}},
)
"""
OPERATIONS = ["INSERT", "UPDATE", "DELETE"]  # TRUNCATE not audited: writers must not hold it


def declare() -> sa.Table:
    namespace: dict[str, Any] = {"OPERATIONS": OPERATIONS}
    exec(MODELS, namespace)  # the very declaration the command line loads
    table: sa.Table = namespace["ledger"]
    return table


def states(engine: sa.Engine, table: sa.Table) -> dict[str, Any]:
    with engine.connect() as connection:
        (state,) = table_states(connection, [(table, table.info[SPEC_KEY])])
    return {
        "status": state.status,
        "details": list(state.details),
        "objects": {(o.kind, o.name): o.state for o in state.objects},
    }


GUARD_TAMPERING = [
    "ALTER TABLE ledger_audit DISABLE TRIGGER audit_append_only",
    "ALTER TABLE ledger_audit DISABLE TRIGGER audit_append_only_truncate",
    "DROP TRIGGER audit_purge_marker ON ledger_audit",
    "DROP FUNCTION ledger_audit_append_only() CASCADE",
    "ALTER FUNCTION ledger_audit_append_only() RESET search_path",
    "CREATE OR REPLACE FUNCTION ledger_audit_append_only() RETURNS trigger LANGUAGE plpgsql"
    " SET search_path TO pg_catalog, pg_temp AS $$BEGIN RETURN OLD; END$$",
    "CREATE OR REPLACE TRIGGER audit_append_only BEFORE UPDATE ON ledger_audit"
    " FOR EACH ROW EXECUTE FUNCTION ledger_audit_append_only()",
]


@pytest.mark.parametrize("tamper", GUARD_TAMPERING)
def test_a_switched_off_or_edited_append_only_guard_is_drift(
    engine: sa.Engine, tamper: str
) -> None:
    table = declare()
    table.metadata.create_all(engine)
    spec = table.info[SPEC_KEY]

    def changes() -> list[Any]:
        with engine.connect() as connection:
            return compare([spec], installed_audits(connection, ["public"]), "public")

    assert changes() == []
    with engine.begin() as connection:
        connection.execute(sa.text(tamper))
    assert changes() == [ReplaceAudit(spec, previous=spec)]
    assert states(engine, table)["status"] in ("disabled", "outdated")
    install_audit_triggers(table.metadata, engine)  # what the replace runs: the guard is back
    assert changes() == []
    assert states(engine, table)["status"] == "ok"


def test_a_missing_or_different_history_index_is_drift(engine: sa.Engine) -> None:
    table = declare()
    table.metadata.create_all(engine)
    index = "ledger_audit_history"
    assert states(engine, table)["objects"][("index", index)] == "ok"
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP INDEX {index}"))
    found = states(engine, table)
    assert (found["status"], found["details"]) == ("outdated", [f"index {index} missing"])
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE INDEX {index} ON ledger_audit (audit_id)"))
    found = states(engine, table)
    assert found["details"] == [f"index {index} differs: (audit_id)"]


def test_privileges_are_watched_once_the_grant_step_ran(
    engine: sa.Engine, make_role: Callable[[str], str]
) -> None:
    writer, reader = make_role("Watched Writer"), make_role("watched_reader")
    table = declare()
    table.metadata.create_all(engine)
    assert not [key for key in states(engine, table)["objects"] if key[0] == "privileges"]
    grant_least_privilege(engine, table.metadata, writers=[writer], readers=[reader])
    found = states(engine, table)
    assert found["status"] == "ok"
    assert found["objects"][("privileges", f"privileges of {writer}")] == "ok"
    assert found["objects"][("privileges", f"privileges of {reader}")] == "ok"
    quoted = engine.dialect.identifier_preparer.quote
    with engine.begin() as connection:
        for sql in (
            f"GRANT INSERT ON ledger_audit TO {quoted(writer)}",
            "GRANT TRUNCATE ON ledger TO PUBLIC",  # TRUNCATE is not audited here
            f"REVOKE SELECT ON ledger_audit FROM {quoted(reader)}",
        ):
            connection.execute(sa.text(sql))
    found = states(engine, table)
    assert found["status"] == "outdated"
    assert found["details"] == [
        f"{writer} holds TRUNCATE on table ledger",
        f"{writer} holds INSERT on audit table ledger_audit",
        f"{reader} lacks SELECT on audit table ledger_audit",
    ]
    grant_least_privilege(engine, table.metadata, writers=[writer], readers=[reader])
    assert states(engine, table)["status"] == "ok"


def test_check_json_lists_every_watched_object_with_its_state(
    tmp_path: Path, database_url: URL, engine: sa.Engine
) -> None:
    (tmp_path / "watched_models.py").write_text(f"OPERATIONS = {OPERATIONS!r}\n{MODELS}")
    table = declare()
    table.metadata.create_all(engine)

    def check() -> tuple[int, dict[str, Any]]:
        result = run(
            "check",
            "watched_models:metadata",
            "--url",
            url_text(database_url),
            "--json",
            path=tmp_path,
        )
        (state,) = json.loads(result.stdout)["tables"]
        return result.returncode, state

    code, state = check()
    assert code == 0
    assert [(o["kind"], o["name"], o["state"]) for o in state["objects"]] == [
        ("function", "public.public_ledger_audit", "ok"),
        ("trigger", "public_ledger_audit_delete", "ok"),
        ("trigger", "public_ledger_audit_insert", "ok"),
        ("trigger", "public_ledger_audit_update", "ok"),
        ("trigger", "public_ledger_audit_update_key", "ok"),
        ("guard function", "public.ledger_audit_append_only", "ok"),
        ("guard trigger", "audit_append_only", "ok"),
        ("guard trigger", "audit_append_only_truncate", "ok"),
        ("guard trigger", "audit_purge_marker", "ok"),
        ("index", "ledger_audit_history", "ok"),
        ("owner", "owner of ledger_audit", "ok"),
        ("audit table", "ledger_audit", "ok"),
        ("columns", "columns of ledger", "ok"),
    ]
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE ledger_audit DISABLE TRIGGER audit_append_only"))
    code, state = check()
    assert (code, state["status"]) == (1, "disabled")
    disabled = [o for o in state["objects"] if o["state"] != "ok"]
    assert disabled == [
        {
            "kind": "guard trigger",
            "name": "audit_append_only",
            "state": "disabled",
            "reasons": ["guard trigger audit_append_only disabled"],
        }
    ]


def test_an_uninstalled_table_lists_what_installing_it_would_put_in_place(
    engine: sa.Engine,
) -> None:
    table = declare()
    table.create(engine)  # the table alone: nothing installed
    table.info["audit.table"].create(engine)
    found = states(engine, table)
    assert found["status"] == "missing"
    assert found["objects"] == {
        ("function", "public.public_ledger_audit"): "missing",
        ("trigger", "public_ledger_audit_delete"): "missing",
        ("trigger", "public_ledger_audit_insert"): "missing",
        ("trigger", "public_ledger_audit_update"): "missing",
        ("trigger", "public_ledger_audit_update_key"): "missing",
        ("guard function", "public.ledger_audit_append_only"): "missing",
        ("guard trigger", "audit_append_only"): "missing",
        ("guard trigger", "audit_append_only_truncate"): "missing",
        ("guard trigger", "audit_purge_marker"): "missing",
        ("index", "ledger_audit_history"): "ok",
        ("audit table", "ledger_audit"): "ok",
        ("columns", "columns of ledger"): "ok",
    }
