"""Converting an audited table's existing audit table to a partitioned one keeps every row where
it is (the old table becomes the first partition, attached without a scan), loses no write made
during the conversion, and reverses keeping every row."""

from __future__ import annotations

import datetime
import logging
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from alembic_env import make_project
from cli_run import run, url_text
from sqlalchemy_postgresql_audit import (
    AUDIT_TABLE_KEY,
    SPEC_KEY,
    MaintenanceError,
    history,
    maintain,
)
from sqlalchemy_postgresql_audit.errors import AuditError
from sqlalchemy_postgresql_audit.lifecycle.conversion import (
    finish,
    partition_audit_table,
    prepare,
    unpartition,
    validate,
)


def accounts(**options: Any) -> sa.Table:
    return sa.Table(
        "accounts",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": "row", **options}},
    )


def kind(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        return str(
            connection.execute(
                sa.text("SELECT relkind FROM pg_class WHERE oid = 'accounts_audit'::regclass")
            ).scalar_one()
        )


def trail(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT audit_id, audit_operation, id, balance FROM accounts_audit ORDER BY 1")
        )
        return [tuple(row) for row in rows]


def existing_history(engine: sa.Engine, **options: Any) -> sa.Table:
    """An unpartitioned audit table with some history, and the same table declared partitioned."""
    before = accounts(**options)
    before.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(before.insert(), [{"id": n, "balance": n} for n in range(1, 201)])
        connection.execute(before.update().where(before.c.id == 1).values(balance=0))
    return accounts(partition="week", **options)


def test_conversion_attaches_the_old_table_without_a_scan_and_keeps_history(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    table = existing_history(engine, append_only=True)
    old = trail(engine)
    with engine.begin() as connection:
        spec = table.info[SPEC_KEY]
        until = prepare(connection, spec, "week")
    with engine.begin() as connection:
        validate(connection, spec)
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL client_min_messages = debug1"))
        # The psycopg2 dialect logs the server's messages at INFO.
        with caplog.at_level(logging.INFO, logger="sqlalchemy.dialects.postgresql"):
            converted = finish(connection, spec, until)
    assert f'partition constraint for table "{converted.partition}" is implied' in caplog.text
    assert kind(engine) == "p"
    assert trail(engine) == old  # every row, same ids, now in the first partition
    with engine.begin() as connection:
        connection.execute(table.update().where(table.c.id == 1).values(balance=5))
        versions = connection.execute(history(table, 1)).all()
    assert [v.audit_operation for v in versions] == ["I", "U", "U"]
    assert versions[-1].audit_id > versions[-2].audit_id  # the identity goes on
    (done,) = maintain(engine, table)
    assert done.drained == 0  # the first partition holds the present: nothing in DEFAULT
    with pytest.raises(sa.exc.ProgrammingError, match="append-only"), engine.begin() as c:
        c.execute(sa.text(f"DELETE FROM {converted.partition}"))
    with pytest.raises(AuditError, match="partitioned already"):
        partition_audit_table(engine, table)


def test_writers_lose_nothing_while_the_table_is_converted_and_back(engine: sa.Engine) -> None:
    table = existing_history(engine)
    written = 0
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        nonlocal written
        try:
            while not stop.is_set():
                with engine.begin() as connection:
                    connection.execute(
                        table.update().where(table.c.id == 2).values(balance=written)
                    )
                written += 1
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        converted = partition_audit_table(engine, table)
        with engine.begin() as connection:
            while written < 20 and not errors:
                connection.execute(sa.text("SELECT pg_sleep(0.01)"))
    finally:
        stop.set()
        writer.join()
    assert not errors
    assert kind(engine) == "p"
    rows = trail(engine)
    assert len(rows) == 201 + written
    assert [r[3] for r in rows if r[2] == 2 and r[1] == "U"] == list(range(written))
    with engine.begin() as connection:
        assert unpartition(connection, table.info[SPEC_KEY]) == converted.partition
    assert kind(engine) == "r"
    assert trail(engine) == rows  # the downgrade keeps every row too
    with engine.begin() as connection:
        connection.execute(table.update().where(table.c.id == 2).values(balance=-1))
    assert trail(engine)[-1][0] > rows[-1][0]
    audit = table.info[AUDIT_TABLE_KEY]
    assert audit.name == "accounts_audit"


def test_alembic_converts_an_audit_table_holding_history_and_downgrades_keeping_rows(
    engine: sa.Engine, tmp_path: Any
) -> None:
    before = accounts()
    project = make_project(tmp_path, engine.url)
    project.revision(before.metadata, "accounts")
    project.upgrade(before.metadata)
    with engine.begin() as connection:
        connection.execute(before.insert(), [{"id": n, "balance": n} for n in range(1, 51)])
    table = accounts(partition="week")
    migration = project.revision(table.metadata, "partition")
    assert "op.partition_audit_table(" in migration and "interval='week'" in migration
    assert "op.unpartition_audit_table(" in migration
    project.upgrade(table.metadata)
    assert kind(engine) == "p"
    project.check(table.metadata)  # nothing left to do
    with engine.begin() as connection:
        connection.execute(table.update().where(table.c.id == 1).values(balance=7))
    rows = trail(engine)
    assert len(rows) == 51
    project.downgrade(table.metadata)
    assert kind(engine) == "r"
    assert trail(engine) == rows
    with engine.connect() as connection:
        versions = connection.execute(history(before, 1)).all()
    assert [v.audit_operation for v in versions] == ["I", "U"]


MODELS = """
import sqlalchemy as sa

metadata = sa.MetaData()
accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("balance", sa.Integer),
    info={"audit.options": {"enabled": True, "mode": "row", "partition": "day"}},
)
"""


def test_a_conversion_stopped_after_its_first_step_is_reported_and_then_undone(
    engine: sa.Engine, database_url: Any, tmp_path: Any
) -> None:
    """Step 1's check bounds new rows by a moment that passes: left by a crash, it would refuse
    every write from then on.  ``check`` names it, ``maintain`` removes it and says how to
    finish, and running the conversion again finishes it."""
    existing_history(engine)
    table = accounts(partition="day")
    days_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=5)
    with engine.begin() as connection:  # step 1, five days ago; then the process died
        prepare(connection, table.info[SPEC_KEY], "day", days_ago)
    bomb = pytest.raises(sa.exc.IntegrityError, match="accounts_audit_converted")
    with bomb, engine.begin() as connection:  # the time bomb: writes fail
        connection.execute(table.update().where(table.c.id == 1).values(balance=2))
    (tmp_path / "convmodels.py").write_text(MODELS)
    checked = run("check", "convmodels:metadata", "--url", url_text(database_url), path=tmp_path)
    assert checked.returncode == 1
    assert "accounts_audit_converted" in checked.stdout
    assert "partition_audit_table" in checked.stdout
    with pytest.raises(MaintenanceError, match=r"accounts_audit_converted.*partition_audit_table"):
        maintain(engine, table)
    with engine.begin() as connection:  # writes go on: the leftover constraint is gone
        connection.execute(table.update().where(table.c.id == 1).values(balance=3))
    rows = trail(engine)
    assert len(rows) == 202
    partition_audit_table(engine, table)  # finishes
    assert kind(engine) == "p"
    assert trail(engine) == rows


def converted_check_left(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        found = connection.execute(
            sa.text("SELECT count(*) FROM pg_constraint WHERE conname = 'accounts_audit_converted'")
        )
        return bool(found.scalar_one())


def test_an_at_whose_first_bound_has_passed_is_refused_before_step_one(
    engine: sa.Engine,
) -> None:
    table = existing_history(engine)
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    with pytest.raises(AuditError, match=r"at=.*present has passed"):
        partition_audit_table(engine, table, at=past)
    assert not converted_check_left(engine) and kind(engine) == "r"
    with engine.begin() as connection:  # writes go on
        connection.execute(table.update().where(table.c.id == 1).values(balance=5))


def test_a_failed_validation_removes_the_check_of_step_one(engine: sa.Engine) -> None:
    """A row recorded after the first partition's bound (a clock ahead, a restored trail):
    step 2 fails, and step 1's check, committed, is dropped again rather than left to refuse
    every write once its bound passes."""
    table = existing_history(engine)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=40)
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE accounts_audit SET audit_operation_timestamp = :t WHERE id = 2"),
            {"t": later},
        )
    with pytest.raises(AuditError, match=r"rows recorded at or after.*removed again"):
        partition_audit_table(engine, table)
    assert not converted_check_left(engine) and kind(engine) == "r"
