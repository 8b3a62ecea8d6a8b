"""Lag of the change-data-capture trail under a sustained, paced write rate (issue 16's goal:
under 1 s at 10,000 changes/s), for both designs.

    .venv/bin/python bench/cdc_lag.py [--rate 10000] [--seconds 20] [--rounds 3] [--url URL]

Per round and design, on fresh tables and a fresh slot:

- **The writer** (this process) inserts rows at ``--rate`` changes per second for
  ``--seconds``: every 10 ms one transaction with the rows due by then (100 at 10,000/s), and
  notes the time each transaction's commit returned.
- **The consumer** runs as users run it: design 2 (``decoder``) is
  ``Consumer(source).run(interval=0.05)`` in a process of its own, in the same database;
  design 1 (``replica``) is the subscription's apply worker writing into another database of
  the same server (``Consumer(source, target).run_once()`` sets it up; no Python per change).
- **The lag** of a transaction is the time from its commit to the first moment its last row is
  in the trail, seen by a poller reading ``max(id)`` of the audit table every 10 ms (so each
  figure is up to about 10 ms high).  The first second of each run is left out (warm-up).

Printed and written to ``bench/results/cdc_lag.{json,md}``: per design, the medians over
rounds of each round's median, 95th percentile and maximum lag, the rate the writer achieved,
and the load average before and after (the machine may be shared: read the figures with it).
Without ``--url`` the server is a throwaway embedded one (it must allow ``wal_level=logical``:
the run stops otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from embedded import server
from sqlalchemy_postgresql_audit.cdc import Consumer

RESULTS = Path(__file__).parent / "results"
DESIGNS = ("decoder", "replica")
TICK = 0.01
TARGET_DATABASE = "bench_cdc_lag_target"

INSERT = (
    "INSERT INTO bench_lag (id, customer, quantity, price, placed_at) "
    "SELECT i, 'customer ' || i, mod(i, 7), i * 0.25, now() FROM generate_series(%s, %s) i"
)


def model(slot: str) -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData(naming_convention={"audit.slot": slot})
    table = sa.Table(
        "bench_lag",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("customer", sa.Text, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("price", sa.Numeric(10, 2), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    return metadata, table


def consume(url: str, slot: str) -> None:
    """Design 2's consumer process (``--consume``): runs until terminated."""
    metadata, _ = model(slot)
    Consumer(url, metadata=metadata).run(interval=0.05)


class Poller(threading.Thread):
    """Notes when each ``max(id)`` of the trail is first seen."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.seen: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with self.engine.connect() as connection:
            while not self.stop.is_set():
                highest = connection.exec_driver_sql("SELECT max(id) FROM bench_lag_audit").scalar()
                connection.rollback()
                now = time.monotonic()
                if highest is not None and (not self.seen or highest > self.seen[-1][1]):
                    self.seen.append((now, int(highest)))
                time.sleep(TICK)

    def highest(self) -> int:
        return self.seen[-1][1] if self.seen else 0


def write(engine: sa.Engine, rate: int, seconds: float) -> list[tuple[float, int]]:
    """Insert at ``rate`` rows per second; return (commit time, last id) per transaction."""
    commits: list[tuple[float, int]] = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        started = time.monotonic()
        written = 0
        while (now := time.monotonic()) - started < seconds:
            due = int((now - started) * rate) - written
            if due > 0:
                cursor.execute(INSERT, (written + 1, written + due))
                raw.commit()
                written += due
                commits.append((time.monotonic(), written))
            time.sleep(max(0.0, TICK - (time.monotonic() - now)))
    finally:
        raw.close()
    return commits


def lags(commits: list[tuple[float, int]], seen: list[tuple[float, int]]) -> list[float]:
    """Per transaction: from its commit to the first poll that saw its last row."""
    result: list[float] = []
    position = 0
    for committed, last_id in commits:
        while seen[position][1] < last_id:
            position += 1
        result.append(max(0.0, seen[position][0] - committed))
    return result


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def one_run(
    url: sa.URL, design: str, rate: int, seconds: float
) -> dict[str, float]:
    slot = f"bench_lag_{uuid.uuid4().hex[:10]}"
    metadata, _ = model(slot)
    source = sa.create_engine(url, poolclass=sa.NullPool)
    target_url = url.set(database=TARGET_DATABASE) if design == "replica" else url
    target = sa.create_engine(target_url, poolclass=sa.NullPool)
    for engine in {source, target}:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS bench_lag, bench_lag_audit")
    metadata.create_all(source)
    consumer = Consumer(source, target if design == "replica" else None, metadata=metadata)
    process: subprocess.Popen[bytes] | None = None
    try:
        if design == "replica":
            consumer.run_once()  # the replica, the audit table, the subscription
        else:
            process = subprocess.Popen(
                [sys.executable, __file__, "--consume", url.render_as_string(False), slot]
            )
        poller = Poller(target)
        poller.start()
        commits = write(source, rate, seconds)
        deadline = time.monotonic() + 600
        while poller.highest() < commits[-1][1]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{design}: the trail did not catch up within 600 s")
            time.sleep(TICK)
        poller.stop.set()
        poller.join()
        started = commits[0][0]
        measured = lags([c for c in commits if c[0] - started >= 1.0], poller.seen)
        achieved = commits[-1][1] / (commits[-1][0] - started + TICK)
        return {
            "median": statistics.median(measured),
            "p95": percentile(measured, 0.95),
            "max": max(measured),
            "achieved_rate": achieved,
            "transactions": len(measured),
        }
    finally:
        if process is not None:
            process.terminate()
            process.wait()
        if design == "replica":
            consumer.drop()
        drop_slot(source, slot)
        source.dispose()
        target.dispose()


def drop_slot(engine: sa.Engine, slot: str) -> None:
    """Once the server process of a consumer that was just stopped lets go of it."""
    for _ in range(100):
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %(slot)s",
                    {"slot": slot},
                )
                connection.commit()
            return
        except sa.exc.OperationalError as error:
            if getattr(error.orig, "pgcode", None) != "55006":  # object_in_use
                raise
            time.sleep(0.1)
    raise RuntimeError(f"slot {slot} stayed in use")


def ensure_target_database(url: sa.URL) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        exists = connection.exec_driver_sql(
            "SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": TARGET_DATABASE}
        ).scalar()
        if not exists:
            connection.exec_driver_sql(f'CREATE DATABASE "{TARGET_DATABASE}"')
    engine.dispose()


def report(data: dict[str, Any]) -> str:
    lines = [
        "# CDC lag under a paced writer",
        "",
        f"{data['rate']:,} inserts/s asked for {data['seconds']} s, transactions every "
        f"{TICK * 1000:.0f} ms; median over {data['rounds']} rounds of each round's figure; "
        f"PostgreSQL {data['server']}, {data['cpus']} CPUs; load average "
        f"{data['load_before'][0]:.2f} before, {data['load_after'][0]:.2f} after.",
        "",
        "| design | lag median (s) | lag p95 (s) | lag max (s) | writer achieved (changes/s) |",
        "|---|---|---|---|---|",
    ]
    for design, rounds in data["designs"].items():
        median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        lines.append(
            f"| {design} | {median['median']:.3f} | {median['p95']:.3f} | {median['max']:.3f} "
            f"| {median['achieved_rate']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--url")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--consume", nargs=2, metavar=("URL", "SLOT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.consume:
        consume(*args.consume)
        return 0
    designs = [d for d in args.designs.split(",") if d]
    with server(args.url) as url:
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            version = connection.exec_driver_sql("SHOW server_version").scalar()
            level = connection.exec_driver_sql("SHOW wal_level").scalar()
        engine.dispose()
        if level != "logical":
            print(f"the server runs with wal_level={level}; CDC needs logical")
            return 2
        if "replica" in designs:
            ensure_target_database(url)
        load_before = os.getloadavg()
        results: dict[str, list[dict[str, float]]] = {d: [] for d in designs}
        for round_ in range(args.rounds):
            for design in designs:
                found = one_run(url, design, args.rate, args.seconds)
                results[design].append(found)
                print(f"round {round_ + 1} {design}: {json.dumps(found)}", flush=True)
        load_after = os.getloadavg()
    data = {
        "rate": args.rate,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "server": version,
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": load_after,
        "designs": results,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "cdc_lag.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.results / "cdc_lag.md").write_text(report(data))
    print(report(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
