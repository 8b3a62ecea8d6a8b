"""Template version 2 on a real server: the time a change was written, moved keys (``K``
rows), the HINT naming ``audit_context``, and moving a version-1 installation to version 2."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from alembic_env import make_project
from sqlalchemy_postgresql_audit import (
    AUDIT_TABLE_KEY,
    SPEC_KEY,
    AuditSpec,
    install_audit_triggers,
)
from sqlalchemy_postgresql_audit.install.ddl import install
from sqlalchemy_postgresql_audit.render import template_v2

MODES = ("statement", "row")


def declare(mode: str, *, deferrable_key: bool = False, **options: Any) -> sa.Table:
    key = sa.PrimaryKeyConstraint("id", deferrable=True) if deferrable_key else None
    return sa.Table(
        "parcel",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=not deferrable_key, autoincrement=False),
        sa.Column("place", sa.Text),
        *([key] if key is not None else []),
        info={"audit.options": {"enabled": True, "mode": mode, **options}},
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


def stamps(connection: sa.Connection, table: sa.Table) -> list[Any]:
    audit = table.info[AUDIT_TABLE_KEY]
    return list(
        connection.execute(
            sa.select(audit.c.audit_operation_timestamp).order_by(audit.c.audit_id)
        ).scalars()
    )


def two_writes_with_a_wait(engine: sa.Engine, table: sa.Table, first_id: int) -> Any:
    """Two inserts in one transaction, the server waiting between them; returns the
    transaction's start (``now()``)."""
    with engine.begin() as connection:
        started = connection.execute(sa.select(sa.func.now())).scalar_one()
        connection.execute(table.insert().values(id=first_id, place="a"))
        connection.execute(sa.select(sa.func.pg_sleep(0.01)))
        connection.execute(table.insert().values(id=first_id + 1, place="b"))
    return started


@pytest.mark.parametrize("mode", MODES)
def test_the_timestamp_is_when_the_change_was_written(engine: sa.Engine, mode: str) -> None:
    table = declare(mode)
    table.metadata.create_all(engine)
    started = two_writes_with_a_wait(engine, table, 1)
    with engine.connect() as connection:
        first, second = stamps(connection, table)
    assert started < first < second


@pytest.mark.parametrize("mode", MODES)
def test_one_timestamp_per_statement_or_per_row(engine: sa.Engine, mode: str) -> None:
    """Captured once per trigger call: a statement-level call stamps all its rows alike."""
    table = declare(mode)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO parcel SELECT i, 'x' FROM generate_series(1, 3) i"
                " WHERE pg_sleep(0.001) IS NOT NULL"
            )
        )
        written = stamps(connection, table)
    assert len(set(written)) == (1 if mode == "statement" else 3)
    assert written == sorted(written)


def test_template_1_stamped_the_transaction_start(engine: sa.Engine) -> None:
    """What version 2 changes: under version 1 both writes carry the transaction's start."""
    table = declare("statement")
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        install(connection, [(table, dataclasses.replace(spec_of(table), template=1))])
    started = two_writes_with_a_wait(engine, table, 1)
    with engine.connect() as connection:
        assert stamps(connection, table) == [started, started]


def test_a_legacy_timestamp_column_holds_the_local_time_of_the_write(engine: sa.Engine) -> None:
    table = declare("row", legacy_timestamp=True)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL TimeZone = 'Asia/Kathmandu'"))
        started = connection.execute(sa.text("SELECT localtimestamp")).scalar_one()
        connection.execute(table.insert().values(id=1, place="a"))
        after = connection.execute(sa.text("SELECT clock_timestamp()::timestamp")).scalar_one()
        (written,) = stamps(connection, table)
    assert written.tzinfo is None
    assert started <= written <= after


@pytest.mark.parametrize("mode", MODES)
def test_a_key_change_writes_a_k_row_under_the_old_key_then_the_u_row(
    engine: sa.Engine, mode: str
) -> None:
    table = declare(mode)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "place": "a"}, {"id": 2, "place": "b"}])
        connection.execute(sa.text("UPDATE parcel SET id = 10, place = 'moved' WHERE id = 1"))
        connection.execute(sa.text("UPDATE parcel SET place = 'stays' WHERE id = 2"))
        assert trail(connection, table)[2:] == [
            ("K", 1, "a"),  # the old key, with the old values
            ("U", 10, "moved"),
            ("U", 2, "stays"),
        ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("options", [{}, {"capture": ["changed_columns"], "skip_unchanged": True}])
def test_only_moved_keys_get_k_rows_in_a_multi_row_update(
    engine: sa.Engine, mode: str, options: dict[str, Any]
) -> None:
    """Shifting keys up by one: only key 1 is left behind; in statement mode the unpaired
    update rows are recorded as before (every new row, changed columns unknown)."""
    table = declare(mode, deferrable_key=True, **options)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": i, "place": f"p{i}"} for i in (1, 2, 3)])
        connection.execute(sa.text("UPDATE parcel SET id = id + 1"))
        recorded = trail(connection, table)[3:]
    assert [r for r in recorded if r[0] == "K"] == [("K", 1, "p1")]
    assert recorded[0][0] == "K"  # before the statement's U rows
    assert sorted(r for r in recorded if r[0] == "U") == [
        ("U", 2, "p1"),
        ("U", 3, "p2"),
        ("U", 4, "p3"),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_every_recorded_column_value_comes_from_recorded_value(
    engine: sa.Engine, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an audit row holds for a column comes from ``recorded_value`` alone, for every
    kind of row (I, U, K, D, and the rows a TRUNCATE copies): a change there (redaction) changes
    every row, while keys still decide which rows are written."""
    original = template_v2.recorded_value

    def place_masked(spec: AuditSpec, row: str, column: str) -> str:
        return "NULL" if column == "place" else original(spec, row, column)

    monkeypatch.setattr(template_v2, "recorded_value", place_masked)
    table = declare(mode, truncate_rows=True)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "place": "a"}, {"id": 2, "place": "b"}])
        connection.execute(sa.text("UPDATE parcel SET place = 'c' WHERE id = 2"))
        connection.execute(sa.text("UPDATE parcel SET id = 10 WHERE id = 1"))
        connection.execute(sa.text("DELETE FROM parcel WHERE id = 2"))
        connection.execute(sa.text("TRUNCATE parcel"))
        assert trail(connection, table) == [
            ("I", 1, None),
            ("I", 2, None),
            ("U", 2, None),
            ("K", 1, None),
            ("U", 10, None),
            ("D", 2, None),
            ("T", 10, None),
        ]


@pytest.mark.parametrize("mode", MODES)
def test_swapped_keys_leave_no_key_behind(engine: sa.Engine, mode: str) -> None:
    """Both keys still exist after a swap (a deferrable key allows it): no ``K`` row, or the
    history of a key that is still there would end."""
    table = declare(mode, deferrable_key=True)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "place": "a"}, {"id": 2, "place": "b"}])
        connection.execute(sa.text("UPDATE parcel SET id = 3 - id"))
        recorded = trail(connection, table)[2:]
    assert sorted(recorded) == [("U", 1, "b"), ("U", 2, "a")]


@pytest.mark.parametrize("mode", MODES)
def test_a_table_without_a_key_gets_no_k_rows(engine: sa.Engine, mode: str) -> None:
    table = sa.Table(
        "note",
        sa.MetaData(),
        sa.Column("line", sa.Text),
        info={"audit.options": {"enabled": True, "mode": mode}},
    )
    table.metadata.create_all(engine)
    audit = table.info[AUDIT_TABLE_KEY]
    with engine.begin() as connection:
        connection.execute(table.insert().values(line="a"))
        connection.execute(table.update().values(line="b"))
        operations = connection.execute(
            sa.select(audit.c.audit_operation).order_by(audit.c.audit_id)
        ).scalars()
        assert list(operations) == ["I", "U"]


@pytest.mark.parametrize("mode", MODES)
def test_the_hint_of_a_missing_setting_names_audit_context(engine: sa.Engine, mode: str) -> None:
    table = declare(mode, session_settings=[sa.Column("username", sa.Text, nullable=False)])
    table.metadata.create_all(engine)
    with pytest.raises(sa.exc.DBAPIError) as raised, engine.begin() as connection:
        connection.execute(table.insert().values(id=1, place="a"))
    hint = raised.value.orig.diag.message_hint  # type: ignore[union-attr]
    assert "audit_context(username=...)" in hint
    assert "set_session_vars()" in hint


# --- moving a version-1 installation to version 2 ----------------------------------------------


def installed_template(connection: sa.Connection) -> int:
    comment = connection.execute(
        sa.text("SELECT obj_description('public.public_parcel_audit()'::regprocedure)")
    ).scalar_one()
    return int(AuditSpec.from_json(comment.split(":", 1)[1]).template)


def audited_once_by_version_2(engine: sa.Engine, table: sa.Table, before: list[Any]) -> None:
    """Old rows untouched; new writes recorded once each, stamped when written."""
    with engine.begin() as connection:
        assert installed_template(connection) == 2
        assert trail(connection, table) == before
    started = two_writes_with_a_wait(engine, table, 100)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE parcel SET id = 300 WHERE id = 100"))
        recorded = trail(connection, table)
        new_stamps = stamps(connection, table)[len(before) :]
    assert recorded == [
        *before,
        ("I", 100, "a"),
        ("I", 101, "b"),
        ("K", 100, "a"),
        ("U", 300, "a"),
    ]
    assert started < new_stamps[0] < new_stamps[1]


def version_1_with_history(engine: sa.Engine, mode: str) -> tuple[sa.Table, list[Any]]:
    table = declare(mode)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        install(connection, [(table, dataclasses.replace(spec_of(table), template=1))])
        assert installed_template(connection) == 1
        connection.execute(table.insert(), [{"id": 1, "place": "a"}, {"id": 2, "place": "b"}])
        connection.execute(sa.text("UPDATE parcel SET id = 3 WHERE id = 2"))
        before = trail(connection, table)
    assert before == [("I", 1, "a"), ("I", 2, "b"), ("U", 3, "b")]  # version 1: no K row
    return table, before


@pytest.mark.parametrize("mode", MODES)
def test_install_audit_triggers_moves_version_1_to_version_2(engine: sa.Engine, mode: str) -> None:
    table, before = version_1_with_history(engine, mode)
    install_audit_triggers(table.metadata, engine)
    audited_once_by_version_2(engine, table, before)


@pytest.mark.parametrize("mode", MODES)
def test_alembic_replaces_version_1_with_version_2(
    tmp_path: Path, engine: sa.Engine, mode: str
) -> None:
    table, before = version_1_with_history(engine, mode)
    project = make_project(tmp_path, engine.url)
    migration = project.revision(table.metadata, "template 2")
    assert "op.replace_audit_trigger(" in migration
    assert "template=2" in migration and "'template': 1" in migration
    project.upgrade(table.metadata)
    audited_once_by_version_2(engine, table, before)
    project.check(table.metadata)
    project.downgrade(table.metadata)
    with engine.begin() as connection:
        assert installed_template(connection) == 1


@pytest.mark.parametrize("mode", MODES)
def test_the_guard_refuses_another_table_of_the_same_schema(engine: sa.Engine, mode: str) -> None:
    """The schema matches, so only the table-name comparison (or the partition and
    inheritance checks) can refuse it: the function attached to a sibling table records
    nothing and fails the write."""
    table = declare(mode)
    table.metadata.create_all(engine)
    level = (
        "FOR EACH ROW"
        if mode == "row"
        else "REFERENCING NEW TABLE AS audit_new_rows FOR EACH STATEMENT"
    )
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE sibling (LIKE parcel)"))
        connection.execute(
            sa.text(
                f"CREATE TRIGGER forged AFTER INSERT ON sibling {level}"
                " EXECUTE FUNCTION public.public_parcel_audit()"
            )
        )
    with pytest.raises(sa.exc.ProgrammingError, match="records only table"):
        run_insert(engine, "INSERT INTO sibling VALUES (1, 'forged')")
    with engine.connect() as connection:
        assert trail(connection, table) == []


def run_insert(engine: sa.Engine, sql: str) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text(sql))


@pytest.mark.parametrize("mode", MODES)
def test_a_trigger_of_its_own_calling_the_function_is_refused(engine: sa.Engine, mode: str) -> None:
    """A role with EXECUTE on the function and TRIGGER on the table (default privileges before
    the grant step) adds a trigger of its own, with the transition tables swapped: the
    function refuses to run from it, so no forged version is recorded."""
    table = declare(mode)
    table.metadata.create_all(engine)
    level = (
        "FOR EACH ROW"
        if mode == "row"
        else "REFERENCING NEW TABLE AS audit_old_rows OLD TABLE AS audit_new_rows "
        "FOR EACH STATEMENT"
    )
    run_insert(engine, "INSERT INTO parcel VALUES (1, 'dock')")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f"CREATE TRIGGER zzz_swap AFTER UPDATE ON parcel {level}"
                " EXECUTE FUNCTION public.public_parcel_audit()"
            )
        )
    with pytest.raises(sa.exc.ProgrammingError, match="runs only from the audit triggers"):
        run_insert(engine, "UPDATE parcel SET place = 'forged'")
    with engine.connect() as connection:
        assert trail(connection, table) == [("I", 1, "dock")]


@pytest.mark.parametrize("truncate_rows", [True, False])
def test_a_truncate_row_level_security_would_hide_rows_from_fails(
    engine: sa.Engine, make_role: Any, truncate_rows: bool
) -> None:
    """The copy of the removed rows reads as the function's owner: where a policy hides rows
    from it, the TRUNCATE fails instead of recording only the visible rows."""
    owner = make_role("audit_owner")
    metadata = sa.MetaData()
    sa.Table(
        "parcel",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("place", sa.Text),
        postgresql_partition_by="RANGE (id)",
        info={"audit.options": {"enabled": True, "truncate_rows": truncate_rows}},
    )
    quote = engine.dialect.identifier_preparer.quote
    with engine.begin() as connection:
        metadata.create_all(connection)
        for statement in (
            "CREATE TABLE parcel_low PARTITION OF parcel FOR VALUES FROM (0) TO (100)",
            "INSERT INTO parcel VALUES (1, 'dock'), (2, 'yard')",
        ):
            connection.execute(sa.text(statement))
        install_audit_triggers(metadata, connection)  # the partition's TRUNCATE trigger
        for statement in (
            f"ALTER FUNCTION public.public_parcel_audit() OWNER TO {quote(owner)}",
            f"ALTER TABLE parcel_audit OWNER TO {quote(owner)}",
            f"GRANT SELECT ON parcel, parcel_low TO {quote(owner)}",
            "ALTER TABLE parcel_low ENABLE ROW LEVEL SECURITY",
            "CREATE POLICY only_one ON parcel_low USING (id = 1)",
        ):
            connection.execute(sa.text(statement))
    with pytest.raises(sa.exc.ProgrammingError, match="row-level security hides rows"):
        run_insert(engine, "TRUNCATE parcel_low")
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM parcel")).scalar_one() == 2
