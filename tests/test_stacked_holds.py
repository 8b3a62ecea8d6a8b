"""Holds stack, as litigation holds do: each has its own reason, retention waits while any is
left, ``release`` lifts the one named and no other, and a holds table made when a table had at
most one hold keeps its hold and takes more."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
import sqlalchemy as sa

from cli_run import run, url_text
from partition_models import accounts as partition_accounts
from sqlalchemy_postgresql_audit import AuditError, hold, holds_of, maintain, release
from sqlalchemy_postgresql_audit.render.partitioning import HOLDS_TABLE

UTC = datetime.timezone.utc
#: A Wednesday; its ISO week starts on Monday 2026-03-02.
NOW = datetime.datetime(2026, 3, 4, 12, tzinfo=UTC)
LATER = NOW + datetime.timedelta(weeks=3)


def accounts() -> sa.Table:
    return partition_accounts(retention=datetime.timedelta(weeks=1))


def created(engine: sa.Engine) -> sa.Table:
    """An audited table with partitions of weeks that retention at ``LATER`` removes."""
    table = accounts()
    table.metadata.create_all(engine)
    maintain(engine, table, at=NOW)
    return table


def test_retention_waits_until_the_last_of_two_holds_is_released(engine: sa.Engine) -> None:
    table = created(engine)
    hold(engine, table, "archive")
    hold(engine, table, "litigation 7")
    assert [h.reason for h in holds_of(engine, table)] == ["archive", "litigation 7"]
    release(engine, table, "litigation 7")
    (held,) = maintain(engine, table, at=LATER)
    assert held.held == "archive" and held.dropped == () and held.detached == ()
    assert [h.reason for h in holds_of(engine, table)] == ["archive"]
    release(engine, table, "archive")
    (released,) = maintain(engine, table, at=LATER)
    assert released.held is None and released.dropped


def test_maintain_names_every_hold(engine: sa.Engine) -> None:
    table = created(engine)
    hold(engine, table, "archive")
    hold(engine, table, "litigation 7")
    (held,) = maintain(engine, table, at=LATER)
    assert held.held == "archive; litigation 7" and held.dropped == ()


def test_releasing_a_hold_that_is_not_there_is_an_error_and_lifts_nothing(
    engine: sa.Engine,
) -> None:
    table = created(engine)
    with pytest.raises(AuditError, match=r"'accounts' has no hold for 'archive' \(its holds: none"):
        release(engine, table, "archive")
    hold(engine, table, "archive")
    with pytest.raises(
        AuditError, match=r"'accounts' has no hold for 'litigation 7' \(its holds: 'archive'\)"
    ):
        release(engine, table, "litigation 7")
    (held,) = maintain(engine, table, at=LATER)
    assert held.held == "archive" and held.dropped == ()


def test_a_second_hold_for_the_same_reason_is_refused(engine: sa.Engine) -> None:
    """Else two holders sharing a reason would share one hold, and the first to release it
    would lift the other's."""
    table = created(engine)
    hold(engine, table, "archive")
    with pytest.raises(AuditError, match="'accounts' is already held for 'archive' \\(by "):
        hold(engine, table, " archive ")
    with pytest.raises(ValueError, match="reason must say why history of 'accounts' is held"):
        release(engine, table, " ")
    assert len(holds_of(engine, table)) == 1


#: The holds table as it was made when a table had at most one hold.
ONE_PER_TABLE = (
    f"CREATE TABLE {HOLDS_TABLE} (audit_table text PRIMARY KEY, reason text NOT NULL, "
    "held_by text NOT NULL DEFAULT current_user, "
    "held_at timestamptz NOT NULL DEFAULT pg_catalog.now())"
)


def test_a_holds_table_of_one_hold_per_table_keeps_its_hold_and_takes_more(
    engine: sa.Engine,
) -> None:
    table = created(engine)
    with engine.begin() as connection:
        connection.execute(sa.text(ONE_PER_TABLE))
        connection.execute(
            sa.text(
                f"INSERT INTO {HOLDS_TABLE} (audit_table, reason) VALUES ('accounts_audit', 'archive')"
            )
        )
    # Read as it is: the hold is there and keeps retention waiting.
    assert [h.reason for h in holds_of(engine, table)] == ["archive"]
    (held,) = maintain(engine, table, at=LATER)
    assert held.held == "archive" and held.dropped == ()
    # The next hold gives the table the wider key, in place, and both holds are kept.
    hold(engine, table, "litigation 7")
    assert [h.reason for h in holds_of(engine, table)] == ["archive", "litigation 7"]
    with engine.connect() as connection:
        key = connection.execute(
            sa.text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = CAST(:t AS regclass) AND contype = 'p'"
            ),
            {"t": HOLDS_TABLE},
        ).scalar_one()
    assert key == "PRIMARY KEY (audit_table, reason)"
    release(engine, table, "litigation 7")
    (still,) = maintain(engine, table, at=LATER)
    assert still.held == "archive" and still.dropped == ()
    release(engine, table, "archive")
    (released,) = maintain(engine, table, at=LATER)
    assert released.held is None and released.dropped


MODELS = """
import datetime
import sqlalchemy as sa

metadata = sa.MetaData()
accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("balance", sa.Integer),
    info={"audit.options": {
        "enabled": True, "partition": "week", "retention": datetime.timedelta(weeks=1)
    }},
)
"""


def test_cli_holds_stack_and_release_lifts_the_one_named(
    engine: sa.Engine, database_url: Any, tmp_path: Any
) -> None:
    (tmp_path / "holdmodels.py").write_text(MODELS)
    target, url = "holdmodels:metadata", ("--url", url_text(database_url))
    created(engine)

    def cli(*args: str) -> Any:
        return run(*args, *url, path=tmp_path)

    for reason in ("archive", "litigation 7"):
        placed = cli("hold", target, "accounts", "--reason", reason)
        assert placed.returncode == 0, placed.stderr
    assert "accounts is held by 2: 'archive', 'litigation 7'" in placed.stdout
    again = cli("hold", target, "accounts", "--reason", "archive")
    assert again.returncode == 2 and "already held for 'archive'" in again.stderr
    listed = cli("--json", "holds", target)
    assert listed.returncode == 0, listed.stderr
    holds = json.loads(listed.stdout)["holds"]
    assert [(h["table"], h["reason"]) for h in holds] == [
        ("accounts", "archive"),
        ("accounts", "litigation 7"),
    ]
    assert all(h["held_by"] and h["held_at"] for h in holds)
    checked = cli("check", target)  # a gap (the partitions are of March), and both holds
    assert "retention held: 'archive' (by " in checked.stdout
    assert "'litigation 7' (by " in checked.stdout
    unknown = cli("release", target, "accounts", "--reason", "litigation 8")
    assert unknown.returncode == 2
    assert "has no hold for 'litigation 8' (its holds: 'archive', 'litigation 7')" in (
        unknown.stderr
    )
    unnamed = cli("release", target, "accounts")
    assert unnamed.returncode == 2 and "--reason" in unnamed.stderr
    lifted = cli("release", target, "accounts", "--reason", "litigation 7")
    assert lifted.returncode == 0, lifted.stderr
    assert "accounts is held by 1: 'archive'" in lifted.stdout
    kept = cli("--json", "maintain", target, "--at", LATER.isoformat())
    (maintained,) = json.loads(kept.stdout)["maintained"]
    assert maintained["held"] == "archive" and maintained["dropped"] == []
    last = cli("release", target, "accounts", "--reason", "archive")
    assert "retention of accounts runs again: no hold is left" in last.stdout
    table = cli("holds", target)
    assert table.returncode == 0 and "0 holds on 0 of 1 tables" in table.stdout
    dropped = cli("--json", "maintain", target, "--at", LATER.isoformat())
    assert json.loads(dropped.stdout)["maintained"][0]["dropped"]
