"""Seals: ``seal`` chains the audit rows per partition below a horizon no open transaction can
write under, ``verify`` recomputes it and names the first row that no longer matches, and an
anchored head proves the trail up to it unchanged."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Session

from cli_run import run, url_text
from sqlalchemy_postgresql_audit import AuditError, erase, maintain, seal, verify
from sqlalchemy_postgresql_audit.lifecycle import _chain
from sqlalchemy_postgresql_audit.lifecycle._digest import (
    KeyTree,
    column_key,
    commitment,
    tree_depth,
)
from sqlalchemy_postgresql_audit.lifecycle.seals import record_removed_partition

UTC = datetime.timezone.utc


def accounts(**options: Any) -> sa.Table:
    return sa.Table(
        "accounts",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": True, "append_only": True, **options}},
    )


def write(engine: sa.Engine, table: sa.Table, *ids: int) -> None:
    with engine.begin() as connection:
        for key in ids:
            connection.execute(table.insert().values(id=key, owner=f"owner {key}", balance=key))
            connection.execute(table.update().where(table.c.id == key).values(balance=key * 10))


def as_owner(engine: sa.Engine, *statements: str) -> None:
    """Run ``statements`` as the audit table's owner with every trigger off (the guard too)."""
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        for statement in statements:
            connection.execute(sa.text(statement))


@pytest.fixture
def sealed(engine: sa.Engine) -> sa.Table:
    table = accounts()
    table.metadata.create_all(engine)
    write(engine, table, 1, 2, 3)
    (done,) = seal(engine, table)
    assert done.rows == 6 and done.sealed_to == 6 and done.segments == ("accounts_audit",)
    return table


def test_seal_covers_new_rows_once_and_verify_passes(engine: sa.Engine, sealed: sa.Table) -> None:
    report = verify(engine, sealed)
    assert report.ok and report.first_broken is None and report.sealed_rows == 6
    (again,) = seal(engine, sealed)
    assert again.rows == 0 and again.head == report.head  # nothing new: the chain is unchanged
    write(engine, sealed, 4)
    (more,) = seal(engine, sealed)
    assert more.rows == 2 and more.sealed_to == 8 and more.head != report.head
    assert verify(engine, sealed).ok


@pytest.mark.parametrize(
    ("tamper", "broken_at"),
    [
        ("UPDATE accounts_audit SET balance = 99 WHERE audit_id = 4", 4),
        ("DELETE FROM accounts_audit WHERE audit_id = 3", 3),
        (
            "INSERT INTO accounts_audit (audit_id, audit_operation, audit_operation_timestamp, "
            "id, balance) VALUES (-5, 'I', now(), 7, 7)",
            -5,
        ),
        ("UPDATE accounts_audit SET audit_id = 9 WHERE audit_id = 2", 2),
        ("UPDATE accounts_audit SET audit_operation_timestamp = now() WHERE audit_id = 5", 5),
    ],
    ids=["update", "delete", "insert", "renumber", "retime"],
)
def test_verify_catches_the_owner_changing_sealed_rows_with_the_guard_off(
    engine: sa.Engine, sealed: sa.Table, tamper: str, broken_at: int
) -> None:
    as_owner(engine, tamper)
    report = verify(engine, sealed)
    assert not report.ok
    assert report.first_broken == ("accounts_audit", broken_at)
    assert report.head is not None


def test_verify_catches_an_audit_id_handed_out_again_by_a_sequence_set_back(
    engine: sa.Engine, sealed: sa.Table
) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text("SELECT setval(pg_get_serial_sequence('accounts_audit', 'audit_id'), 2)")
        )
    write(engine, sealed, 10)  # its rows take ids 3 and 4 again
    report = verify(engine, sealed)
    assert not report.ok and report.first_broken == ("accounts_audit", 3)
    with pytest.raises(AuditError, match="set back"):
        seal(engine, sealed)


def test_an_anchored_head_exposes_a_chain_rewritten_from_scratch(
    engine: sa.Engine, sealed: sa.Table
) -> None:
    anchor = verify(engine, sealed).head
    assert anchor is not None and verify(engine, sealed, anchor=anchor).ok
    # The owner changes history, then throws the chain away and seals again: without an anchor
    # nothing inside the database can tell.
    as_owner(
        engine,
        "UPDATE accounts_audit SET balance = 0 WHERE id = 2",
        "DROP TABLE sqlalchemy_postgresql_audit_seals, sqlalchemy_postgresql_audit_seal_keys, "
        "sqlalchemy_postgresql_audit_seal_rows, sqlalchemy_postgresql_audit_seal_pending",
    )
    seal(engine, sealed)
    assert verify(engine, sealed).ok
    rewritten = verify(engine, sealed, anchor=anchor)
    assert not rewritten.ok and "anchored head" in (rewritten.problem or "")
    assert not verify(engine, sealed, anchor="00" * 32).ok


def test_a_changed_chain_record_breaks_the_chain(engine: sa.Engine, sealed: sa.Table) -> None:
    as_owner(engine, "UPDATE sqlalchemy_postgresql_audit_seals SET row_count = 5")
    report = verify(engine, sealed)
    assert not report.ok and report.first_broken == ("accounts_audit", None)
    assert report.head is not None  # the head as stored, to compare with the anchors


def test_a_slow_committer_never_falls_into_a_gap(engine: sa.Engine) -> None:
    table = accounts()
    table.metadata.create_all(engine)
    write(engine, table, 1)  # ids 1, 2
    with engine.connect() as slow:
        slow_transaction = slow.begin()
        slow.execute(table.insert().values(id=2, owner="slow", balance=0))  # id 3, uncommitted
        write(engine, table, 3)  # ids 4, 5, committed before the slow one
        (first,) = seal(engine, table)
        assert first.sealed_to == 2  # the open transaction's id 3 stops the seal
        slow_transaction.commit()
    (second,) = seal(engine, table)
    assert second.sealed_to == 5 and second.rows == 3
    report = verify(engine, table)
    assert report.ok and report.sealed_rows == 5


def test_ids_of_transactions_that_rolled_back_stop_the_seal_only_until_the_next_run(
    engine: sa.Engine,
) -> None:
    table = accounts()
    table.metadata.create_all(engine)
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(table.insert().values(id=1, owner="gone", balance=0))  # id 1
        transaction.rollback()
    write(engine, table, 2)  # ids 2, 3
    (first,) = seal(engine, table)
    assert first.rows == 0  # id 1 could still be running, as far as this run can tell
    (second,) = seal(engine, table)
    assert second.rows == 2 and second.sealed_to == 3
    assert verify(engine, table).ok


def test_a_reader_idle_in_its_transaction_does_not_hold_sealing_back(engine: sa.Engine) -> None:
    table = accounts()
    table.metadata.create_all(engine)
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(table.insert().values(id=1, owner="gone", balance=0))  # id 1
        transaction.rollback()
    with engine.connect() as reader:
        reader.execute(sa.text("SELECT 1"))  # a transaction left open, without an xid
        write(engine, table, 2)  # ids 2, 3
        seal(engine, table)
        (second,) = seal(engine, table)
        assert second.sealed_to == 3 and second.rows == 2


def prepared_transactions(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        if int(connection.execute(sa.text("SHOW max_prepared_transactions")).scalar_one()) == 0:
            pytest.skip("the server does not allow prepared transactions")


@pytest.mark.parametrize("restarted", [False, True], ids=["running", "after-restart"])
def test_a_prepared_transaction_holds_the_horizon_until_it_ends(
    engine: sa.Engine, restarted: bool
) -> None:
    prepared_transactions(engine)
    table = accounts()
    table.metadata.create_all(engine)
    write(engine, table, 1)  # ids 1, 2
    with engine.connect() as writer:
        writer.execute(table.insert().values(id=2, owner="slow", balance=0))  # id 3
        seal(engine, table)  # its candidate lists the writer
        writer.execute(sa.text("PREPARE TRANSACTION 'slow_writer'"))
        writer.commit()
    write(engine, table, 3)  # ids 4, 5
    if restarted:  # as a restart looks to the next run: the server started after the candidate
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE sqlalchemy_postgresql_audit_seal_pending "
                    "SET server_started = server_started - interval '1 hour'"
                )
            )
    try:
        (held,) = seal(engine, table)
    finally:
        with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
            connection.execute(sa.text("COMMIT PREPARED 'slow_writer'"))
    assert held.sealed_to == 2
    seal(engine, table)
    (after,) = seal(engine, table)
    assert after.sealed_to == 5
    assert verify(engine, table).ok


def test_a_sequence_that_caches_values_is_refused(engine: sa.Engine) -> None:
    table = accounts()
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        sequence = connection.execute(
            sa.text("SELECT pg_get_serial_sequence('accounts_audit', 'audit_id')")
        ).scalar_one()
        connection.execute(sa.text(f"ALTER SEQUENCE {sequence} CACHE 5"))
    with pytest.raises(AuditError, match="caches 5 values"):
        seal(engine, table)


# Partitioned audit tables: segments per partition, retention recorded in the chain.

NOW = datetime.datetime(2026, 3, 4, 12, tzinfo=UTC)


def move_last_row_to(engine: sa.Engine, moment: datetime.datetime) -> None:
    as_owner(
        engine,
        "UPDATE accounts_audit SET audit_operation_timestamp = "
        f"'{moment.isoformat()}' WHERE audit_id = (SELECT max(audit_id) FROM accounts_audit)",
    )


def weekly(engine: sa.Engine) -> sa.Table:
    """Rows in three weekly partitions: ids 1 (two weeks back), 2 (a week back), 3 (now)."""
    table = accounts(partition="week", retention=datetime.timedelta(weeks=1))
    table.metadata.create_all(engine)
    maintain(engine, table, at=NOW - datetime.timedelta(weeks=2))
    for key, weeks in ((1, 2), (2, 1), (3, 0)):
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=key, owner=f"owner {key}", balance=key))
        move_last_row_to(engine, NOW - datetime.timedelta(weeks=weeks))
    return table


def test_partitions_get_segments_and_retention_records_the_drop(engine: sa.Engine) -> None:
    table = weekly(engine)
    (done,) = seal(engine, table)
    assert done.rows == 3 and len(done.segments) == 3
    assert verify(engine, table).ok
    (retained,) = maintain(engine, table, at=NOW + datetime.timedelta(days=1))
    assert len(retained.dropped) == 1
    report = verify(engine, table)
    assert report.ok, report.problem
    with engine.connect() as connection:
        kinds = connection.execute(
            sa.text("SELECT kind FROM sqlalchemy_postgresql_audit_seals ORDER BY seal_id")
        ).scalars()
        assert list(kinds) == ["S", "S", "S", "R"]
    write(engine, table, 4)  # after the retention marker, sealing goes on
    maintain(engine, table, at=NOW + datetime.timedelta(days=1))
    seal(engine, table)
    assert verify(engine, table).ok


def test_a_partition_dropped_outside_retention_is_caught(engine: sa.Engine) -> None:
    table = weekly(engine)
    seal(engine, table)
    with engine.connect() as connection:
        oldest = connection.execute(
            sa.text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'accounts_audit'::regclass AND c.relname <> "
                "'accounts_audit_default' ORDER BY 1 LIMIT 1"
            )
        ).scalar_one()
    as_owner(
        engine, f"ALTER TABLE accounts_audit DETACH PARTITION {oldest}", f"DROP TABLE {oldest}"
    )
    report = verify(engine, table)
    assert not report.ok and report.first_broken == ("accounts_audit", 1)


def test_record_removed_partition_records_nothing_for_a_table_never_sealed(
    engine: sa.Engine,
) -> None:
    table = weekly(engine)
    seal(engine, table)
    with engine.begin() as connection:
        record_removed_partition(connection, table.info["audit.table"], "accounts")
        kinds = connection.execute(
            sa.text("SELECT kind FROM sqlalchemy_postgresql_audit_seals")
        ).scalars()
        assert "R" not in list(kinds)


def test_seal_waits_for_maintain_to_drain_the_default_partition(engine: sa.Engine) -> None:
    table = accounts(partition="week")
    table.metadata.create_all(engine)
    write(engine, table, 1)  # lands in DEFAULT: no partition exists yet
    (before,) = seal(engine, table)
    assert before.rows == 0
    maintain(engine, table)
    (after,) = seal(engine, table)
    assert after.rows == 2 and verify(engine, table).ok


def test_a_punctured_key_tree_keeps_every_other_leaf() -> None:
    root = bytes(range(32))
    whole = KeyTree(tree_depth(0, 100), {(0, 0): root})
    leaves = [whole.leaf(i) for i in range(100)]
    assert len(set(leaves)) == 100
    punctured = KeyTree(whole.depth, {(0, 0): root})
    for gone in (0, 37, 38, 99):
        assert punctured.puncture(gone) == leaves[gone]
        assert punctured.puncture(gone) is None
    stored = KeyTree(punctured.depth, punctured.frontier)  # as read back from the database
    assert [stored.leaf(i) for i in range(100)] == [
        None if i in (0, 37, 38, 99) else leaves[i] for i in range(100)
    ]
    assert root not in stored.frontier.values()


def oldest_partition(engine: sa.Engine) -> tuple[str, str]:
    """The name and bound of the oldest range partition of ``accounts_audit``."""
    with engine.connect() as connection:
        found = connection.execute(
            sa.text(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'accounts_audit'::regclass AND c.relname <> "
                "'accounts_audit_default' ORDER BY 1 LIMIT 1"
            )
        ).one()
    return found[0], found[1]


def test_recording_a_partition_still_attached_as_removed_is_refused(engine: sa.Engine) -> None:
    table = weekly(engine)
    seal(engine, table)
    oldest, _ = oldest_partition(engine)
    with engine.begin() as connection, pytest.raises(AuditError, match="still attached"):
        record_removed_partition(connection, table.info["audit.table"], oldest)


def test_rows_still_there_in_a_partition_recorded_as_removed_break_verify(
    engine: sa.Engine,
) -> None:
    table = weekly(engine)
    seal(engine, table)
    anchor = verify(engine, table).head
    oldest, bound = oldest_partition(engine)
    with engine.begin() as connection:  # detach, record, attach again, then rewrite its rows
        connection.execute(sa.text(f"ALTER TABLE accounts_audit DETACH PARTITION {oldest}"))
        record_removed_partition(connection, table.info["audit.table"], oldest)
        connection.execute(sa.text(f"ALTER TABLE accounts_audit ATTACH PARTITION {oldest} {bound}"))
    as_owner(engine, f"UPDATE {oldest} SET balance = 0")
    report = verify(engine, table, anchor=anchor)
    assert not report.ok and report.first_broken == ("accounts_audit", 1)
    assert "recorded as removed" in (report.problem or "")


def test_retention_reports_the_partitions_it_removed(engine: sa.Engine) -> None:
    table = weekly(engine)
    seal(engine, table)
    maintain(engine, table, at=NOW + datetime.timedelta(days=1))
    report = verify(engine, table)
    assert report.ok and [(r.audit_table, r.rows) for r in report.removed] == [
        ("accounts_audit", 1)
    ]


def test_an_erasure_record_authorises_only_the_rows_and_columns_it_erased(
    engine: sa.Engine, sealed: sa.Table
) -> None:
    done = erase(engine, sealed, 1, columns=["owner"], reason="request")
    anchor = verify(engine, sealed).head
    with engine.begin() as connection:  # the owner reuses its marker for another row
        _chain.canonical_text(connection, None)
        (segment,) = [r for r in _chain.records(connection, None) if r.kind == "S"]
        tree = _chain.key_trees(connection, None, [segment])[segment.seal_id]
        key = tree.leaf(4 - segment.range_low - 1)
        assert key is not None
        balance = connection.execute(
            sa.text("SELECT balance::text FROM accounts_audit WHERE audit_id = 4")
        ).scalar_one()
        keys = {column: column_key(key, column) for column in segment.columns}
        connection.execute(
            sa.insert(_chain.erased_table(None)).values(
                audit_table="accounts_audit",
                audit_id=4,
                marker_id=done.marker_id,
                kept_keys={c: k.hex() for c, k in keys.items() if c != "balance"},
                commitments={"balance": commitment(keys["balance"], balance).hex()},
            )
        )
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(sa.text("UPDATE accounts_audit SET balance = NULL WHERE audit_id = 4"))
    report = verify(engine, sealed, anchor=anchor)
    assert not report.ok and report.first_broken == ("accounts_audit", 4)


def test_a_column_added_after_sealing_stays_empty_in_sealed_rows(
    engine: sa.Engine, sealed: sa.Table
) -> None:
    as_owner(engine, "ALTER TABLE accounts_audit ADD COLUMN bonus integer")
    assert verify(engine, sealed).ok  # a new column is NULL in the rows before it
    as_owner(engine, "UPDATE accounts_audit SET bonus = 1 WHERE audit_id = 2")
    report = verify(engine, sealed)
    assert not report.ok and report.first_broken == ("accounts_audit", 2)


def test_values_are_read_the_same_whatever_the_caller_search_path(engine: sa.Engine) -> None:
    table = sa.Table(
        "relations",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("rel", postgresql.REGCLASS),
        info={"audit.options": {"enabled": True}},
    )
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE SCHEMA elsewhere"))
        connection.execute(sa.text("CREATE TABLE elsewhere.target (id int)"))
        connection.execute(sa.text("INSERT INTO relations VALUES (1, 'elsewhere.target')"))
    seal(engine, table)
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL search_path = elsewhere, public"))
        report = verify(connection, table)  # the value prints as "target" on this path
    assert report.ok, report.problem


def test_seal_on_a_connection_outside_a_transaction_commits(
    engine: sa.Engine,
) -> None:
    table = accounts()
    table.metadata.create_all(engine)
    write(engine, table, 1)
    with engine.connect() as connection:
        (done,) = seal(connection, table)
    assert done.rows == 2
    (again,) = seal(engine, table)
    assert again.rows == 0 and again.head == done.head


def test_seal_and_verify_take_a_session_and_a_mapped_class(engine: sa.Engine) -> None:
    class Base(DeclarativeBase):
        pass

    class Account(Base):
        __table__ = accounts()

    Account.__table__.metadata.create_all(engine)
    write(engine, Account.__table__, 1)
    with Session(engine) as session:
        (done,) = seal(session, Account)
        session.commit()
    assert done.rows == 2
    with Session(engine) as session:
        assert verify(session, Account).sealed_rows == 2
    with pytest.raises(TypeError, match="mapped class"):
        seal(engine, object())


def test_seal_refuses_to_extend_a_chain_whose_records_no_longer_link(
    engine: sa.Engine, sealed: sa.Table
) -> None:
    as_owner(engine, "UPDATE sqlalchemy_postgresql_audit_seals SET row_count = 5")
    write(engine, sealed, 4)
    with pytest.raises(AuditError, match="broken at its record 1"):
        seal(engine, sealed)


def test_verify_reports_rows_not_sealed(engine: sa.Engine) -> None:
    table = accounts()
    table.metadata.create_all(engine)
    write(engine, table, 1)
    report = verify(engine, table)  # never sealed: no chain at all
    assert report.ok and report.sealed_rows == 0 and report.unsealed_rows == 2
    seal(engine, table)
    write(engine, table, 2)
    report = verify(engine, table)
    assert report.sealed_rows == 2 and report.unsealed_rows == 2


def test_an_anchor_is_read_in_any_case_and_malformed_ones_are_refused(
    engine: sa.Engine, sealed: sa.Table
) -> None:
    head = verify(engine, sealed).head
    assert head is not None
    assert verify(engine, sealed, anchor=f"  {head.upper()}\n").ok
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        verify(engine, sealed, anchor="abc")


CLI_MODELS = """
import sqlalchemy as sa

metadata = sa.MetaData()
sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.String),
    sa.Column("balance", sa.Integer),
    info={"audit.options": {"enabled": True, "append_only": True}},
)
"""


def test_cli_verify_says_what_is_not_sealed_and_reads_anchors_leniently(
    engine: sa.Engine, database_url: Any, tmp_path: Any
) -> None:
    (tmp_path / "sealmodels.py").write_text(CLI_MODELS)
    target, url = "sealmodels:metadata", ["--url", url_text(database_url)]
    table = accounts()
    table.metadata.create_all(engine)
    write(engine, table, 1)
    unsealed = run("verify", target, *url, path=tmp_path)
    assert unsealed.returncode == 1 and "nothing is sealed, and 2 rows" in unsealed.stdout
    assert "run seal" in unsealed.stdout
    assert run("seal", target, *url, path=tmp_path).returncode == 0
    write(engine, table, 2)
    head = json.loads(run("--json", "verify", target, *url, path=tmp_path).stdout)["head"]
    padded = run("verify", target, "--anchor", f" {head.upper()} ", *url, path=tmp_path)
    assert padded.returncode == 0, padded.stdout + padded.stderr
    assert "verified 2 sealed rows; 2 rows not sealed yet (run seal)" in padded.stdout
    malformed = run("verify", target, "--anchor", "xyz", *url, path=tmp_path)
    assert malformed.returncode == 2 and "64 hexadecimal digits" in malformed.stderr
    as_owner(engine, "DELETE FROM accounts_audit WHERE audit_id = 2")
    broken = run("verify", target, *url, path=tmp_path)
    assert broken.returncode == 1 and "BROKEN in accounts_audit at audit_id 2" in broken.stdout


def test_one_transaction_seals_and_verifies_tables_of_several_schemas(engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    for schema in ("elsewhere", None):
        sa.Table(
            "ledger",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            schema=schema,
            info={"audit.options": {"enabled": True}},
        )
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE SCHEMA elsewhere"))
    metadata.create_all(engine)
    with engine.begin() as connection:
        for name in ("elsewhere.ledger", "ledger"):
            connection.execute(sa.text(f"INSERT INTO {name} VALUES (1)"))
    with engine.begin() as connection:  # the schema of the first pins the path for the second
        path = connection.execute(sa.text("SHOW search_path")).scalar_one()
        assert [done.rows for done in seal(connection, metadata)] == [1, 1]
        report = verify(connection, metadata)
        assert connection.execute(sa.text("SHOW search_path")).scalar_one() == path
    assert report.ok and report.sealed_rows == 2, report.problem
