"""Throughput of the change-data-capture decoder, and what its parts cost.

    .venv/bin/python bench/cdc_decoder.py [--changes 200000] [--rounds 3] [--url URL]

Per workload (inserts in transactions of 1,000 rows; one UPDATE of every row; one DELETE of
every row), in each round, on a fresh slot:

- ``sql_read``: the server decoding the slot through the SQL interface, read with COPY binary
  (``pg_logical_slot_peek_binary_changes``), nothing parsed: the read ceiling of this path;
- ``stream_read``: the same changes through the replication protocol (psycopg2's
  ``LogicalReplicationConnection``), nothing parsed: the other path's read ceiling;
- ``copy_only``: COPY of the same number of rows, already formatted, into an audit table of
  the same shape: the write ceiling;
- ``decoder``: ``Decoder.run_once`` end to end (read, parse, COPY, progress, slot advance),
  old rows from the WAL (``REPLICA IDENTITY FULL``);
- ``decoder_trail``: the same under ``REPLICA IDENTITY DEFAULT``, old rows (UPDATE, DELETE)
  rebuilt from the trail.

And the writer's side of the old-row choice: a single-row UPDATE loop and a whole-table UPDATE
under ``REPLICA IDENTITY DEFAULT`` and ``FULL`` (time and WAL bytes).  Rates are changes per
second, medians over rounds.  Results go to ``bench/results/cdc_decoder.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import select
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extras
import sqlalchemy as sa

from embedded import server
from sqlalchemy_postgresql_audit import uninstall_audit_triggers
from sqlalchemy_postgresql_audit.cdc.decoder import Decoder

RESULTS = Path(__file__).parent / "results"
SLOT, PUBLICATION = "bench_decoder", "bench_decoder_tables"


def model() -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData()
    table = sa.Table(
        "bench_order",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("customer", sa.Text, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("price", sa.Numeric(10, 2), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        info={
            "audit.options": {
                "enabled": True,
                "session_settings": [sa.Column("username", sa.Text)],
            }
        },
    )
    return metadata, table


def setup(engine: sa.Engine, metadata: sa.MetaData) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS bench_order, bench_order_audit")
        connection.exec_driver_sql(f"DROP PUBLICATION IF EXISTS {PUBLICATION}")
    metadata.create_all(engine)
    uninstall_audit_triggers(metadata, engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE bench_order REPLICA IDENTITY FULL")
        connection.exec_driver_sql(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE bench_order")
        connection.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS bench_copy_target (LIKE bench_order_audit INCLUDING ALL)"
        )


def slot(engine: sa.Engine, *, create: bool) -> None:
    with engine.connect() as connection:
        connection.exec_driver_sql(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            f"WHERE slot_name = '{SLOT}'"
        )
        if create:
            connection.exec_driver_sql(
                f"SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput')"
            )
        connection.commit()


WORKLOADS: dict[str, str] = {
    "insert": (
        "INSERT INTO bench_order SELECT i, 'customer ' || i, mod(i, 7), i * 0.25, now() "
        "FROM generate_series(%(first)s, %(last)s) i"
    ),
    "update": "UPDATE bench_order SET quantity = quantity + 1",
    "delete": "DELETE FROM bench_order",
}


def write(engine: sa.Engine, workload: str, changes: int) -> str:
    """Run ``workload`` and return the WAL position after it."""
    with engine.begin() as connection:
        if workload == "insert":
            connection.exec_driver_sql("TRUNCATE bench_order")
    slot(engine, create=True)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if workload == "insert":
            for first in range(1, changes + 1, 1000):
                cursor.execute(WORKLOADS["insert"], {"first": first, "last": first + 999})
                raw.commit()
        else:
            cursor.execute(WORKLOADS[workload])
            raw.commit()
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        upto: str = cursor.fetchone()[0]
    finally:
        raw.close()
    return upto


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def sql_read(engine: sa.Engine, upto: str) -> int:
    """Read the slot's messages up to ``upto`` through the SQL interface; return how many."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        sink = _Sink()
        cursor.copy_expert(
            cursor.mogrify(
                "COPY (SELECT data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, NULL,"
                " 'proto_version', '1', 'publication_names', %s)) TO STDOUT (FORMAT binary)",
                (SLOT, upto, PUBLICATION),
            ).decode(),
            sink,
        )
        raw.rollback()
    finally:
        raw.close()
    return sink.writes - 2  # the COPY header and trailer


class _Sink:
    writes = 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        return len(data)


def stream_read(url: sa.URL, messages: int) -> None:
    """Read ``messages`` messages of the slot through the replication protocol (no feedback:
    the slot stays where it is)."""
    connection = psycopg2.connect(
        host=url.host or url.query.get("host"),
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database,
        connection_factory=psycopg2.extras.LogicalReplicationConnection,
    )
    try:
        cursor = connection.cursor()
        cursor.start_replication(
            slot_name=SLOT,
            decode=False,
            options={"proto_version": "1", "publication_names": PUBLICATION},
        )
        while messages:
            if cursor.read_message() is None:
                select.select([cursor], [], [], 1.0)
            else:
                messages -= 1
    finally:
        connection.close()


def copy_only(engine: sa.Engine, lines: bytes) -> None:
    raw = engine.raw_connection()
    try:
        import io

        raw.cursor().copy_expert(
            "COPY bench_copy_target (audit_operation, audit_operation_timestamp, "
            "audit_current_user, audit_username, id, customer, quantity, price, placed_at) "
            "FROM STDIN",
            io.BytesIO(lines),
        )
        raw.commit()
    finally:
        raw.close()


def formatted_lines(changes: int) -> bytes:
    return b"".join(
        b"I\t2026-12-05T15:00:00+00:00\t\\N\t\\N\t%d\tcustomer %d\t%d\t%.2f\t2026-12-05 15:00:00+00\n"
        % (i, i, i % 7, i * 0.25)
        for i in range(1, changes + 1)
    )


def measure(url: sa.URL, changes: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    engine = sa.create_engine(url, execution_options={"audit_runtime_check": False})
    metadata, _ = model()
    setup(engine, metadata)
    lines = formatted_lines(changes)
    rates: dict[str, dict[str, list[float]]] = {}
    try:
        for _ in range(rounds):
            for identity in ("FULL", "DEFAULT"):
                with engine.begin() as connection:
                    connection.exec_driver_sql("TRUNCATE bench_order_audit")
                    connection.exec_driver_sql(
                        f"ALTER TABLE bench_order REPLICA IDENTITY {identity}"
                    )
                for workload in WORKLOADS:
                    upto = write(engine, workload, changes)
                    rate = rates.setdefault(workload, {})
                    if identity == "FULL":
                        count = sql_read(engine, upto)
                        for name, action in (
                            ("sql_read", partial(sql_read, engine, upto)),
                            ("stream_read", partial(stream_read, url, count)),
                            ("copy_only", partial(copy_only, engine, lines)),
                        ):
                            rate.setdefault(name, []).append(changes / timed(action))
                    decoder = Decoder(engine, engine, metadata, slot=SLOT, publication=PUBLICATION)
                    started = time.perf_counter()
                    written = decoder.run_once()
                    seconds = time.perf_counter() - started
                    assert written == changes, (workload, identity, written)
                    name = "decoder" if identity == "FULL" else "decoder_trail"
                    rate.setdefault(name, []).append(changes / seconds)
                    with engine.begin() as connection:
                        connection.exec_driver_sql("TRUNCATE bench_copy_target")
    finally:
        slot(engine, create=False)
        engine.dispose()
    return rates


def writer_cost(url: sa.URL, changes: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    """UPDATE under both replica identities: seconds and WAL bytes."""
    engine = sa.create_engine(url, execution_options={"audit_runtime_check": False})
    results: dict[str, dict[str, list[float]]] = {}
    singles = min(changes // 20, 5_000)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(WORKLOADS["insert"], {"first": 1, "last": changes})
        for _ in range(rounds):
            for identity in ("DEFAULT", "FULL"):
                with engine.begin() as connection:
                    connection.exec_driver_sql(
                        f"ALTER TABLE bench_order REPLICA IDENTITY {identity}"
                    )
                raw = engine.raw_connection()
                try:
                    cursor = raw.cursor()
                    cursor.execute("SELECT pg_current_wal_lsn()")
                    start = cursor.fetchone()[0]
                    started = time.perf_counter()
                    for i in range(1, singles + 1):
                        cursor.execute(
                            "UPDATE bench_order SET quantity = quantity + 1 WHERE id = %s", (i,)
                        )
                        raw.commit()
                    single_seconds = time.perf_counter() - started
                    started = time.perf_counter()
                    cursor.execute(WORKLOADS["update"])
                    raw.commit()
                    bulk_seconds = time.perf_counter() - started
                    cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (start,))
                    wal = float(cursor.fetchone()[0])
                finally:
                    raw.close()
                result = results.setdefault(identity, {})
                result.setdefault("single_update_per_s", []).append(singles / single_seconds)
                result.setdefault("bulk_update_per_s", []).append(changes / bulk_seconds)
                result.setdefault("wal_bytes_per_update", []).append(wal / (singles + changes))
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE bench_order REPLICA IDENTITY FULL")
    finally:
        engine.dispose()
    return results


def report(data: dict[str, Any]) -> str:
    lines = [
        "# CDC decoder throughput",
        "",
        f"{data['changes']} changes per workload, median of {data['rounds']} rounds, "
        f"PostgreSQL {data['server']}, {data['cpus']} CPUs.  Changes per second.",
        "",
        "| workload | sql_read | stream_read | copy_only | decoder (FULL) | decoder (trail) "
        "| decoder / copy_only |",
        "|---|---|---|---|---|---|---|",
    ]
    for workload, rates in data["rates"].items():
        median = {k: statistics.median(v) for k, v in rates.items()}
        lines.append(
            f"| {workload} | {median['sql_read']:,.0f} | {median['stream_read']:,.0f} | "
            f"{median['copy_only']:,.0f} | {median['decoder']:,.0f} | "
            f"{median['decoder_trail']:,.0f} | "
            f"{median['decoder'] / median['copy_only']:.2f} |"
        )
    lines += [
        "",
        "Writer side of REPLICA IDENTITY (median):",
        "",
        "| identity | single-row UPDATE/s | bulk UPDATE rows/s | WAL bytes per update |",
        "|---|---|---|---|",
    ]
    for identity, values in data["writer"].items():
        median = {k: statistics.median(v) for k, v in values.items()}
        lines.append(
            f"| {identity} | {median['single_update_per_s']:,.0f} | "
            f"{median['bulk_update_per_s']:,.0f} | {median['wal_bytes_per_update']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with server(args.url) as url:
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            version = connection.exec_driver_sql("SHOW server_version").scalar()
            level = connection.exec_driver_sql("SHOW wal_level").scalar()
        engine.dispose()
        if level != "logical":
            print(f"the server runs with wal_level={level}; the decoder needs logical")
            return 2
        rates = measure(url, args.changes, args.rounds)
        writer = writer_cost(url, args.changes, args.rounds)
    data = {
        "changes": args.changes,
        "rounds": args.rounds,
        "server": version,
        "cpus": __import__("os").cpu_count(),
        "python": platform.python_version(),
        "rates": rates,
        "writer": writer,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "cdc_decoder.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.results / "cdc_decoder.md").write_text(report(data))
    print(report(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
