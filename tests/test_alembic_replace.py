"""Replacing auditing in a real Alembic project: partitions, renamed functions, kept history."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from alembic_env import AlembicProject, make_project
from sqlalchemy_postgresql_audit import AuditConfigurationError
from sqlalchemy_postgresql_audit.render import COMMENT_MARKER
from test_alembic_evolution import CODE_TOTAL, TEXT_ONLY, assert_audited, orders

PARTITIONS = "include_name=lambda n, t, p: not (t == 'table' and n.startswith('events_p'))"


def events(mode: str | None = None) -> sa.MetaData:
    """``events`` partitioned by region; its partitions are made by hand, outside the models."""
    metadata = sa.MetaData()
    sa.Table(
        "events",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("region", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("code", sa.Text),
        postgresql_partition_by="LIST (region)",
        info={"audit.options": {"enabled": True, **({"mode": mode} if mode else {})}},
    )
    return metadata


def partitioned_project(tmp_path: Path, engine: sa.Engine) -> AlembicProject:
    """``events`` installed in row mode (the default), with partitions events_p1 and events_p2."""
    project = make_project(tmp_path, engine.url)
    project.edit_env("include_schemas=True", f"include_schemas=True, {PARTITIONS}")
    project.revision(events(), "partitioned")
    project.upgrade(events())
    with engine.begin() as connection:
        for region in (1, 2):
            connection.execute(
                sa.text(
                    f"CREATE TABLE events_p{region} PARTITION OF events FOR VALUES IN ({region})"
                )
            )
    return project


def recorded_writes(engine: sa.Engine, row_id: int) -> dict[str, list[str]]:
    """Write through the parent (region 1) and to partition events_p2 directly; return what
    the audit table recorded for each."""
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO events (id, region, code) VALUES (:id, 1, 'a')"), {"id": row_id}
        )
        connection.execute(sa.text("UPDATE events SET code = 'b' WHERE id = :id"), {"id": row_id})
        connection.execute(
            sa.text("INSERT INTO events_p2 (id, region, code) VALUES (:id, 2, 'a')"),
            {"id": row_id + 1},
        )
        connection.execute(
            sa.text("UPDATE events_p2 SET code = 'b' WHERE id = :id"), {"id": row_id + 1}
        )
        rows = connection.execute(
            sa.text(
                "SELECT id, audit_operation FROM events_audit WHERE id IN (:a, :b) "
                "ORDER BY audit_id"
            ),
            {"a": row_id, "b": row_id + 1},
        ).all()
    return {
        "parent": [op for id_, op in rows if id_ == row_id],
        "partition": [op for id_, op in rows if id_ == row_id + 1],
    }


def partition_triggers(engine: sa.Engine) -> list[tuple[str, str, bool]]:
    """(partition, trigger, row level) of every user trigger on the partitions."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT c.relname, t.tgname, (t.tgtype & 1) = 1 AS row_level "
                "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE NOT t.tgisinternal AND c.relname LIKE 'events_p%' ORDER BY 1, 2"
            )
        ).all()
    return [(row.relname, row.tgname, row.row_level) for row in rows]


def test_asking_for_statement_mode_on_a_partitioned_table_fails_before_any_migration(
    tmp_path: Path, engine: sa.Engine
) -> None:
    """Statement triggers on the parent would miss writes addressed to a partition, so the
    model is refused when autogenerate declares it, and the row-mode auditing stays."""
    project = partitioned_project(tmp_path, engine)
    with pytest.raises(AuditConfigurationError, match=r"'events'.*'mode'.*partition"):
        project.revision(events("statement"), "statement mode")
    assert not list((tmp_path / "migrations" / "versions").glob("*statement_mode*"))
    assert recorded_writes(engine, 200) == {"parent": ["I", "U"], "partition": ["I", "U"]}
    assert {row_level for _, _, row_level in partition_triggers(engine)} == {True}


def test_disabled_partition_clone_is_drift(tmp_path: Path, engine: sa.Engine) -> None:
    """A row trigger's clone disabled on one partition is drift, reinstalled by autogenerate."""
    project = partitioned_project(tmp_path, engine)
    with engine.begin() as connection:
        connection.execute(
            sa.text("ALTER TABLE events_p2 DISABLE TRIGGER public_events_audit_insert")
        )
    text = project.revision(events(), "re-enable the clone")
    assert "op.replace_audit_trigger(" in text
    project.upgrade(events())
    assert recorded_writes(engine, 400) == {"parent": ["I", "U"], "partition": ["I", "U"]}
    project.check(events())


def audit_functions(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.text(
                    "SELECT p.proname FROM pg_proc p JOIN pg_description d ON d.objoid = p.oid "
                    "WHERE starts_with(d.description, :marker) ORDER BY 1"
                ),
                {"marker": COMMENT_MARKER},
            ).scalars()
        )


def named(function_convention: str | None) -> sa.MetaData:
    convention = {"audit.function": function_convention} if function_convention else {}
    metadata = sa.MetaData(naming_convention=convention)
    sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("code", sa.Text),
        info={"audit.options": {"enabled": True}},
    )
    return metadata


def test_a_renamed_function_leaves_no_old_function_behind(
    tmp_path: Path, engine: sa.Engine
) -> None:
    project = make_project(tmp_path, engine.url)
    project.revision(named(None), "first")
    project.upgrade(named(None))
    assert audit_functions(engine) == ["public_orders_audit"]

    renamed = named("%(table_name)s_history")
    text = project.revision(renamed, "rename the function")
    assert "# audit orders: function 'public_orders_audit' -> 'orders_history'" in text
    project.upgrade(renamed)
    assert audit_functions(engine) == ["orders_history"]
    assert_audited(engine, renamed)
    project.check(renamed)

    project.downgrade(named(None))
    assert audit_functions(engine) == ["public_orders_audit"]
    assert_audited(engine, named(None))


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def _discard(project: AlembicProject, text: str) -> None:
    """Delete the last (empty) revision, written only to read its log."""
    upgrade = text.split("def upgrade", 1)[1].split("def downgrade", 1)[0]
    assert "op." not in upgrade, text
    for path in (project.folder / "migrations" / "versions").glob("*nothing*.py"):
        path.unlink()


def test_kept_audit_history_is_neither_dropped_nor_reported(
    tmp_path: Path, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    project = make_project(tmp_path, engine.url)
    project.revision(orders(columns=CODE_TOTAL), "first")
    project.upgrade(orders(columns=CODE_TOTAL))

    caplog.clear()
    dropped = orders(columns=TEXT_ONLY)
    text = project.revision(dropped, "drop total")
    assert "op.drop_column('orders', 'total')" in text
    assert "drop_column('orders_audit'" not in text
    kept = [m for m in _messages(caplog) if "Keeping column 'total'" in m]
    assert kept == [
        "Keeping column 'total' of audit table 'orders_audit': no longer filled, its history "
        "is kept (write op.drop_column('orders_audit', 'total') by hand to drop it)"
    ]
    assert not [m for m in _messages(caplog) if "orders_audit.total" in m]
    project.upgrade(dropped)
    project.check(dropped)

    caplog.clear()
    _discard(project, project.revision(dropped, "nothing"))
    assert not [m for m in _messages(caplog) if "total" in m], _messages(caplog)

    disabled = orders(columns=TEXT_ONLY, enabled=False)
    caplog.clear()
    text = project.revision(disabled, "disable")
    assert "op.drop_audit_trigger(" in text
    assert "drop_table" not in text
    assert not [m for m in _messages(caplog) if "orders_audit" in m], _messages(caplog)
    project.upgrade(disabled)
    project.check(disabled)
    caplog.clear()
    _discard(project, project.revision(disabled, "nothing"))
    assert not [m for m in _messages(caplog) if "orders_audit" in m], _messages(caplog)


def _hand_written(project: AlembicProject, metadata: sa.MetaData, upgrade: str) -> None:
    script = command.revision(project.config(metadata), message="by hand")
    assert script is not None and not isinstance(script, list)
    path = Path(script.path)
    path.write_text(path.read_text().replace("    pass\n", f"    {upgrade}\n", 1))


def test_dropping_a_kept_audit_column_is_a_hand_written_choice(
    tmp_path: Path, engine: sa.Engine
) -> None:
    project = make_project(tmp_path, engine.url)
    project.revision(orders(columns=CODE_TOTAL), "first")
    project.upgrade(orders(columns=CODE_TOTAL))
    dropped = orders(columns=TEXT_ONLY)
    project.revision(dropped, "drop total")
    project.upgrade(dropped)
    _hand_written(project, dropped, "op.drop_column('orders_audit', 'total')")
    project.upgrade(dropped)
    with engine.connect() as connection:
        columns: Any = sa.inspect(connection).get_columns("orders_audit")
    assert "total" not in {c["name"] for c in columns}
    assert_audited(engine, dropped)
    project.check(dropped)
