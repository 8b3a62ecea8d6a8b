"""Auditing turned on for a table that already holds rows: the migration records a baseline."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from alembic_env import make_project
from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, changes, set_session_vars
from test_alembic_evolution import USERNAME, orders


def audit_rows(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT audit_operation, audit_username, id, code FROM orders_audit "
                "ORDER BY audit_id"
            )
        ).all()
    return [tuple(row) for row in rows]


@pytest.fixture(autouse=True)
def _quiet_alembic_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")


def test_enabling_auditing_on_a_table_with_rows_records_its_baseline(
    tmp_path: Path, engine: sa.Engine
) -> None:
    project = make_project(tmp_path, engine.url)
    plain = orders(enabled=False)
    project.revision(plain, "plain table")
    project.upgrade(plain)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO orders (id, code) VALUES (1, 'a'), (2, 'b')"))

    audited = orders(settings=(USERNAME,))
    text = project.revision(audited, "audit it")
    upgrade = text.split("def downgrade")[0]
    assert upgrade.index("op.create_audit_trigger(") < upgrade.index("op.record_audit_baseline(")
    assert "# audit orders: the table may already hold rows" in upgrade
    assert "its baseline versions are history and are kept" in text.split("def downgrade")[1]
    assert "INSERT INTO" in project.offline_sql(audited, "head")  # frozen: no reflection needed

    project.upgrade(audited)
    assert audit_rows(engine) == [("B", None, 1, "a"), ("B", None, 2, "b")]
    project.check(audited)

    table = audited.tables["orders"]
    with engine.begin() as connection:
        set_session_vars(connection, username="ann")
        connection.execute(table.update().where(table.c.id == 1).values(code="c"))
        diff = connection.execute(changes(table, 1)).all()
    # The update's "before" is the baseline, not nothing.
    assert [(row.column, row.before, row.after) for row in diff if row.audit_operation == "U"] == [
        ("code", "a", "c")
    ]

    project.downgrade(plain)  # the triggers go, the history (baseline included) stays
    assert [row[0] for row in audit_rows(engine)] == ["B", "B", "U"]
    project.upgrade(audited)  # the trail restarts (R), and its baseline is the rows as they are
    assert [row[0] for row in audit_rows(engine)] == ["B", "B", "U", "R", "B", "B"]
    assert table.info[AUDIT_TABLE_KEY].name == "orders_audit"


def test_a_table_created_in_the_same_migration_gets_no_baseline(
    tmp_path: Path, engine: sa.Engine
) -> None:
    project = make_project(tmp_path, engine.url)
    text = project.revision(orders(), "new audited table")
    assert "op.create_audit_trigger(" in text
    assert "record_audit_baseline" not in text
