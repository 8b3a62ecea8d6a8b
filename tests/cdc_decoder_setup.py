"""The decoder's tests install change-data-capture as users do: tables declared with
``mode="cdc"`` and ``create_all`` (publications, slot, context table); the decoder runs on the
names install used."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from sqlalchemy_postgresql_audit.cdc.decoder import Decoder
from sqlalchemy_postgresql_audit.declare.cdc import cdc_names


def _name(engine: sa.Engine, table: sa.Table) -> str:
    return engine.dialect.identifier_preparer.format_table(table)


@contextmanager
def published(engine: sa.Engine, metadata: sa.MetaData, identity: str = "FULL") -> Iterator[None]:
    """Install ``metadata``'s CDC tables, give them ``identity`` (``FULL``: old rows from the
    WAL; ``DEFAULT``, what install sets for a table with a key: from the trail), and drop the
    slot afterwards (a database holding a slot cannot be dropped)."""
    metadata.create_all(engine)
    audited = [t for t in metadata.tables.values() if "audit.options" in t.info]
    with engine.begin() as connection:
        for table in audited:
            connection.exec_driver_sql(
                f"ALTER TABLE {_name(engine, table)} REPLICA IDENTITY {identity}"
            )
    try:
        yield
    finally:
        drop_slot(engine, metadata)


def drop_slot(engine: sa.Engine, metadata: sa.MetaData) -> None:
    drop_slot_named(engine, cdc_names(metadata).slot)


def drop_slot_named(engine: sa.Engine, slot: str) -> None:
    """Drop ``slot`` if it exists, once no process holds it: the walsender of a subscription
    just dropped on the target lets go of it a moment later."""
    deadline = time.monotonic() + 30
    with engine.connect() as connection:
        while True:
            active = connection.execute(
                sa.text("SELECT active FROM pg_replication_slots WHERE slot_name = :s"),
                {"s": slot},
            ).scalar()
            if active is None:
                return
            if not active:
                connection.execute(
                    sa.text(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                        " WHERE slot_name = :s AND NOT active"
                    ),
                    {"s": slot},
                )
                connection.commit()
                continue
            connection.commit()
            assert time.monotonic() < deadline, f"slot {slot} is still held"
            time.sleep(0.1)


def decoder(engine: sa.Engine, metadata: sa.MetaData, **options: int) -> Decoder:
    names = cdc_names(metadata)
    return Decoder(
        engine,
        engine,
        metadata,
        slot=names.slot,
        publication=names.publication,
        context_publication=names.context_publication,
        **options,
    )


def set_context(connection: sa.Connection, **settings: str) -> None:
    """What a writer's transaction does when a context is set: one context row (written by
    hand to set and reset settings within one transaction)."""
    connection.execute(
        sa.text("INSERT INTO audit_cdc_context (settings) VALUES (CAST(:s AS jsonb))"),
        {"s": json.dumps(settings)},
    )


def parcel_metadata() -> sa.MetaData:
    """The audited table the subprocess tests share with the decoder they start."""
    metadata = sa.MetaData()
    sa.Table(
        "parcel",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("place", sa.Text),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    return metadata


def run_forever(url: str, batch_changes: int, batch_bytes: int = 32 << 20) -> None:
    """A decoder process: says it is ready (imports done), then ``run`` until killed."""
    engine = sa.create_engine(url)
    running = decoder(
        engine, parcel_metadata(), batch_changes=batch_changes, batch_bytes=batch_bytes
    )
    print("ready", flush=True)
    running.run(idle=0.05)
