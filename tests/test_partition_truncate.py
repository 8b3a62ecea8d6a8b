"""A TRUNCATE addressed to one partition (or inheritance child) is recorded, and ``check``
reports a partition whose TRUNCATE trigger is missing or left behind (template 2)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from alembic_env import make_project
from sqlalchemy_postgresql_audit import (
    AUDIT_TABLE_KEY,
    SPEC_KEY,
    AuditSpec,
    install_audit_triggers,
    uninstall_audit_triggers,
)
from sqlalchemy_postgresql_audit.alembic.ops import ReplaceAuditTriggerOp
from sqlalchemy_postgresql_audit.cli.check import table_states

TRUNCATE_MODES = [{}, {"truncate_rows": True}]


def events(**options: Any) -> sa.Table:
    """``events``, partitioned by region; partitions are made by hand, outside the models."""
    return sa.Table(
        "events",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("region", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("code", sa.Text),
        postgresql_partition_by="LIST (region)",
        info={"audit.options": {"enabled": True, **options}},
    )


def run(engine: sa.Engine, *statements: str) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement))


def partition(region: int) -> str:
    return f"CREATE TABLE events_p{region} PARTITION OF events FOR VALUES IN ({region})"


def fill(engine: sa.Engine, *regions: int) -> None:
    """Two rows per region: ids 10 * region + 1 and + 2."""
    with engine.begin() as connection:
        for region in regions:
            connection.execute(
                sa.text("INSERT INTO events VALUES (:a, :r, 'x'), (:b, :r, 'y')"),
                {"a": 10 * region + 1, "b": 10 * region + 2, "r": region},
            )


def truncated(engine: sa.Engine, table: sa.Table) -> list[tuple[int | None, str | None]]:
    """The ``T`` rows recorded, as (id, writer), in order."""
    audit = table.info[AUDIT_TABLE_KEY]
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(audit.c.id, audit.c.audit_current_user)
            .where(audit.c.audit_operation == "T")
            .order_by(audit.c.audit_id)
        )
        return [(row.id, row.audit_current_user) for row in rows]


def truncate_as(engine: sa.Engine, role: str, target: str) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text(f'SET LOCAL ROLE "{role}"'))
        connection.execute(sa.text(f"TRUNCATE {target}"))


def check(engine: sa.Engine, table: sa.Table) -> tuple[str, tuple[str, ...]]:
    spec = table.info[SPEC_KEY]
    assert isinstance(spec, AuditSpec)
    with engine.connect() as connection:
        (state,) = table_states(connection, [(table, spec)])
    return state.status, state.details


@pytest.fixture
def installed(engine: sa.Engine) -> Callable[..., sa.Table]:
    """``events`` with partitions 1 and 2 (2 sub-partitioned by id), audited, two rows each."""

    def make(**options: Any) -> sa.Table:
        table = events(**options)
        table.metadata.create_all(engine)
        run(
            engine,
            partition(1),
            "CREATE TABLE events_p2 PARTITION OF events FOR VALUES IN (2) PARTITION BY RANGE (id)",
            "CREATE TABLE events_p2_low PARTITION OF events_p2 FOR VALUES FROM (0) TO (100)",
        )
        install_audit_triggers(table.metadata, engine)
        fill(engine, 1, 2)
        return table

    return make


@pytest.mark.parametrize("options", TRUNCATE_MODES)
def test_a_truncate_of_one_partition_records_its_rows(
    engine: sa.Engine,
    installed: Callable[..., sa.Table],
    make_role: Callable[[str], str],
    options: dict[str, Any],
) -> None:
    """Marker or not, a partition's TRUNCATE records that partition's rows: a marker would
    say every row of the table went."""
    table = installed(**options)
    writer = make_role("partition_writer")
    run(engine, f'GRANT TRUNCATE ON events_p1, events_p2, events_p2_low TO "{writer}"')
    truncate_as(engine, writer, "events_p1")
    assert truncated(engine, table) == [(11, writer), (12, writer)]
    truncate_as(engine, writer, "events_p2")  # a sub-partitioned partition
    assert sorted(truncated(engine, table)[2:]) == [(21, writer), (22, writer)]
    assert check(engine, table) == ("ok", ())


def test_a_truncate_of_the_table_copies_each_row_once(
    engine: sa.Engine, installed: Callable[..., sa.Table]
) -> None:
    """With ``truncate_rows``, the table's trigger copies only what no partition's trigger
    copies: a partition attached without one (here, before a re-install) is copied by it."""
    table = installed(truncate_rows=True)
    run(engine, partition(3))  # no TRUNCATE trigger yet
    fill(engine, 3)
    run(engine, "TRUNCATE events")
    ids = [row_id for row_id, _ in truncated(engine, table)]
    assert sorted(ids) == [11, 12, 21, 22, 31, 32]


def test_a_truncate_of_the_table_still_writes_one_marker(
    engine: sa.Engine, installed: Callable[..., sa.Table]
) -> None:
    """Without ``truncate_rows``: the marker, and each partition's trigger copies its rows
    (PostgreSQL fires the trigger of every relation a TRUNCATE reaches)."""
    table = installed()
    run(engine, "TRUNCATE events")
    recorded = truncated(engine, table)
    assert [row_id for row_id, _ in recorded].count(None) == 1
    assert sorted(row_id for row_id, _ in recorded if row_id is not None) == [11, 12, 21, 22]


@pytest.mark.parametrize("options", TRUNCATE_MODES)
def test_a_partition_attached_after_install_is_drift_until_reinstalled(
    engine: sa.Engine, installed: Callable[..., sa.Table], options: dict[str, Any]
) -> None:
    table = installed(**options)
    run(engine, "CREATE TABLE events_p3 (LIKE events)", partition(4))
    run(engine, "ALTER TABLE events ATTACH PARTITION events_p3 FOR VALUES IN (3)")
    status, details = check(engine, table)
    assert status == "outdated"
    assert [d for d in details if "partition" in d] == [
        "TRUNCATE trigger public_events_audit_truncate on partition public.events_p3 missing:"
        " a TRUNCATE of it is not recorded",
        "TRUNCATE trigger public_events_audit_truncate on partition public.events_p4 missing:"
        " a TRUNCATE of it is not recorded",
    ]
    install_audit_triggers(table.metadata, engine)
    assert check(engine, table) == ("ok", ())
    fill(engine, 3)
    run(engine, "TRUNCATE events_p3")
    assert [row_id for row_id, _ in truncated(engine, table)] == [31, 32]


def test_a_disabled_partition_trigger_is_drift(
    engine: sa.Engine, installed: Callable[..., sa.Table]
) -> None:
    table = installed()
    run(engine, "ALTER TABLE events_p1 DISABLE TRIGGER public_events_audit_truncate")
    assert check(engine, table) == (
        "disabled",
        ("TRUNCATE trigger public_events_audit_truncate on partition public.events_p1 disabled",),
    )


def test_a_detached_partition_keeps_no_trigger_after_reinstall(
    engine: sa.Engine, installed: Callable[..., sa.Table]
) -> None:
    """Detached, it is no longer part of the audited table: its trigger would make every
    TRUNCATE of it fail on the table guard.  Drift says so; a re-install removes it."""
    table = installed()
    run(engine, "ALTER TABLE events DETACH PARTITION events_p1")
    status, details = check(engine, table)
    assert status == "outdated"
    assert details == ("trigger public_events_audit_truncate on public.events_p1 left behind",)
    with pytest.raises(sa.exc.ProgrammingError, match="records only table"):
        run(engine, "TRUNCATE events_p1")
    install_audit_triggers(table.metadata, engine)
    assert check(engine, table) == ("ok", ())
    run(engine, "TRUNCATE events_p1")
    assert truncated(engine, table) == []


def test_dropping_the_operation_or_the_auditing_removes_partition_triggers(
    engine: sa.Engine, installed: Callable[..., sa.Table]
) -> None:
    table = installed()
    without_truncate = events(operations=["INSERT", "UPDATE", "DELETE"])
    install_audit_triggers(without_truncate.metadata, engine)
    assert partition_triggers(engine) == []
    # and the table's own TRUNCATE trigger, no longer declared, goes too
    assert check(engine, without_truncate) == ("ok", ())
    install_audit_triggers(table.metadata, engine)
    assert len(partition_triggers(engine)) == 3
    uninstall_audit_triggers(table.metadata, engine)  # the function can be dropped
    assert partition_triggers(engine) == []


def partition_triggers(engine: sa.Engine) -> list[tuple[str, str]]:
    """(table, trigger) of every statement-level user trigger on a partition."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                " WHERE NOT t.tgisinternal AND (t.tgtype & 1) = 0 AND c.relispartition"
                " ORDER BY 1, 2"
            )
        )
        return [(row.relname, row.tgname) for row in rows]


@pytest.mark.parametrize("options", TRUNCATE_MODES)
def test_an_inheritance_child_is_covered_like_a_partition(
    engine: sa.Engine, make_role: Callable[[str], str], options: dict[str, Any]
) -> None:
    table = sa.Table(
        "ledger",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={"audit.options": {"enabled": True, **options}},
    )
    table.metadata.create_all(engine)
    run(engine, "CREATE TABLE ledger_2025 () INHERITS (ledger)")
    install_audit_triggers(table.metadata, engine)
    run(engine, "INSERT INTO ledger VALUES (1)", "INSERT INTO ledger_2025 VALUES (2), (3)")
    writer = make_role("child_writer")
    run(engine, f'GRANT TRUNCATE ON ledger_2025 TO "{writer}"')
    truncate_as(engine, writer, "ledger_2025")
    assert truncated(engine, table) == [(2, writer), (3, writer)]
    run(engine, "INSERT INTO ledger_2025 VALUES (4)", "TRUNCATE ledger")
    ids = [row_id for row_id, _ in truncated(engine, table)[2:]]
    expected = [1, 4] if options else [None, 4]  # the table's own rows, or its marker
    assert sorted(ids, key=lambda i: (i is not None, i)) == expected


def test_alembic_adds_the_trigger_to_a_partition_attached_later(
    tmp_path: Path, engine: sa.Engine
) -> None:
    table = events()
    metadata = table.metadata
    project = make_project(tmp_path, engine.url)
    project.edit_env(
        "include_schemas=True",
        "include_schemas=True, include_name=lambda n, t, p: not"
        " (t == 'table' and n.startswith('events_p'))",
    )
    project.revision(metadata, "events")
    project.upgrade(metadata)
    run(engine, partition(1))
    migration = project.revision(metadata, "partition trigger")
    assert "op.replace_audit_trigger(" in migration
    project.upgrade(metadata)
    project.check(metadata)
    fill(engine, 1)
    run(engine, "TRUNCATE events_p1")
    assert [row_id for row_id, _ in truncated(engine, table)] == [11, 12]
    project.downgrade(metadata, "-1")  # replace back to the same spec: the trigger stays
    assert partition_triggers(engine) == [("events_p1", "public_events_audit_truncate")]


def test_replacing_with_template_1_removes_the_partition_triggers(
    engine: sa.Engine, installed: Callable[..., sa.Table]
) -> None:
    """Template 1's function would record a partition's TRUNCATE as the whole table's, so a
    replace back to it (a downgrade) takes the triggers off the partitions."""
    table = installed()
    spec = table.info[SPEC_KEY]
    with engine.begin() as connection:
        operations = Operations(MigrationContext.configure(connection))
        operations.invoke(ReplaceAuditTriggerOp(dataclasses.replace(spec, template=1), spec))
    assert partition_triggers(engine) == []
    run(engine, "TRUNCATE events_p1")
    assert truncated(engine, table) == []  # template 1 does not record it
