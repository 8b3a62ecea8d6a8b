#!/usr/bin/env python
"""Partitioned audit tables at scale: what writers wait for while an audit table is converted
and while retention removes a week, and one row's history over 52 weekly partitions.

One command (starts a throwaway PostgreSQL like ``capture.py``, or ``--url``)::

    .venv/bin/python bench/partitions.py [--rows 1000000] [--lookups 300]

Audit rows are loaded straight into the audit tables (``INSERT ... SELECT``), spread evenly
over the 52 weeks before now, ``--keys`` keys.  A writer thread runs autocommitted single-row
UPDATEs of another audited table throughout; its median latency alone is the baseline, and
each operation reports its duration and the writer's longest wait during it.

- ``convert``: ``partition_audit_table`` on an Engine (check NOT VALID, validate while writers
  write, then the swap) against the same conversion in one transaction (a Connection);
- ``retention``: ``maintain`` dropping one week (DETACH + DROP), keeping it
  (``retention_keep``: DETACH only), against ``DELETE ... WHERE`` of the same rows from an
  unpartitioned audit table;
- ``history``: ``history(table, key)`` (about ``rows / keys`` versions) on the 52-week table and
  on the unpartitioned one, with psycopg2 (where the library prepares its history queries
  server-side), psycopg2 with ``audit_prepare=False`` (planned on every call) and psycopg 3
  (which prepares a statement it runs five times), and the partitioned plan's shape;
- ``as_of``: one row's state, and the whole table's state (every key), 26 weeks back;
- ``writer``: the writer's single-row INSERT, autocommitted, into an audited table whose audit
  table is the 52-week one or the unpartitioned one (each already holding ``--rows``), against
  the same INSERT into an unaudited table, interleaved.

Each table is loaded server-side (``generate_series``).  The load average is recorded before
and after: the machine may be shared.  Writes ``bench/results/partitions.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit
from sqlalchemy_postgresql_audit.lifecycle.conversion import partition_audit_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capture import embedded_server

UTC = datetime.timezone.utc
WEEKS = 52


def declare(metadata: sa.MetaData, name: str, **options: Any) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": "row", **options}},
    )


def load(engine: sa.Engine, table: sa.Table, rows: int, keys: int, now: datetime.datetime) -> None:
    """``rows`` audit rows of ``keys`` keys, spread over the 52 weeks before ``now``."""
    audit_table = table.info[audit.AUDIT_TABLE_KEY].name  # a name of this script
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f"INSERT INTO {audit_table} (audit_operation, audit_operation_timestamp, "
                "audit_current_user, id, v) "
                "SELECT 'U', CAST(:now AS timestamptz) - :span * (CAST(:rows - g AS float8) / :rows), "
                "'bench', g % :keys, g FROM generate_series(1, :rows) AS g"
            ),
            {"now": now, "span": datetime.timedelta(weeks=WEEKS), "rows": rows, "keys": keys},
        )
    # Vacuumed as a table that has been in use is: otherwise autovacuum starts on the fresh
    # rows, and a lock request waits up to deadlock_timeout for it to be cancelled.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"VACUUM (ANALYZE) {audit_table}")


class Writer:
    """Autocommitted single-row UPDATEs of an audited table (whose audit table an operation
    works on), each timed: half a second alone, then during the operation."""

    def __init__(self, engine: sa.Engine, table: sa.Table) -> None:
        self.engine, self.table = engine, table
        self.latencies: list[tuple[float, float]] = []  # (end, seconds)
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            started = time.perf_counter()
            with self.engine.begin() as connection:
                connection.execute(self.table.update().where(self.table.c.id == 0).values(v=n))
            ended = time.perf_counter()
            self.latencies.append((ended, ended - started))
            n += 1

    def during(self, action: Callable[[], object]) -> dict[str, float]:
        thread = threading.Thread(target=self.run)
        thread.start()
        try:
            time.sleep(0.5)
            alone = statistics.median(s for _, s in self.latencies)
            start = time.perf_counter()
            action()
            end = time.perf_counter()
            time.sleep(0.2)  # the write that waited finishes after the action
        finally:
            self.stop.set()
            thread.join()
        waits = [s for e, s in self.latencies if e >= start and e - s <= end]
        return {
            "seconds": end - start,
            "writer_alone_median_ms": 1000 * alone,
            "writer_max_ms": 1000 * max(waits, default=0.0),
            "writes_during": len(waits),
        }


def during(engine: sa.Engine, table: sa.Table, action: Callable[[], object]) -> dict[str, float]:
    return Writer(engine, table).during(action)


def lookup_ms(
    readers: dict[str, sa.Engine], lookups: int, query: Callable[[int], sa.Select[Any]]
) -> dict[str, float]:
    """Median milliseconds of ``query(n)`` run and fetched, ``lookups`` times per driver.

    Every lookup runs once untimed first, so that no driver pays for reading the pages into
    the cache for the other; then the drivers take turns, lookup by lookup, so that a change
    in the machine's load reaches each alike.
    """
    times: dict[str, list[float]] = {driver: [] for driver in readers}
    connections = {driver: engine.connect() for driver, engine in readers.items()}
    try:
        warm = next(iter(connections.values()))
        for n in range(lookups):
            warm.execute(query(n)).all()
        for n in range(lookups):
            for driver, connection in connections.items():
                started = time.perf_counter()
                connection.execute(query(n)).all()
                times[driver].append(time.perf_counter() - started)
    finally:
        for connection in connections.values():
            connection.close()
    return {driver: 1000 * statistics.median(values) for driver, values in times.items()}


def as_of_table(engine: sa.Engine, table: sa.Table, at: datetime.datetime) -> dict[str, float]:
    """The whole table's state at ``at``: median seconds of 3 runs, and the rows returned."""
    times, rows = [], 0
    with engine.connect() as connection:
        for _ in range(3):
            started = time.perf_counter()
            rows = len(connection.execute(audit.as_of(table, at)).all())
            times.append(time.perf_counter() - started)
    return {"seconds": statistics.median(times), "rows": rows}


def writer_ms(engine: sa.Engine, tables: dict[str, sa.Table], writes: int) -> dict[str, float]:
    """Median milliseconds of one autocommitted single-row INSERT into each table, the tables
    taking turns so that a change in the machine's load reaches each alike."""
    times: dict[str, list[float]] = {name: [] for name in tables}
    with engine.connect() as connection:
        for n in range(writes):
            for name, table in tables.items():
                started = time.perf_counter()
                with connection.begin():
                    connection.execute(table.insert().values(id=10_000_000_000 + n, v=n))
                times[name].append(time.perf_counter() - started)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def plan(engine: sa.Engine, table: sa.Table) -> str:
    query = audit.history(table, 42).compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        lines = connection.exec_driver_sql(f"EXPLAIN (COSTS OFF) {query}").scalars().all()
    return "\n".join(lines)


def make_weeks(engine: sa.Engine, table: sa.Table, now: datetime.datetime) -> None:
    for week in range(WEEKS + 1, -1, -1):
        audit.maintain(engine, table, at=now - datetime.timedelta(weeks=week))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="SQLAlchemy URL of an existing database to use")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--writes", type=int, default=2000)
    args = parser.parse_args(argv)
    audit.enable()
    if args.url:
        return run(sa.make_url(args.url), args)
    with embedded_server() as url:
        return run(url, args)


def run(url: sa.URL, args: argparse.Namespace) -> int:
    engine = sa.create_engine(url, pool_size=4)
    now = datetime.datetime.now(UTC)
    week = datetime.timedelta(weeks=1)
    metadata = sa.MetaData()
    tables = {
        "flat": declare(metadata, "flat"),
        "one_tx": declare(metadata, "one_tx"),
        "weekly": declare(metadata, "weekly", partition="week", retention=WEEKS * week),
        "keep": declare(
            metadata, "keep", partition="week", retention=WEEKS * week, retention_keep=True
        ),
        "convert": declare(metadata, "convert"),
    }
    plain = sa.Table(
        "plain",
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Integer),
    )
    load_before = os.getloadavg()
    metadata.create_all(engine)
    for table in tables.values():
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=0, v=0))
    for name in ("weekly", "keep"):
        make_weeks(engine, tables[name], now)
    started = time.perf_counter()
    for table in tables.values():
        load(engine, table, args.rows, args.keys, now)
    with engine.connect() as connection:
        server = connection.exec_driver_sql("SHOW server_version").scalar_one()
    results: dict[str, Any] = {
        "rows": args.rows,
        "keys": args.keys,
        "weeks": WEEKS,
        "server": server,
        "load_seconds": time.perf_counter() - started,
        "loadavg_before": load_before,
    }
    back = now - WEEKS // 2 * week
    # psycopg 3 prepares a statement it runs 5 times; psycopg2 never does, so the library
    # prepares its history queries there, unless told not to (audit_prepare=False).
    readers = {
        driver: sa.create_engine(url.set(drivername=f"postgresql+{driver}"))
        for driver in ("psycopg2", "psycopg")
    }
    readers["psycopg2, unprepared"] = sa.create_engine(
        url.set(drivername="postgresql+psycopg2"), execution_options={"audit_prepare": False}
    )
    results["history_ms"] = {driver: {} for driver in readers}
    results["as_of_row_ms"] = {driver: {} for driver in readers}
    for name in ("flat", "weekly"):
        table = tables[name]
        found = lookup_ms(
            readers, args.lookups, lambda n, t=table: audit.history(t, (n * 7919) % args.keys)
        )
        for driver, ms in found.items():
            results["history_ms"][driver][name] = ms
        found = lookup_ms(
            readers, args.lookups, lambda n, t=table: audit.as_of(t, back, (n * 7919) % args.keys)
        )
        for driver, ms in found.items():
            results["as_of_row_ms"][driver][name] = ms
    for reader in readers.values():
        reader.dispose()
    results["as_of_table"] = {
        name: as_of_table(engine, tables[name], back) for name in ("flat", "weekly")
    }
    results["writer_ms"] = writer_ms(
        engine, {"unaudited": plain, "flat": tables["flat"], "weekly": tables["weekly"]},
        args.writes,
    )
    results["history_plan_weekly"] = plan(engine, tables["weekly"])
    later = now + week
    cut = later - WEEKS * week
    results["retention"] = {
        "detach_drop": during(
            engine, tables["weekly"], lambda: audit.maintain(engine, tables["weekly"], at=later)
        ),
        "detach_keep": during(
            engine, tables["keep"], lambda: audit.maintain(engine, tables["keep"], at=later)
        ),
        "delete_where": during(
            engine, tables["flat"], lambda: delete_before(engine, tables["flat"], cut)
        ),
    }
    partitioned = declare(sa.MetaData(), "convert", partition="week")
    one_tx = declare(sa.MetaData(), "one_tx", partition="week")

    def in_one_transaction() -> None:
        with engine.begin() as connection:
            partition_audit_table(connection, one_tx)

    results["convert"] = {
        "three_transactions": during(
            engine, tables["convert"], lambda: partition_audit_table(engine, partitioned)
        ),
        "one_transaction": during(engine, tables["one_tx"], in_one_transaction),
    }
    engine.dispose()
    results["loadavg_after"] = os.getloadavg()
    out = Path(__file__).resolve().parent / "results"
    (out / "partitions.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "partitions.md").write_text(markdown(results))
    print(markdown(results))
    return 0


def delete_before(engine: sa.Engine, table: sa.Table, cut: datetime.datetime) -> None:
    audit_table = table.info[audit.AUDIT_TABLE_KEY]
    with engine.begin() as connection:
        connection.execute(
            sa.delete(audit_table).where(audit_table.c.audit_operation_timestamp < cut)
        )


def markdown(results: dict[str, Any]) -> str:
    before, after = results["loadavg_before"], results["loadavg_after"]
    lines = [
        f"# Partitions: {results['rows']:,} audit rows per table over {results['weeks']} weeks",
        "",
        f"PostgreSQL {results['server']}; {results['keys']:,} keys; loading every table took "
        f"{results['load_seconds']:.0f} s; load average (1, 5, 15 min) "
        f"{before[0]:.1f} {before[1]:.1f} {before[2]:.1f} before, "
        f"{after[0]:.1f} {after[1]:.1f} {after[2]:.1f} after (2 cores, shared).",
        "",
        "A writer updates one row of the table whose audit table the operation works on,",
        "autocommitted, in a loop: its median alone (the half second before) is the baseline.",
        "",
        "| operation | seconds | writer alone, median (ms) | writer's longest wait (ms) "
        "| ratio | writes during |",
        "|---|---|---|---|---|---|",
    ]
    for group in ("retention", "convert"):
        for name, value in results[group].items():
            if isinstance(value, dict):
                base = value["writer_alone_median_ms"]
                lines.append(
                    f"| {group}: {name} | {value['seconds']:.3f} | {base:.2f} "
                    f"| {value['writer_max_ms']:.1f} | {value['writer_max_ms'] / base:.1f} "
                    f"| {value['writes_during']} |"
                )
    lines += ["", "One row's history, median of lookups (ms):", ""]
    lines += ["| driver | unpartitioned | 52 weekly partitions | ratio |", "|---|---|---|---|"]
    for driver, times in results["history_ms"].items():
        flat, weekly = times["flat"], times["weekly"]
        lines.append(f"| {driver} | {flat:.2f} | {weekly:.2f} | {weekly / flat:.2f} |")
    lines += ["", "One row's state 26 weeks back (`as_of(table, at, pk)`), median (ms):", ""]
    lines += ["| driver | unpartitioned | 52 weekly partitions | ratio |", "|---|---|---|---|"]
    for driver, times in results["as_of_row_ms"].items():
        flat, weekly = times["flat"], times["weekly"]
        lines.append(f"| {driver} | {flat:.2f} | {weekly:.2f} | {weekly / flat:.2f} |")
    lines += ["", "The whole table's state 26 weeks back (`as_of(table, at)`), median of 3:", ""]
    lines += ["| audit table | seconds | rows |", "|---|---|---|"]
    for name, value in results["as_of_table"].items():
        lines.append(f"| {name} | {value['seconds']:.2f} | {value['rows']:,} |")
    writer = results["writer_ms"]
    lines += ["", "The writer's single-row INSERT, autocommitted, median (ms):", ""]
    lines += ["| table | ms | ratio to unaudited |", "|---|---|---|"]
    for name, value in writer.items():
        lines.append(f"| {name} | {value:.3f} | {value / writer['unaudited']:.2f} |")
    lines += [
        "",
        "Plan of the history query on the weekly table:",
        "",
        "```",
        results["history_plan_weekly"],
        "```",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
