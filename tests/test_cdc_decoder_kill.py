"""A decoder killed with SIGKILL at random points and restarted writes every change exactly
once, in commit order."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cdc_decoder_setup import decoder, parcel_metadata, published

ROUNDS = 24


@pytest.mark.parametrize(
    "limits",
    [(13, 32 << 20), (10_000, 3_000)],
    ids=["parts-by-changes", "parts-by-bytes"],
)
def test_killed_and_restarted_the_trail_holds_every_change_once(
    logical_database_url: sa.URL, limits: tuple[int, int]
) -> None:
    """Large transactions are written in parts, cut by the number of changes or by bytes."""
    engine = sa.create_engine(logical_database_url)
    metadata = parcel_metadata()
    table = metadata.tables["parcel"]
    url = logical_database_url.render_as_string(hide_password=False)
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    program = f"import cdc_decoder_setup as s; s.run_forever({url!r}, {limits[0]}, {limits[1]})"
    chance = random.Random(16)
    expected: list[tuple[Any, ...]] = []
    with published(engine, metadata):
        for round_ in range(ROUNDS):
            first = round_ * 1000
            for part in range(4):  # several transactions per round, some large
                with engine.begin() as connection:
                    start = first + part * 250
                    rows = [{"id": i, "place": f"r{round_}"} for i in range(start, start + 250)]
                    connection.execute(table.insert(), rows)
                expected += [("I", r["id"], r["place"]) for r in rows]
            for step in range(10):
                with engine.begin() as connection:
                    ids = list(range(first + step * 10, first + step * 10 + 10))
                    connection.execute(
                        table.update().where(table.c.id.in_(ids)).values(place=f"u{step}")
                    )
                expected += [("U", i, f"u{step}") for i in ids]
            child = subprocess.Popen(
                [sys.executable, "-c", program], env=environment, stdout=subprocess.PIPE
            )
            assert child.stdout is not None and child.stdout.readline() == b"ready\n"
            # Somewhere in reading, writing, committing or advancing: it has a backlog.
            try:
                child.wait(timeout=chance.uniform(0.0, 0.6))
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGKILL)
                child.wait()
            assert child.returncode == -signal.SIGKILL, "the decoder stopped on its own"
        decoder(engine, metadata).run_once()
        audit = metadata.tables["parcel_audit"]
        with engine.connect() as connection:
            recorded = connection.execute(
                sa.select(audit.c.audit_operation, audit.c.id, audit.c.place).order_by(
                    audit.c.audit_id
                )
            )
            assert [tuple(r) for r in recorded] == expected
    engine.dispose()


def test_a_slot_still_held_by_a_killed_decoder_is_waited_for(logical_database_url: sa.URL) -> None:
    import threading

    import psycopg2
    import psycopg2.extras

    from sqlalchemy_postgresql_audit.declare.cdc import cdc_names

    engine = sa.create_engine(logical_database_url)
    metadata = parcel_metadata()
    names = cdc_names(metadata)
    with published(engine, metadata):
        with engine.begin() as connection:
            connection.execute(metadata.tables["parcel"].insert().values(id=1, place="a"))
        url = logical_database_url
        holder = psycopg2.connect(
            host=url.host or url.query.get("host"),
            port=url.port,
            user=url.username,
            password=url.password,
            dbname=url.database,
            connection_factory=psycopg2.extras.LogicalReplicationConnection,
        )
        holder.cursor().start_replication(
            slot_name=names.slot,
            decode=False,
            options={"proto_version": "1", "publication_names": names.publication},
        )
        released = threading.Timer(0.5, holder.close)
        released.start()
        try:
            assert decoder(engine, metadata).run_once() == 1  # waited, then read
        finally:
            released.join()
    engine.dispose()
