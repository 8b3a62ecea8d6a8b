"""``changes(..., since=, until=)``: the versions written in ``[since, until)``, exactly the rows
of the unbounded result, read with the bound inside the query so that a partitioned audit table's
partitions outside the window are not read."""

from __future__ import annotations

import datetime
import itertools
import re
from typing import Any

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import AuditError, changes, maintain

UTC = datetime.timezone.utc
#: A Monday: the first day of an ISO week, so that weekly partitions start on it.
START = datetime.datetime(2026, 3, 2, tzinfo=UTC)


def accounts(partition: str | None, **more: Any) -> sa.Table:
    options: dict[str, Any] = {"enabled": True, **more}
    if partition is not None:
        options["partition"] = partition
    return sa.Table(
        "accounts",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": options},
    )


def day(n: float) -> datetime.datetime:
    return START + datetime.timedelta(days=n)


def write_at(engine: sa.Engine, moment: datetime.datetime, statement: str) -> None:
    """Run ``statement``, then move the audit rows it wrote to ``moment`` (past the append-only
    guard, as a replica's apply would: a test-only way to write at another time)."""
    with engine.begin() as connection:
        before = connection.execute(
            sa.text("SELECT coalesce(max(audit_id), 0) FROM accounts_audit")
        ).scalar_one()
        connection.execute(sa.text(statement))
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(
            sa.text(
                "UPDATE accounts_audit SET audit_operation_timestamp = :moment "
                "WHERE audit_id > :before"
            ),
            {"moment": moment, "before": before},
        )


#: Row 1's life: updates across weeks, a TRUNCATE, a DELETE, a key move away (``K``), and the
#: key used again; row 2 is written in between.
EVENTS = [
    (0, "INSERT INTO accounts VALUES (1, 10)"),
    (3, "UPDATE accounts SET balance = 11 WHERE id = 1"),
    (9, "UPDATE accounts SET balance = 12 WHERE id = 1"),
    (10, "INSERT INTO accounts VALUES (2, 5)"),
    (16, "TRUNCATE accounts"),
    (20, "INSERT INTO accounts VALUES (1, 20)"),
    (24, "UPDATE accounts SET balance = 21 WHERE id = 1"),
    (30, "DELETE FROM accounts WHERE id = 1"),
    (33, "INSERT INTO accounts VALUES (1, 30)"),
    (38, "UPDATE accounts SET id = 3 WHERE id = 1"),
    (40, "INSERT INTO accounts VALUES (1, 40)"),
    (45, "UPDATE accounts SET balance = 41 WHERE id = 1"),
    (46, "UPDATE accounts SET balance = 42 WHERE id = 2"),
]


def written(engine: sa.Engine, partition: str | None, **more: Any) -> sa.Table:
    table = accounts(partition, **more)
    table.metadata.create_all(engine)
    if partition is not None:
        for week in range(8):
            maintain(engine, table, at=START + datetime.timedelta(weeks=week))
    for offset, statement in EVENTS:
        write_at(engine, day(offset), statement)
    return table


@pytest.mark.parametrize("partition", [None, "week", "retained"])
def test_a_window_holds_exactly_the_unbounded_changes_written_in_it(
    engine: sa.Engine, partition: str | None
) -> None:
    """Every window whose ends are on, just after or between the writes: the bounded result is
    the unbounded one filtered to ``since <= audit_operation_timestamp < until``, with the same
    "before" for the window's first change (its previous version lies before the window).
    ``retained``: weekly, after retention dropped the first week (an ``X`` marker)."""
    if partition == "retained":
        table = written(engine, "week", retention=datetime.timedelta(weeks=1))
        (done,) = maintain(engine, table, at=day(14))
        assert done.dropped == ("accounts_audit_p20260302",)  # row 1 now starts with an UPDATE
    else:
        table = written(engine, partition)
    times = sorted({day(offset) for offset, _ in EVENTS})
    moments: list[datetime.datetime | None] = [
        None,
        *times,
        *(t + datetime.timedelta(hours=1) for t in times),
    ]
    with engine.connect() as connection:
        every = [tuple(row) for row in connection.execute(changes(table, 1))]
        assert {row[1] for row in every} >= {"I", "U", "D", "K"}
        assert every[0][1] == ("U" if partition == "retained" else "I")
        checked = 0
        for since, until in itertools.product(moments, moments):
            if since is not None and until is not None and since > until:
                continue
            expected = [
                row
                for row in every
                if (since is None or row[2] >= since) and (until is None or row[2] < until)
            ]
            query = changes(table, 1, since=since, until=until)
            assert [tuple(row) for row in connection.execute(query)] == expected, (since, until)
            checked += 1
    assert checked > 300


def test_the_first_change_in_a_window_shows_the_value_it_replaced(engine: sa.Engine) -> None:
    table = written(engine, "week")
    with engine.connect() as connection:
        rows = connection.execute(changes(table, 1, since=day(9), until=day(10))).all()
        after_truncate = connection.execute(changes(table, 1, since=day(20), until=day(21))).all()
    assert [(r.audit_operation, r.column, r.before, r.after) for r in rows] == [
        ("U", "balance", 11, 12)
    ]
    # The TRUNCATE before the window removed the row: the INSERT has nothing before it.
    assert [(r.column, r.before, r.after) for r in after_truncate] == [
        ("id", None, 1),
        ("balance", None, 20),
    ]


def plan_of(engine: sa.Engine, query: sa.Select[Any], analyze: bool = False) -> str:
    """The plan of ``query`` as SQLAlchemy runs it (psycopg2 sends its values in the text: the
    planner prunes with them as with constants)."""
    options = "ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF" if analyze else "COSTS OFF"

    def explain(*args: Any) -> tuple[str, Any]:
        statement, parameters = args[2], args[3]
        return f"EXPLAIN ({options}) {statement}", parameters

    with engine.connect() as connection:
        sa.event.listen(connection, "before_cursor_execute", explain, retval=True)
        try:
            return "\n".join(str(line) for line in connection.execute(query).scalars())
        finally:
            sa.event.remove(connection, "before_cursor_execute", explain)


def partition_names(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'accounts_audit'::regclass ORDER BY 1"
                )
            ).scalars()
        )


def test_a_window_reads_no_partition_after_it(engine: sa.Engine) -> None:
    """Weeks 4 and 5 (days 21 to 35): the partitions written after ``until`` are not planned
    (pruned when planning), and the unbounded query plans every one."""
    table = written(engine, "week")
    window = changes(table, 1, since=day(21), until=day(35))
    plan = plan_of(engine, window)
    unbounded = plan_of(engine, changes(table, 1))
    later = ["accounts_audit_p20260406", "accounts_audit_p20260413"]
    for name in later:
        assert f" on {name} " in unbounded
        assert f" on {name} " not in plan, (name, plan)
    assert " on accounts_audit_p20260323 " in plan  # the window's weeks
    assert " on accounts_audit_p20260330 " in plan


def test_a_window_reads_the_partitions_before_it_only_for_the_version_before(
    engine: sa.Engine,
) -> None:
    """Before ``since``: the row's latest earlier version is looked up down each earlier
    partition's history index (one entry read there at most), and the markers between that
    version and ``since`` only in the partitions written since it; the others are pruned when
    the query starts, not read."""
    table = written(engine, "week")
    # The version before day 38 is day 33's INSERT, in the week of 2026-03-30.
    plan = plan_of(engine, changes(table, 1, since=day(38), until=day(42)), analyze=True)
    earlier = ["accounts_audit_p20260302", "accounts_audit_p20260309", "accounts_audit_p20260316"]
    for name in earlier:
        version, markers = (line for line in plan.splitlines() if f" on {name} " in line)
        assert "Index Scan Backward" in version, plan
        assert re.search(r"actual rows=1(\.00)? loops=1", version), plan  # one entry read
        assert markers.endswith("(never executed)"), plan


def test_window_bounds_are_checked(engine: sa.Engine) -> None:
    table = accounts(None)
    with pytest.raises(AuditError, match="'since' is a naive datetime"):
        changes(table, 1, since=datetime.datetime(2026, 1, 1))
    with pytest.raises(AuditError, match="'until' is a naive datetime"):
        changes(table, 1, until=datetime.datetime(2026, 1, 1))
    with pytest.raises(AuditError, match=r"'since' .* is after 'until'"):
        changes(table, 1, since=day(2), until=day(1))
    with pytest.raises(TypeError, match="'since' must be a datetime"):
        changes(table, 1, since="2026-01-01")  # type: ignore[arg-type]
