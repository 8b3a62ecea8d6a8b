"""Installing and removing functions and triggers: create_all, drop_all and the helpers."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import (
    AUDIT_TABLE_KEY,
    AuditConfigurationError,
    install_audit_triggers,
    uninstall_audit_triggers,
)

TRIGGERS = sa.text(
    "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
    "WHERE NOT t.tgisinternal AND c.relname = :table ORDER BY 1"
)
FUNCTIONS = sa.text(
    "SELECT n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
    "WHERE p.proname LIKE '%audit%' ORDER BY 1"
)


def declare() -> sa.Table:
    return sa.Table(
        "ledger",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("note", sa.Text),
        info={"audit.options": {"enabled": True}},
    )


def state(engine: sa.Engine) -> tuple[list[str], list[str]]:
    with engine.connect() as connection:
        triggers = list(connection.execute(TRIGGERS, {"table": "ledger"}).scalars())
        functions = list(connection.execute(FUNCTIONS).scalars())
    return triggers, functions


def audited_rows(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count()).select_from(table.info[AUDIT_TABLE_KEY])
            ).scalar_one()
        )


def write(engine: sa.Engine, table: sa.Table, row_id: int) -> None:
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=row_id))


def test_create_all_installs_and_drop_all_removes(engine: sa.Engine) -> None:
    table = declare()
    table.metadata.create_all(engine)
    assert state(engine) == (
        [
            "public_ledger_audit_delete",
            "public_ledger_audit_insert",
            "public_ledger_audit_truncate",
            "public_ledger_audit_update",
            "public_ledger_audit_update_key",
        ],
        ["public.public_ledger_audit"],
    )
    write(engine, table, 1)
    assert audited_rows(engine, table) == 1
    table.metadata.create_all(engine)  # checkfirst: nothing to do, nothing breaks
    table.metadata.drop_all(engine)
    assert state(engine) == ([], [])
    assert not sa.inspect(engine).get_table_names()


def test_install_and_uninstall_are_idempotent(engine: sa.Engine) -> None:
    table = declare()
    table.metadata.create_all(engine)
    uninstall_audit_triggers(table.metadata, engine)
    uninstall_audit_triggers(table.metadata, engine)
    assert state(engine) == ([], [])
    with pytest.raises(AuditConfigurationError, match="'ledger'"):
        write(engine, table, 1)
    write(engine.execution_options(audit_runtime_check=False), table, 1)
    assert audited_rows(engine, table) == 0  # the audit table is kept, nothing is written
    install_audit_triggers(table.metadata, engine)
    install_audit_triggers(table.metadata, engine)
    write(engine, table, 2)
    assert audited_rows(engine, table) == 1
    assert len(state(engine)[0]) == 5  # and the key trigger


def test_install_runs_inside_the_callers_transaction(engine: sa.Engine) -> None:
    table = declare()
    table.metadata.create_all(engine)
    uninstall_audit_triggers(table.metadata, engine)
    with engine.connect() as connection:
        transaction = connection.begin()
        install_audit_triggers(table.metadata, connection)
        transaction.rollback()
    assert state(engine) == ([], [])


def test_without_a_bind_the_helpers_return_the_script(engine: sa.Engine) -> None:
    table = declare()
    script = install_audit_triggers(table.metadata)
    drop_script = uninstall_audit_triggers(table.metadata)
    assert isinstance(script, str) and isinstance(drop_script, str)
    # Four and the key trigger; the partitions' and children's in a DO block
    assert script.count("\nCREATE OR REPLACE TRIGGER") == 5
    assert drop_script.count("DROP TRIGGER IF EXISTS") == 5
    # The script is the real thing: run it through a raw DBAPI cursor, as psql would.
    table.metadata.create_all(engine)
    uninstall_audit_triggers(table.metadata, engine)
    raw: Any = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.execute(script)
        raw.commit()
    finally:
        raw.close()
    write(engine, table, 1)
    assert audited_rows(engine, table) == 1


def test_create_all_of_a_subset_installs_for_tables_it_created(engine: sa.Engine) -> None:
    table = declare()
    audit_table = table.info[AUDIT_TABLE_KEY]
    audit_table.create(engine)
    table.metadata.create_all(engine, tables=[table])
    write(engine, table, 1)
    assert audited_rows(engine, table) == 1


def test_a_write_without_its_audit_table_fails_rather_than_going_unaudited(
    engine: sa.Engine,
) -> None:
    table = declare()
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE ledger_audit"))
    with pytest.raises(sa.exc.ProgrammingError, match="ledger_audit"):
        write(engine, table, 1)
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0


def test_dropping_only_the_audit_table_keeps_triggers_so_writes_fail(engine: sa.Engine) -> None:
    table = declare()
    table.metadata.create_all(engine)
    table.metadata.drop_all(engine, tables=[table.info[AUDIT_TABLE_KEY]])
    assert len(state(engine)[0]) == 5  # and the key trigger
    with pytest.raises(sa.exc.ProgrammingError, match="ledger_audit"):
        write(engine, table, 1)


def test_a_source_column_name_longer_than_postgresql_keeps_is_audited(engine: sa.Engine) -> None:
    """PostgreSQL cuts identifiers to 63 bytes; the install check compares names as stored."""
    long_name = "c" * 70
    table = sa.Table(
        "ledger",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(long_name, sa.Text),
        info={"audit.options": {"enabled": True}},
    )
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values({"id": 1, long_name: "kept"}))
        recorded = connection.execute(sa.text(f'SELECT "{"c" * 63}" FROM ledger_audit')).scalar()
    assert recorded == "kept"
