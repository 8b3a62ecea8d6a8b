"""The decoder at the edges of its slot and publication: names that need quoting, a slot made
again or moved by hand behind its back, and a table that joins the publication while it runs."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from cdc_decoder_setup import decoder, drop_slot, published
from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY
from sqlalchemy_postgresql_audit.cdc import create_slot
from sqlalchemy_postgresql_audit.cdc.errors import CdcError
from sqlalchemy_postgresql_audit.declare.cdc import cdc_names


@pytest.fixture
def engine(logical_database_url: sa.URL) -> Any:
    engine = sa.create_engine(logical_database_url)
    yield engine
    engine.dispose()


def declare(
    name: str = "ledger", metadata: sa.MetaData | None = None, **conventions: Any
) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(naming_convention=conventions) if metadata is None else metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )


def trail(engine: sa.Engine, table: sa.Table) -> list[tuple[Any, ...]]:
    audit = table.info[AUDIT_TABLE_KEY]
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(audit.c.audit_operation, audit.c.id, audit.c.v).order_by(audit.c.audit_id)
        )
        return [tuple(r) for r in rows]


@pytest.mark.parametrize("publication", ["CdcPub", "cdc pub", "a,b", 'say "hi"'])
def test_publication_names_that_need_quoting_are_read(engine: sa.Engine, publication: str) -> None:
    """pgoutput reads ``publication_names`` as a list of identifiers: unquoted, "CdcPub" would
    be folded to cdcpub and "a,b" split in two."""
    table = declare(**{"audit.publication": publication})
    with published(engine, table.metadata, "DEFAULT"):
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, v=1))
            connection.execute(table.update().values(v=2))
        assert decoder(engine, table.metadata).run_once() == 2
        assert trail(engine, table) == [("I", 1, 1), ("U", 1, 2)]


def slot_position(engine: sa.Engine, slot: str) -> str:
    with engine.connect() as connection:
        return str(
            connection.execute(
                sa.text(
                    "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = :s"
                ),
                {"s": slot},
            ).scalar_one()
        )


def progress_position(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        return str(
            connection.exec_driver_sql("SELECT end_lsn FROM audit_cdc_progress").scalar_one()
        )


def test_a_slot_dropped_and_made_again_stops_the_decoder_naming_the_gap(
    engine: sa.Engine,
) -> None:
    """The writes made while there was no slot never reach the WAL's consumers: the decoder
    refuses to go on as if nothing happened (its trail would also rebuild the later DELETE's
    old row from a stale version), names the slot and the gap, and goes on once told to."""
    table = declare()
    slot = cdc_names(table.metadata).slot
    with published(engine, table.metadata, "DEFAULT"):
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, v=1))
        assert decoder(engine, table.metadata).run_once() == 1
        recorded = progress_position(engine)
        drop_slot(engine, table.metadata)
        with engine.begin() as connection:
            connection.execute(table.update().values(v=2))
            connection.execute(table.insert().values(id=2, v=2))
        create_slot(engine, table.metadata)
        with engine.begin() as connection:
            connection.execute(table.delete().where(table.c.id == 1))
        made = slot_position(engine, slot)
        with pytest.raises(CdcError) as raised:
            decoder(engine, table.metadata).run_once()
        message = str(raised.value)
        assert f"slot '{slot}' starts at {made}, beyond the trail's progress ({recorded})" in (
            message
        )
        assert "audit_cdc_progress" in message and "record_baseline" in message
        assert trail(engine, table) == [("I", 1, 1)]
        assert (slot_position(engine, slot), progress_position(engine)) == (made, recorded)
        # Accepting the gap as the error says: the decoder goes on from the new slot.
        with engine.begin() as connection:
            connection.exec_driver_sql("DELETE FROM audit_cdc_progress")
        assert decoder(engine, table.metadata).run_once() == 1
        assert trail(engine, table) == [("I", 1, 1), ("D", 1, 1)]


def test_a_slot_advanced_by_hand_past_a_change_stops_the_decoder(engine: sa.Engine) -> None:
    table = declare()
    slot = cdc_names(table.metadata).slot
    with published(engine, table.metadata):
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1, v=1))
        assert decoder(engine, table.metadata).run_once() == 1
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=2, v=2))
        with engine.connect() as connection:
            connection.execute(
                sa.text("SELECT pg_replication_slot_advance(:s, pg_current_wal_flush_lsn())"),
                {"s": slot},
            )
            connection.commit()
        with pytest.raises(CdcError, match=rf"slot '{slot}' starts at .* beyond"):
            decoder(engine, table.metadata).run_once()
        assert trail(engine, table) == [("I", 1, 1)]


def test_the_decoder_advances_its_slot_only_as_far_as_its_progress_records(
    engine: sa.Engine,
) -> None:
    """WAL that holds nothing for the trail (other tables' writes) moves the slot too, once
    the progress row records the new position first: the decoder never finds its own slot
    ahead of its progress, and never leaves it far behind the WAL."""
    table = declare()
    slot = cdc_names(table.metadata).slot
    with published(engine, table.metadata):
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE other (id int, pad text)")
            connection.execute(table.insert().values(id=1, v=1))
        running = decoder(engine, table.metadata)
        assert running.run_once() == 1
        for _ in range(3):
            with engine.begin() as connection:
                connection.exec_driver_sql(
                    "INSERT INTO other SELECT i, repeat('x', 100) FROM generate_series(1, 2000) i"
                )
            assert running.run_once() == 0
            assert slot_position(engine, slot) == progress_position(engine)
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=2, v=2))
        assert decoder(engine, table.metadata).run_once() == 1
        assert trail(engine, table) == [("I", 1, 1), ("I", 2, 2)]
        assert slot_position(engine, slot) == progress_position(engine)


def test_a_table_that_joins_the_publication_while_the_decoder_runs_is_a_transient_error(
    engine: sa.Engine,
) -> None:
    """A migration publishes a new CDC table before the models that declare it reach the
    running consumer: the old decoder stops at the new table's first change, naming it, with
    a transient error (``Consumer.run`` waits and tries again), and never goes past it; the
    decoder with the new models writes everything exactly once."""
    old = declare()
    with published(engine, old.metadata):
        with engine.begin() as connection:
            connection.execute(old.insert().values(id=1, v=1))
        running = decoder(engine, old.metadata)
        assert running.run_once() == 1
        new = declare()  # the deploy's models: both tables
        parcel = declare("parcel", new.metadata)
        new.metadata.create_all(engine)  # the migration
        with engine.begin() as connection:
            connection.execute(old.insert().values(id=2, v=2))
        with engine.begin() as connection:
            connection.execute(parcel.insert().values(id=7, v=7))
            connection.execute(old.insert().values(id=3, v=3))
        for _ in range(2):
            with pytest.raises(CdcError) as raised:
                running.run_once()
            assert raised.value.transient is True
            message = str(raised.value)
            assert "table public.parcel is in publication(s)" in message
            assert "restart the consumer with models that declare it" in message.lower()
            assert "remove" not in message
        assert decoder(engine, new.metadata).run_once() == 3
        assert trail(engine, old) == [("I", 1, 1), ("I", 2, 2), ("I", 3, 3)]
        assert trail(engine, parcel) == [("I", 7, 7)]


def test_a_transaction_larger_than_batch_bytes_is_written_in_parts_exactly_once(
    engine: sa.Engine,
) -> None:
    """Each part commits with its position in the transaction; a failure between parts
    leaves the parts before it, and the next run writes the rest, none twice."""
    table = declare("parcel")
    table.append_column(sa.Column("pad", sa.Text))
    with published(engine, table.metadata):
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE SEQUENCE attempts")
            connection.exec_driver_sql(
                "CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.id = 30 AND nextval('attempts') = 1 THEN RAISE 'between parts'; END IF; "
                "RETURN NEW; END $$"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER fail_once BEFORE INSERT ON parcel_audit "
                "FOR EACH ROW EXECUTE FUNCTION fail_once()"
            )
            connection.execute(
                table.insert(), [{"id": i, "v": i, "pad": "x" * 100} for i in range(50)]
            )
        parts = decoder(engine, table.metadata, batch_bytes=1_000)
        with pytest.raises(Exception, match="between parts"):  # from the driver
            parts.run_once()
        with engine.connect() as connection:
            position, complete = connection.exec_driver_sql(
                "SELECT position, complete FROM audit_cdc_progress"
            ).one()
        written = trail(engine, table)
        assert (position, complete, len(written)) == (len(written), False, position)
        assert 0 < position <= 30
        assert decoder(engine, table.metadata, batch_bytes=1_000).run_once() == 50 - position
        assert trail(engine, table) == [("I", i, i) for i in range(50)]


def test_a_running_decoder_lets_a_baseline_through_though_nothing_is_left_to_write(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``record_baseline`` waits until the slot passes the WAL written before its lock.  A
    decoder with nothing to write still records the WAL's position from time to time and
    advances its slot there, so the baseline goes through while it runs."""
    import threading

    import sqlalchemy_postgresql_audit.cdc.decoder as module
    from sqlalchemy_postgresql_audit import record_baseline

    monkeypatch.setattr(module, "IDLE_RECORD_SECONDS", 0.2)
    table = declare()
    with published(engine, table.metadata, "DEFAULT"):
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE other (id int)")
            connection.execute(table.insert().values(id=1, v=1))
        running = decoder(engine, table.metadata)
        assert running.run_once() == 1
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO other VALUES (1)")  # a little WAL
        done = threading.Event()

        def run() -> None:
            while not done.is_set():
                running.run_once()

        consumer = threading.Thread(target=run)
        consumer.start()
        try:
            with engine.begin() as connection:
                assert record_baseline(connection, table, timeout=20) == 0
        finally:
            done.set()
            consumer.join()
        assert trail(engine, table) == [("I", 1, 1)]
