"""``check`` fails when writes are about to land in the DEFAULT partition, not only once they
do: partitions that end less than one partition's period ahead mean ``maintain`` (which keeps
four periods ahead) has stopped running."""

from __future__ import annotations

import datetime

import sqlalchemy as sa

from partition_models import accounts
from sqlalchemy_postgresql_audit import maintain
from sqlalchemy_postgresql_audit.cli.check import table_states
from sqlalchemy_postgresql_audit.install.compare import OK
from sqlalchemy_postgresql_audit.install.ddl import audited_tables
from sqlalchemy_postgresql_audit.lifecycle.coverage import GAP, coverage, coverage_watched

UTC = datetime.timezone.utc
#: A Wednesday; its ISO week starts on Monday 2026-03-02.
NOW = datetime.datetime(2026, 3, 4, 12, tzinfo=UTC)


def test_partitions_ending_within_a_period_are_a_gap_already(engine: sa.Engine) -> None:
    table = accounts(partition="day")
    table.metadata.create_all(engine)
    maintain(engine, table, at=NOW)  # the day of NOW and the four after: until 2026-03-09
    end = datetime.datetime(2026, 3, 9, tzinfo=UTC)
    with engine.connect() as connection:
        early = coverage(connection, None, "accounts_audit", at=end - datetime.timedelta(days=2))
        late = coverage(connection, None, "accounts_audit", at=end - datetime.timedelta(minutes=1))
    assert early.covered_until == late.covered_until == end
    assert coverage_watched("accounts_audit", early).state == OK
    watched = coverage_watched("accounts_audit", late)
    assert watched.state == GAP
    assert any("less than one partition's period ahead" in r for r in watched.reasons)


def test_check_fails_a_table_maintain_left_a_day_before_its_end(engine: sa.Engine) -> None:
    """``check`` reads the server's clock: the partitions ``maintain`` made three days ago end
    at midnight after tomorrow (more than a day ahead, whatever the time now); without the
    newest, tomorrow at midnight (less than a day ahead: a gap)."""
    table = accounts(partition="day")
    table.metadata.create_all(engine)
    now = datetime.datetime.now(UTC)
    maintain(engine, table, at=now - datetime.timedelta(days=3))
    with engine.connect() as connection:
        (state,) = table_states(connection, list(audited_tables(table.metadata)))
    assert state.status == OK, state.details
    with engine.begin() as connection:
        latest = max(
            connection.execute(
                sa.text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'accounts_audit'::regclass "
                    "AND c.relname <> 'accounts_audit_default'"
                )
            ).scalars()
        )
        connection.execute(sa.text(f"DROP TABLE {latest}"))
    with engine.connect() as connection:
        (state,) = table_states(connection, list(audited_tables(table.metadata)))
    assert state.status == GAP
    assert any("less than one partition's period ahead" in d for d in state.details)
