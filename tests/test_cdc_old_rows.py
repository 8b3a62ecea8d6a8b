"""Old rows of a CDC table's UPDATEs and DELETEs, where the decoder rebuilds them from the
trail: the ``replica_identity`` option, the removals that would take what it rebuilds from,
the baseline installing records, and ``record_baseline`` while the consumer lags."""

from __future__ import annotations

import contextlib
import datetime
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from alembic_env import make_project
from cdc_decoder_setup import decoder, drop_slot
from sqlalchemy_postgresql_audit import (
    AUDIT_TABLE_KEY,
    AuditConfigurationError,
    AuditError,
    erase,
    install_audit_triggers,
    maintain,
    record_baseline,
)
from sqlalchemy_postgresql_audit.cdc import create_slot
from sqlalchemy_postgresql_audit.declare.declaration import declare_metadata
from sqlalchemy_postgresql_audit.install.publication import captured_states
from sqlalchemy_postgresql_audit.lifecycle.maintenance import MaintenanceError
from sqlalchemy_postgresql_audit.retention import purge_audit_history

UTC = datetime.timezone.utc


@pytest.fixture
def engine(logical_database_url: URL) -> Iterator[sa.Engine]:
    engine = sa.create_engine(logical_database_url)
    yield engine
    engine.dispose()


def declare(
    metadata: sa.MetaData | None = None,
    *,
    key: sa.PrimaryKeyConstraint | None = None,
    **options: Any,
) -> sa.Table:
    metadata = metadata or sa.MetaData(
        naming_convention={"audit.slot": f"s_{uuid.uuid4().hex[:12]}"}
    )
    return sa.Table(
        "acct",
        metadata,
        sa.Column("id", sa.Integer, primary_key=key is None, autoincrement=False),
        sa.Column("v", sa.Integer),
        *([key] if key is not None else []),
        info={"audit.options": {"enabled": True, **options}},
    )


def trail(engine: sa.Engine, table: sa.Table) -> list[tuple[Any, ...]]:
    audit = table.info[AUDIT_TABLE_KEY]
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(audit.c.audit_operation, audit.c.id, audit.c.v).order_by(audit.c.audit_id)
        )
        return [tuple(r) for r in rows]


def identity(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        return str(
            connection.exec_driver_sql(
                "SELECT relreplident FROM pg_class WHERE oid = 'acct'::regclass"
            ).scalar_one()
        )


@pytest.mark.parametrize(
    ("options", "key", "fragment"),
    [
        ({"replica_identity": "full"}, None, "applies only to mode='cdc'"),
        ({"mode": "cdc", "replica_identity": "nothing"}, None, "must be one of 'default', 'full'"),
        (
            {"mode": "cdc", "replica_identity": "default", "operations": ["UPDATE", "DELETE"]},
            None,
            "INSERT is not among its operations",
        ),
        (
            {"mode": "cdc", "replica_identity": "default"},
            sa.PrimaryKeyConstraint("id", deferrable=True),
            "deferrable",
        ),
    ],
)
def test_replica_identity_is_refused_where_it_cannot_work(
    options: dict[str, Any], key: sa.PrimaryKeyConstraint | None, fragment: str
) -> None:
    with pytest.raises(AuditConfigurationError) as caught:
        declare_metadata(declare(key=key, **options).metadata)
    assert (caught.value.table, caught.value.key) == ("acct", "replica_identity")
    assert fragment in str(caught.value)


def test_default_replica_identity_without_a_primary_key_is_refused() -> None:
    with pytest.raises(AuditConfigurationError, match="no primary key") as caught:
        sa.Table(
            "acct",
            sa.MetaData(),
            sa.Column("id", sa.Integer),
            info={"audit.options": {"enabled": True, "mode": "cdc", "replica_identity": "default"}},
        )
    assert caught.value.key == "replica_identity"


def states(engine: sa.Engine, table: sa.Table) -> list[Any]:
    with engine.connect() as connection:
        return captured_states(connection, "audit_cdc", table, table.info["audit.spec"], "public")


def test_declared_full_is_installed_and_is_no_drift(engine: sa.Engine) -> None:
    table = declare(mode="cdc", replica_identity="full")
    table.metadata.create_all(engine)
    try:
        assert identity(engine) == "f"
        assert [s.state for s in states(engine, table)] == ["ok"] * 4
        # Changed by hand: drift, with both ways back.
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE acct REPLICA IDENTITY DEFAULT")
        (drift,) = [s for s in states(engine, table) if s.kind == "replica identity"]
        assert drift.state == "outdated"
        assert "not FULL as declared" in drift.reasons[0]
        assert "install again, or declare replica_identity='default'" in drift.reasons[0]
    finally:
        drop_slot(engine, table.metadata)


def test_a_table_not_auditing_insert_gets_full_and_its_updates_decode(engine: sa.Engine) -> None:
    """The trail of a table that does not audit INSERT never holds the version an UPDATE's old
    row would be rebuilt from: such a table is published FULL, and the decoder goes on."""
    table = declare(mode="cdc", operations=["UPDATE", "DELETE"])
    table.metadata.create_all(engine)
    try:
        assert identity(engine) == "f"
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, v=1))
        decoder(engine, table.metadata).run_once()
        with engine.begin() as connection:
            connection.execute(table.update().values(v=2))
            connection.execute(table.delete())
        decoder(engine, table.metadata).run_once()
        assert trail(engine, table) == [("U", 1, 2), ("D", 1, 2)]
    finally:
        drop_slot(engine, table.metadata)


def test_alembic_publishes_the_declared_identity_and_sees_no_drift(
    tmp_path: Path, engine: sa.Engine
) -> None:
    slot = f"s_{uuid.uuid4().hex[:12]}"

    def models() -> sa.MetaData:
        metadata = sa.MetaData(naming_convention={"audit.slot": slot})
        declare(metadata, mode="cdc", replica_identity="full")
        return metadata

    project = make_project(tmp_path, engine.url)
    create_slot(engine, models())
    try:
        script = project.revision(models(), "cdc, full")
        assert "replica_identity='full'" in script
        project.upgrade(models())
        assert identity(engine) == "f"
        project.check(models())
    finally:
        drop_slot(engine, models())


def test_alembic_switches_the_identity_and_its_downgrade_switches_it_back(
    tmp_path: Path, engine: sa.Engine
) -> None:
    """A changed ``replica_identity`` republishes the table with the new identity; the
    downgrade puts the old one back and leaves the table published."""
    slot = f"s_{uuid.uuid4().hex[:12]}"

    def models(**options: Any) -> sa.MetaData:
        metadata = sa.MetaData(naming_convention={"audit.slot": slot})
        declare(metadata, mode="cdc", **options)
        return metadata

    project = make_project(tmp_path, engine.url)
    create_slot(engine, models())
    try:
        project.revision(models(), "cdc")
        project.upgrade(models())
        assert identity(engine) == "d"
        switched = project.revision(models(replica_identity="full"), "full")
        assert "replaces_identity='default'" in switched
        assert "op.unpublish_audit_table(" not in switched
        project.upgrade(models(replica_identity="full"))
        assert identity(engine) == "f"
        project.check(models(replica_identity="full"))
        project.downgrade(models(), "-1")
        assert identity(engine) == "d"
        with engine.connect() as connection:
            published = connection.exec_driver_sql(
                "SELECT tablename FROM pg_publication_tables WHERE pubname = 'audit_cdc'"
            )
            assert published.scalars().all() == ["acct"]
    finally:
        drop_slot(engine, models())


def test_python_install_records_the_baseline_of_rows_a_table_already_has(
    engine: sa.Engine,
) -> None:
    """A table with rows switched to CDC by ``install_audit_triggers``: its rows get ``B``
    versions in the installing transaction, so their first UPDATE and DELETE decode."""
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE acct (id integer PRIMARY KEY, v integer)")
        connection.exec_driver_sql("INSERT INTO acct VALUES (1, 1), (2, 2)")
    table = declare(mode="cdc")
    table.info[AUDIT_TABLE_KEY].create(engine)
    install_audit_triggers(table.metadata, engine)
    try:
        install_audit_triggers(table.metadata, engine)  # published already: no second baseline
        with engine.begin() as connection:
            connection.execute(table.update().where(table.c.id == 1).values(v=10))
            connection.execute(table.delete().where(table.c.id == 2))
        decoder(engine, table.metadata).run_once()
        assert trail(engine, table) == [("B", 1, 1), ("B", 2, 2), ("U", 1, 10), ("D", 2, 2)]
    finally:
        drop_slot(engine, table.metadata)


def decoded(engine: sa.Engine, **options: Any) -> sa.Table:
    """Rows 1 and 2 of a CDC table, decoded into its trail (back-dated a week, so a purge or
    retention has something to remove)."""
    table = declare(mode="cdc", **options)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "v": 1}, {"id": 2, "v": 2}])
    decoder(engine, table.metadata).run_once()
    audit = table.info[AUDIT_TABLE_KEY]
    with engine.begin() as connection:
        week_ago = datetime.datetime.now(UTC) - datetime.timedelta(weeks=2)
        connection.execute(audit.update().values(audit_operation_timestamp=week_ago))
    return table


@contextlib.contextmanager
def consuming(engine: sa.Engine, metadata: sa.MetaData) -> Iterator[None]:
    """A decoder running in a thread, as in production: under FULL a removal waits until its
    slot has passed the WAL written before it."""
    stop = threading.Event()
    worker = threading.Thread(target=decoder(engine, metadata).run, args=(stop,))
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()


def purge(engine: sa.Engine, table: sa.Table) -> int:
    with engine.begin() as connection:
        before = datetime.datetime.now(UTC) - datetime.timedelta(days=1)
        return purge_audit_history(connection, table, before=before)


def test_purge_is_refused_where_the_decoder_rebuilds_old_rows_from_the_trail(
    engine: sa.Engine,
) -> None:
    table = decoded(engine)
    try:
        with pytest.raises(AuditError, match="replica_identity='full'") as caught:
            purge(engine, table)
        assert "'acct'" in str(caught.value) and "nothing was removed" in str(caught.value)
        assert len(trail(engine, table)) == 2
        # The decoder goes on: the DELETE's old row is still in the trail.
        with engine.begin() as connection:
            connection.execute(table.delete().where(table.c.id == 1))
        decoder(engine, table.metadata).run_once()
        assert trail(engine, table)[-1] == ("D", 1, 1)
        # Erasure is a legal duty: not refused; the decoder then carries its NULLs.
        with engine.begin() as connection:
            erase(connection, table, 2, reason="request 7")
        with engine.begin() as connection:
            connection.execute(table.delete().where(table.c.id == 2))
        decoder(engine, table.metadata).run_once()
        assert trail(engine, table)[-1] == ("D", 2, None)
    finally:
        drop_slot(engine, table.metadata)


def test_purge_works_where_old_rows_come_from_the_wal(engine: sa.Engine) -> None:
    table = decoded(engine, replica_identity="full")
    try:
        with consuming(engine, table.metadata):
            assert purge(engine, table) == 2
        with engine.begin() as connection:
            connection.execute(table.delete().where(table.c.id == 1))
        decoder(engine, table.metadata).run_once()
        assert trail(engine, table)[-1] == ("D", 1, 1)
    finally:
        drop_slot(engine, table.metadata)


def test_purge_works_where_the_table_is_not_published(engine: sa.Engine) -> None:
    """As on design 1's target, where the audit table is written by the replica's triggers
    and no decoder reads the table here."""
    table = decoded(engine)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER PUBLICATION audit_cdc DROP TABLE acct")
        assert purge(engine, table) == 2
    finally:
        drop_slot(engine, table.metadata)


def test_retention_is_refused_where_the_decoder_rebuilds_old_rows_from_the_trail(
    engine: sa.Engine,
) -> None:
    table = decoded(engine, partition="week", retention=datetime.timedelta(weeks=1))
    try:
        later = datetime.datetime.now(UTC) + datetime.timedelta(weeks=5)
        with pytest.raises(MaintenanceError, match="maintain's retention: refused"):
            maintain(engine, table, at=later)
        assert len(trail(engine, table)) == 2
    finally:
        drop_slot(engine, table.metadata)


def test_retention_works_where_old_rows_come_from_the_wal(engine: sa.Engine) -> None:
    table = decoded(
        engine, partition="week", retention=datetime.timedelta(weeks=1), replica_identity="full"
    )
    try:
        later = datetime.datetime.now(UTC) + datetime.timedelta(weeks=5)
        with consuming(engine, table.metadata):
            (done,) = maintain(engine, table, at=later)
        assert done.dropped
        assert [row[0] for row in trail(engine, table)] == ["X"]
    finally:
        drop_slot(engine, table.metadata)


def test_a_baseline_waits_for_the_consumer_to_write_what_committed_before_it(
    engine: sa.Engine,
) -> None:
    """The consumer lags: an UPDATE of row 1 and an INSERT of row 2 are committed, not written.
    The baseline waits (after its lock) until a consumer has written them, then records
    nothing: the trail is I 1, U 1, I 2, in commit order."""
    table = declare(mode="cdc")
    table.metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, v=1))
        decoder(engine, table.metadata).run_once()
        with engine.begin() as connection:
            connection.execute(table.update().values(v=2))
            connection.execute(table.insert().values(id=2, v=20))
        done = threading.Event()

        def consume() -> None:
            # Starts once the baseline holds its lock, so it cannot have run before it.
            with engine.connect() as watcher:
                while (
                    not done.is_set()
                    and not watcher.exec_driver_sql(
                        "SELECT EXISTS (SELECT FROM pg_locks WHERE relation = 'acct'::regclass "
                        "AND mode = 'ShareLock' AND granted)"
                    ).scalar_one()
                ):
                    watcher.rollback()
            while not done.is_set():
                decoder(engine, table.metadata).run_once()

        consumer = threading.Thread(target=consume)
        consumer.start()
        try:
            with engine.begin() as connection:
                assert record_baseline(connection, table) == 0
        finally:
            done.set()
            consumer.join()
        decoder(engine, table.metadata).run_once()
        assert trail(engine, table) == [("I", 1, 1), ("U", 1, 2), ("I", 2, 20)]
    finally:
        drop_slot(engine, table.metadata)


def test_a_baseline_names_the_slot_when_no_consumer_catches_up(engine: sa.Engine) -> None:
    table = declare(mode="cdc")
    table.metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, v=1))
        with (
            engine.begin() as connection,
            pytest.raises(AuditError, match="Run the consumer first") as caught,
        ):
            record_baseline(connection, table, timeout=0.2)
        assert repr(table.metadata.naming_convention["audit.slot"]) in str(caught.value)
        assert trail(engine, table) == []
    finally:
        drop_slot(engine, table.metadata)


def test_a_baseline_of_rows_older_than_the_slot_does_not_wait(engine: sa.Engine) -> None:
    """Rows written while there was no slot (it was dropped, and installing made a new one):
    nothing of them can be waiting for the consumer, so the baseline records them at once."""
    table = declare(mode="cdc")
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "v": 1}, {"id": 2, "v": 2}])
    drop_slot(engine, table.metadata)
    table.metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            assert record_baseline(connection, table, timeout=0) == 2
    finally:
        drop_slot(engine, table.metadata)


def test_a_baseline_leaves_out_the_rows_its_own_transaction_wrote(engine: sa.Engine) -> None:
    """Rows a transaction wrote (itself or in a savepoint) reach the trail through the consumer
    as their INSERT and UPDATE once it commits: its baseline records no B for them, and does
    not wait for a consumer that cannot decode them yet.  Row 3, written while there was no
    slot, is still recorded."""
    table = declare(mode="cdc")
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=3, v=3))
    drop_slot(engine, table.metadata)
    table.metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.execute(table.insert(), [{"id": 1, "v": 1}, {"id": 2, "v": 2}])
            with connection.begin_nested():
                connection.execute(table.update().where(table.c.id == 1).values(v=10))
            assert record_baseline(connection, table, timeout=0.2) == 1
        decoder(engine, table.metadata).run_once()
        assert trail(engine, table) == [("B", 3, 3), ("I", 1, 1), ("I", 2, 2), ("U", 1, 10)]
    finally:
        drop_slot(engine, table.metadata)


def test_a_baseline_after_a_rewrite_in_its_transaction_records_the_rewritten_rows(
    engine: sa.Engine,
) -> None:
    """A rewrite gives every row the transaction's xmin too, but the WAL never carries it: with
    no INSERT or UPDATE of the table in the transaction, its rows are compared as before."""
    table = declare(mode="cdc")
    table.metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.execute(table.insert(), [{"id": 1, "v": 1}, {"id": 2, "v": 2}])
        decoder(engine, table.metadata).run_once()
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE acct ALTER COLUMN v TYPE integer USING v * 10")
            assert record_baseline(connection, table, timeout=5) == 2
        assert trail(engine, table)[2:] == [("B", 1, 10), ("B", 2, 20)]
    finally:
        drop_slot(engine, table.metadata)


def test_purge_after_the_switch_to_full_waits_for_the_default_identity_changes(
    engine: sa.Engine,
) -> None:
    """A DELETE and an UPDATE logged while the identity was DEFAULT carry only the key, and
    the decoder rebuilds their old rows from the trail even after the switch to FULL: a purge
    is refused, naming the slot, until the consumer has passed them."""
    table = decoded(engine)
    try:
        with engine.begin() as connection:
            connection.execute(table.delete().where(table.c.id == 1))
            connection.execute(table.update().where(table.c.id == 2).values(v=20))
        convention = table.metadata.naming_convention
        full = declare(
            sa.MetaData(naming_convention=convention), mode="cdc", replica_identity="full"
        )
        install_audit_triggers(full.metadata, engine)
        assert identity(engine) == "f"
        slot = full.metadata.naming_convention["audit.slot"]
        before = datetime.datetime.now(UTC) - datetime.timedelta(days=1)
        with (
            engine.begin() as connection,
            pytest.raises(AuditError, match="has not passed") as caught,
        ):
            purge_audit_history(connection, full, before=before, timeout=0.2)
        assert repr(slot) in str(caught.value) and "nothing was removed" in str(caught.value)
        assert len(trail(engine, full)) == 2
        with consuming(engine, full.metadata):
            assert purge(engine, full) == 2
        assert trail(engine, full) == [("D", 1, 1), ("U", 2, 20), ("P", None, None)]
        with engine.begin() as connection:
            connection.execute(full.delete().where(full.c.id == 2))
        decoder(engine, full.metadata).run_once()
        assert trail(engine, full)[-1] == ("D", 2, 20)
    finally:
        drop_slot(engine, table.metadata)


def purged_under_full(engine: sa.Engine, metadata: sa.MetaData) -> sa.Table:
    """Rows 1 and 2 of a table published with FULL, their versions purged."""
    table = declare(metadata, mode="cdc", replica_identity="full")
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "v": 1}, {"id": 2, "v": 2}])
    decoder(engine, metadata).run_once()
    with consuming(engine, metadata):
        with engine.begin() as connection:
            audit = table.info[AUDIT_TABLE_KEY]
            week_ago = datetime.datetime.now(UTC) - datetime.timedelta(weeks=2)
            connection.execute(audit.update().values(audit_operation_timestamp=week_ago))
        assert purge(engine, table) == 2
    assert trail(engine, table) == [("P", None, None)]
    return table


def test_switching_back_to_default_records_the_rows_the_trail_lost(engine: sa.Engine) -> None:
    """FULL, a purge, then DEFAULT again: the decoder would rebuild the old rows of a DELETE
    from versions the purge removed.  Installing the switch records them as B versions."""
    convention = {"audit.slot": f"s_{uuid.uuid4().hex[:12]}"}
    metadata = sa.MetaData(naming_convention=convention)
    try:
        purged_under_full(engine, metadata)
        table = declare(sa.MetaData(naming_convention=convention), mode="cdc")
        install_audit_triggers(table.metadata, engine)
        assert identity(engine) == "d"
        with engine.begin() as connection:
            connection.execute(table.delete().where(table.c.id == 1))
        decoder(engine, table.metadata).run_once()
        assert trail(engine, table)[1:] == [("B", 1, 1), ("B", 2, 2), ("D", 1, 1)]
    finally:
        drop_slot(engine, metadata)


def test_alembic_downgrade_back_to_default_records_the_rows_the_trail_lost(
    tmp_path: Path, engine: sa.Engine
) -> None:
    """The autogenerated revision switching to FULL keeps a baseline whose reverse records the
    rows the trail lacks when its downgrade puts DEFAULT back."""
    slot = f"s_{uuid.uuid4().hex[:12]}"

    def models(**options: Any) -> sa.MetaData:
        metadata = sa.MetaData(naming_convention={"audit.slot": slot})
        declare(metadata, mode="cdc", **options)
        return metadata

    project = make_project(tmp_path, engine.url)
    create_slot(engine, models())
    try:
        project.revision(models(), "cdc")
        project.upgrade(models())
        switched = project.revision(models(replica_identity="full"), "full")
        assert "op.record_audit_baseline(" in switched
        project.upgrade(models(replica_identity="full"))
        full = models(replica_identity="full")
        table = full.tables["acct"]
        with engine.begin() as connection:
            connection.execute(table.insert(), [{"id": 1, "v": 1}, {"id": 2, "v": 2}])
        decoder(engine, full).run_once()
        with consuming(engine, full):
            with engine.begin() as connection:
                audit = table.info[AUDIT_TABLE_KEY]
                week_ago = datetime.datetime.now(UTC) - datetime.timedelta(weeks=2)
                connection.execute(audit.update().values(audit_operation_timestamp=week_ago))
            assert purge(engine, table) == 2
        project.downgrade(models(), "-1")
        assert identity(engine) == "d"
        with engine.begin() as connection:
            connection.execute(table.delete().where(table.c.id == 1))
        decoder(engine, full).run_once()
        assert trail(engine, table)[1:] == [("B", 1, 1), ("B", 2, 2), ("D", 1, 1)]
    finally:
        drop_slot(engine, models())


def test_purge_declares_a_table_whose_options_came_after_it_was_defined(
    engine: sa.Engine,
) -> None:
    """Models defined before ``enable()`` (or options set late) are declared on demand, as
    the history API does, instead of being called "not audited"."""
    table = declare()
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, v=1))
    late = sa.Table(
        "acct",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Integer),
    )
    late.info["audit.options"] = {"enabled": True}
    with engine.begin() as connection:
        now = datetime.datetime.now(UTC)
        assert purge_audit_history(connection, late, before=now) == 1
