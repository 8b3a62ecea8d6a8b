"""An archive server by logical replication: every audit row reaches the archive exactly once
(the DEFAULT partition's drain moves rows without publishing them again), across partition
boundaries, and the archive keeps what retention removes from the primary."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from cli_run import run, url_text
from partition_models import accounts as partition_accounts
from sqlalchemy_postgresql_audit import erase, history, hold, maintain
from sqlalchemy_postgresql_audit.lifecycle.archive import (
    publish,
    subscribe_archive,
    unsubscribe_archive,
)

UTC = datetime.timezone.utc


def accounts() -> sa.Table:
    return partition_accounts(retention=datetime.timedelta(weeks=1))


def trail(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT audit_id, audit_operation, audit_operation_timestamp, id, balance "
                "FROM accounts_audit ORDER BY audit_id"
            )
        )
        return [tuple(row) for row in rows]


def arrived(archive: sa.Engine, expected: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The archive's trail once it holds as many rows as ``expected`` (or after a minute)."""
    for _ in range(600):
        found = trail(archive)
        if len(found) >= len(expected):
            return found
        time.sleep(0.1)
    return trail(archive)


@pytest.fixture
def servers(
    logical_database_url: URL, second_database_url: URL
) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    source = sa.create_engine(logical_database_url)
    archive = sa.create_engine(second_database_url)
    try:
        yield source, archive
    finally:
        unsubscribe_archive(archive)  # drops the slot on the source too
        source.dispose()
        archive.dispose()


def test_the_archive_gets_every_row_once_and_keeps_what_retention_removed(
    servers: tuple[sa.Engine, sa.Engine], logical_database_url: URL
) -> None:
    source, archive = servers
    table = accounts()
    table.metadata.create_all(source)
    table.metadata.create_all(archive)  # the same MetaData makes the archive's audit tables
    hold(archive, table, "the archive keeps everything")
    with source.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=10))  # into DEFAULT
    published = publish(source, table)
    assert published.tables == ('"public"."accounts_audit"',) and published.markers_filtered
    subscribe_archive(archive, logical_database_url.render_as_string(hide_password=False))
    # It returns once the initial copy is done: a drain during the copy would hide the row
    # from it (the copy reads the rows as they were, through the partitions as they are).
    assert trail(archive) == trail(source)
    (drained,) = maintain(source, table)  # moves the row out of DEFAULT
    assert drained.drained == 1
    maintain(archive, table)
    last_week = datetime.datetime.now(UTC) - datetime.timedelta(weeks=1)
    with source.begin() as connection:
        connection.execute(table.update().values(balance=20))
        connection.execute(table.insert().values(id=2, balance=5))
        # A row of a week without a partition (as the owner could write it): it waits in
        # DEFAULT, and the drain moves it into a partition of its own, on both servers.
        connection.execute(
            sa.text(
                "INSERT INTO accounts_audit (audit_operation, audit_operation_timestamp, id, "
                "balance) VALUES ('I', :t, 3, 7)"
            ),
            {"t": last_week},
        )
    (again,) = maintain(source, table)
    assert again.drained == 1 and len(again.created) == 1
    before = trail(source)
    assert len(before) == 4
    assert arrived(archive, before) == before  # exactly: each drained row once
    (archived,) = maintain(archive, table)
    assert archived.drained == 1  # the archive's own drain
    assert trail(archive) == before
    later = datetime.datetime.now(UTC) + datetime.timedelta(weeks=3)
    (retained,) = maintain(source, table, at=later)
    assert len(retained.dropped) == 1  # last week's; the present week can still be written
    with source.begin() as connection:
        connection.execute(table.update().where(table.c.id == 1).values(balance=30))
    after = trail(source)
    assert after[0][1] == "X"  # the primary removed the row of last week, and says so
    assert [row[3] for row in after[1:]] == [1, 1, 2, 1]
    expected = [*before, after[-1]]
    assert arrived(archive, expected) == expected  # the archive kept everything, no X
    with archive.connect() as connection:
        versions = connection.execute(history(table, 1)).all()
    assert [(v.audit_operation, v.balance) for v in versions] == [("I", 10), ("U", 20), ("U", 30)]


def test_erase_says_what_it_left_on_the_archive_and_erases_there_too(
    servers: tuple[sa.Engine, sa.Engine], logical_database_url: URL
) -> None:
    source, archive = servers
    table = accounts()
    table.metadata.create_all(source)
    table.metadata.create_all(archive)
    hold(archive, table, "the archive keeps everything")
    last_week = datetime.datetime.now(UTC) - datetime.timedelta(weeks=1)
    with source.begin() as connection:  # two rows written last week (moved there by hand)
        connection.execute(table.insert().values(id=1, balance=10))
        connection.execute(table.insert().values(id=2, balance=5))
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(
            sa.text("UPDATE accounts_audit SET audit_operation_timestamp = :t"), {"t": last_week}
        )
    maintain(source, table)
    publish(source, table)
    subscribe_archive(archive, logical_database_url.render_as_string(hide_password=False))
    assert len(arrived(archive, trail(source))) == 2
    later = datetime.datetime.now(UTC) + datetime.timedelta(weeks=3)
    (retained,) = maintain(source, table, at=later)  # the primary drops last week's rows
    assert retained.dropped
    with pytest.warns(UserWarning, match="published .*audit_trail.*run erase on the archive"):
        primary = erase(source, table, 1, reason="request 12")
    assert (primary.rows, primary.marker_id) == (0, None)  # nothing left here to erase
    assert primary.unreached_publications == ("audit_trail",)
    there = erase(archive, table, 1, reason="request 12")
    assert there.rows == 1 and there.marker_id is not None
    assert there.unreached_publications == ()  # the archive publishes nothing
    with archive.connect() as connection:
        versions = connection.execute(history(table, 1)).all()
        kept = connection.execute(history(table, 2)).all()
    assert [(v.audit_operation, v.balance) for v in versions] == [("I", None)]
    assert [(v.audit_operation, v.balance) for v in kept] == [("I", 5)]
    # The primary's erasure reaches the archive for what both hold (its UPDATE is published),
    # and says again what only the archive holds.
    with source.begin() as connection:
        connection.execute(table.update().where(table.c.id == 2).values(balance=6))
    assert archived(archive, table, 2, [("I", 5), ("U", 6)]) == [("I", 5), ("U", 6)]
    with pytest.warns(UserWarning, match="run erase on the archive"):
        again = erase(source, table, 2, reason="request 13")
    assert again.rows == 1 and again.unreached_publications == ("audit_trail",)
    assert archived(archive, table, 2, [("I", 5), ("U", None)]) == [("I", 5), ("U", None)]


def archived(
    archive: sa.Engine, table: sa.Table, key: int, expected: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """Row ``key``'s versions on the archive once they are ``expected`` (or after a minute)."""
    for _ in range(600):
        with archive.connect() as connection:
            found = [
                (v.audit_operation, v.balance) for v in connection.execute(history(table, key))
            ]
        if found == expected:
            break
        time.sleep(0.1)
    return found


MODELS = """
import datetime
import sqlalchemy as sa

metadata = sa.MetaData()
accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("balance", sa.Integer),
    info={"audit.options": {"enabled": True, "partition": "week"}},
)
"""


def test_cli_publish_creates_then_updates_the_publication(
    engine: sa.Engine, database_url: URL, tmp_path: Any
) -> None:
    (tmp_path / "archmodels.py").write_text(MODELS)
    table = accounts()
    table.metadata.create_all(engine)
    url = ["--url", url_text(database_url)]
    for _ in range(2):  # created, then updated in place
        done = run("--json", "publish", "archmodels:metadata", *url, path=tmp_path)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["published"]["publication"] == "audit_trail"
    with engine.connect() as connection:
        published = connection.execute(
            sa.text(
                "SELECT p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate, p.pubviaroot, "
                "t.tablename FROM pg_publication p JOIN pg_publication_tables t "
                "ON t.pubname = p.pubname"
            )
        ).all()
        identities = (
            connection.execute(
                sa.text(
                    "SELECT DISTINCT relreplident FROM pg_partition_tree('accounts_audit') t "
                    "JOIN pg_class c ON c.oid = t.relid"
                )
            )
            .scalars()
            .all()
        )
    assert [tuple(row) for row in published] == [(True, True, False, False, True, "accounts_audit")]
    assert identities == ["f"]  # every partition can publish an UPDATE (an erasure)
    maintain(engine, table)  # new partitions get the same replica identity
    with engine.connect() as connection:
        identities = (
            connection.execute(
                sa.text(
                    "SELECT DISTINCT relreplident FROM pg_partition_tree('accounts_audit') t "
                    "JOIN pg_class c ON c.oid = t.relid"
                )
            )
            .scalars()
            .all()
        )
    assert identities == ["f"]
