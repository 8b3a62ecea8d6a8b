"""Publication, slot and context table for the decoder's tests, made with plain SQL (what the
library's CDC install creates), and the audit tables without triggers (a CDC table has none)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from sqlalchemy_postgresql_audit import uninstall_audit_triggers
from sqlalchemy_postgresql_audit.cdc.decoder import CONTEXT_TABLE, Decoder

SLOT = "audit_decoder_test"
PUBLICATION = "audit_decoder_tables"
CONTEXT_PUBLICATION = "audit_decoder_context"


def _name(engine: sa.Engine, table: sa.Table) -> str:
    return engine.dialect.identifier_preparer.format_table(table)


@contextmanager
def published(
    engine: sa.Engine, metadata: sa.MetaData, identity: str = "FULL", *, via_root: bool = False
) -> Iterator[None]:
    """Create the audited tables with their audit tables, take the triggers off, publish the
    audited tables (with ``identity``) and the context table, and make the slot; drop the
    slot afterwards (a database holding a slot cannot be dropped)."""
    metadata.create_all(engine)
    uninstall_audit_triggers(metadata, engine)
    audited = [t for t in metadata.tables.values() if "audit.options" in t.info]
    with engine.begin() as connection:
        for table in audited:
            connection.exec_driver_sql(
                f"ALTER TABLE {_name(engine, table)} REPLICA IDENTITY {identity}"
            )
        names = ", ".join(_name(engine, t) for t in audited)
        root = " WITH (publish_via_partition_root = true)" if via_root else ""
        connection.exec_driver_sql(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE {names}{root}")
        connection.exec_driver_sql(
            f"CREATE TABLE {CONTEXT_TABLE} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " xact xid8 NOT NULL DEFAULT pg_current_xact_id(), settings jsonb NOT NULL)"
        )
        connection.exec_driver_sql(
            f"CREATE PUBLICATION {CONTEXT_PUBLICATION} FOR TABLE {CONTEXT_TABLE} "
            "WITH (publish = 'insert')"
        )
    with engine.connect() as connection:
        connection.execute(
            sa.text("SELECT pg_create_logical_replication_slot(:s, 'pgoutput')"), {"s": SLOT}
        )
        connection.commit()
    try:
        yield
    finally:
        with engine.connect() as connection:
            connection.execute(
                sa.text(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE slot_name = :s"
                ),
                {"s": SLOT},
            )
            connection.commit()


def decoder(engine: sa.Engine, metadata: sa.MetaData, **options: int) -> Decoder:
    return Decoder(
        engine,
        engine,
        metadata,
        slot=SLOT,
        publication=PUBLICATION,
        context_publication=CONTEXT_PUBLICATION,
        **options,
    )


def set_context(connection: sa.Connection, **settings: str) -> None:
    """What a writer's transaction does when a context is set: one context row."""
    connection.execute(
        sa.text(f"INSERT INTO {CONTEXT_TABLE} (settings) VALUES (CAST(:s AS jsonb))"),
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
        info={"audit.options": {"enabled": True}},
    )
    return metadata


def run_forever(url: str, batch_changes: int) -> None:
    """A decoder process: says it is ready (imports done), then ``run`` until killed."""
    engine = sa.create_engine(url)
    running = decoder(engine, parcel_metadata(), batch_changes=batch_changes)
    print("ready", flush=True)
    running.run(idle=0.05)
