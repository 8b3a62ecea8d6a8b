"""``downgrade base`` then ``upgrade head``: the kept trail holds two lives of the table.

The downgrade keeps the audit table and drops the table; the upgrade creates a new table whose
rows reuse the old keys.  The upgrade marks where the trail restarts (an ``R`` row), and the
history API never compares a row of the new table with one of the dropped table.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from alembic_env import make_project
from sqlalchemy_postgresql_audit import as_of, changes, history, set_session_vars
from test_alembic_evolution import USERNAME, orders


@pytest.fixture(autouse=True)
def _quiet_alembic_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")


def operations(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT audit_operation, id, code FROM orders_audit ORDER BY audit_id")
        )
        return [tuple(row) for row in rows]


def test_a_dropped_tables_trail_is_never_diffed_against_the_new_table(
    tmp_path: Path, engine: sa.Engine
) -> None:
    project = make_project(tmp_path, engine.url)
    metadata = orders(settings=(USERNAME,))
    table = metadata.tables["orders"]
    project.revision(metadata, "audited orders")
    project.upgrade(metadata)
    with engine.begin() as connection:
        set_session_vars(connection, username="old")
        connection.execute(table.insert(), [{"id": 1, "code": "old-1"}, {"id": 2, "code": "old-2"}])

    for _ in range(2):  # the second time, nothing was written since the marker: no second one
        project.downgrade(metadata, "base")  # drops orders, keeps orders_audit
        project.upgrade(metadata)
    with engine.begin() as connection:
        set_session_vars(connection, username="new")
        connection.execute(table.insert().values(id=1, code="new-1"))
        now = connection.execute(sa.select(sa.func.now())).scalar_one()

    assert operations(engine) == [
        ("I", 1, "old-1"),
        ("I", 2, "old-2"),
        ("R", None, None),
        ("I", 1, "new-1"),
    ]
    with engine.connect() as connection:
        diff = connection.execute(changes(table, 1)).all()
        # The new row 1 is an insert with nothing before it, not an update of the old row 1.
        inserted = [(r.column, r.before, r.after) for r in diff if r.audit_operation == "I"]
        assert inserted[-2:] == [("id", None, 1), ("code", None, "new-1")]
        assert [r.audit_operation for r in connection.execute(history(table, 1))] == [
            "I",
            "R",
            "I",
        ]
        later = now + datetime.timedelta(seconds=1)
        # The dropped table's row 2 is not part of the new table.
        assert connection.execute(as_of(table, later)).all() == [(1, "new-1")]


def test_a_restart_with_the_table_kept_records_a_fresh_baseline(
    tmp_path: Path, engine: sa.Engine
) -> None:
    """Auditing turned off and on again, the table kept: rows may have changed unaudited in
    between, so the restarted trail begins with a baseline of every row."""
    project = make_project(tmp_path, engine.url)
    plain = orders(enabled=False)
    project.revision(plain, "plain table")
    project.upgrade(plain)
    audited = orders(settings=(USERNAME,))
    project.revision(audited, "audit it")
    project.upgrade(audited)
    table = audited.tables["orders"]
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, code="a"))
    project.downgrade(plain)
    with engine.begin() as connection:  # unaudited while auditing is off
        connection.execute(table.update().values(code="changed unaudited"))
    project.upgrade(audited)
    assert operations(engine) == [
        ("I", 1, "a"),
        ("R", None, None),
        ("B", 1, "changed unaudited"),
    ]
    with engine.connect() as connection:
        now = connection.execute(sa.select(sa.func.now())).scalar_one()
        state = connection.execute(as_of(table, now + datetime.timedelta(seconds=1))).all()
        assert state == [(1, "changed unaudited")]


def test_the_marker_quotes_every_name_and_runs_through_text(engine: sa.Engine) -> None:
    from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, SPEC_KEY, uninstall_audit_triggers
    from sqlalchemy_postgresql_audit.render.restart import render_restart_marker

    metadata = sa.MetaData()
    table = sa.Table(
        'odd "name":x',
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={
            "audit.options": {"enabled": True, "session_settings": [sa.Column("who", sa.String)]}
        },
    )
    metadata.create_all(engine)
    audit = table.info[AUDIT_TABLE_KEY]
    marker = sa.text(render_restart_marker(table.info[SPEC_KEY]))
    with engine.begin() as connection:
        connection.execute(marker)  # an empty trail: nothing to mark
        connection.execute(table.insert().values(id=1))
        connection.execute(marker)  # the triggers are installed: auditing did not stop
        uninstall_audit_triggers(metadata, connection)
        connection.execute(sa.text("SELECT set_config('audit.who', 'ops', true)"))
        connection.execute(marker)
        connection.execute(marker)  # the newest row is a marker already
        rows = connection.execute(
            sa.select(audit.c.audit_operation, audit.c.audit_who, audit.c.id).order_by(
                audit.c.audit_id
            )
        ).all()
    assert [tuple(row) for row in rows] == [("I", None, 1), ("R", "ops", None)]
