"""What audit_context adds to a transaction, per driver.

    .venv/bin/python bench/context.py [--transactions 100] [--rounds 31] [--url URL]

For psycopg2, psycopg 3 and asyncpg it times, in interleaved rounds, transactions of one
single-row INSERT into an audited table with two session settings:

- ``plain``: no settings at all (the baseline);
- ``explicit``: ``set_session_vars(connection, ...)`` then the INSERT (what users wrote before);
- ``context``: the INSERT under ``audit_context(...)`` (entered once for the whole batch).

Each round runs every variant's batch on one connection, in rotating order; the per-transaction
time of a variant is the median over rounds.  Results go to ``bench/results/context.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

import sqlalchemy_postgresql_audit as audit
from embedded import server

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("plain", "explicit", "context")
DRIVERS = ("psycopg2", "psycopg", "asyncpg")
audit.enable()

metadata = sa.MetaData()
table = sa.Table(
    "bench_context",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("body", sa.String(40), nullable=False),
    info={
        "audit.options": {
            "enabled": True,
            "session_settings": [
                sa.Column("username", sa.String),
                sa.Column("request_id", sa.UUID),
            ],
        }
    },
)
VALUES = {"username": "bench-user", "request_id": uuid.uuid4()}


def fast_commits(engine: sa.Engine) -> sa.Engine:
    """``synchronous_commit=off`` on every connection: time the client path, not the fsync."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET synchronous_commit = off")
        cursor.close()

    sa.event.listen(engine, "connect", on_connect)
    return engine


class Ids:
    """Fresh primary keys across every batch of a run."""

    def __init__(self) -> None:
        self.next = 0

    def take(self) -> int:
        self.next += 1
        return self.next


def sync_batch(connection: sa.Connection, variant: str, n: int, ids: Ids) -> float:
    insert = table.insert()
    start = time.perf_counter()
    with audit.audit_context(**VALUES) if variant == "context" else _nothing():
        for _ in range(n):
            with connection.begin():
                if variant == "explicit":
                    audit.set_session_vars(connection, **VALUES)
                connection.execute(insert, {"id": ids.take(), "body": "x"})
    return (time.perf_counter() - start) / n


async def async_batch(connection: AsyncConnection, variant: str, n: int, ids: Ids) -> float:
    insert = table.insert()
    start = time.perf_counter()
    with audit.audit_context(**VALUES) if variant == "context" else _nothing():
        for _ in range(n):
            async with connection.begin():
                if variant == "explicit":
                    await audit.aset_session_vars(connection, **VALUES)
                await connection.execute(insert, {"id": ids.take(), "body": "x"})
    return (time.perf_counter() - start) / n


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def rounds_of(batch: Callable[[str], float], rounds: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    batch("plain")  # warm-up: connection, prepared statements, caches
    for r in range(rounds):
        order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
        for variant in order:
            timings[variant].append(batch(variant))
    return timings


def run_driver(url: sa.URL, driver: str, n: int, rounds: int) -> dict[str, list[float]]:
    ids = Ids()
    setup = sa.create_engine(url.set(drivername="postgresql+psycopg2"))
    with setup.begin() as connection:
        connection.execute(sa.text("TRUNCATE bench_context"))
        ids.next = connection.execute(
            sa.text("SELECT count(*) FROM bench_context_audit")
        ).scalar_one()
        ids.next += 10_000_000
    setup.dispose()
    if driver == "asyncpg":
        timings = asyncio.run(_run_async(url, n, rounds, ids))
    else:
        engine = fast_commits(sa.create_engine(url.set(drivername=f"postgresql+{driver}")))
        try:
            with engine.connect() as connection:
                timings = rounds_of(lambda v: sync_batch(connection, v, n, ids), rounds)
        finally:
            engine.dispose()
    check_recorded(url, expected=2 * n * rounds)
    return timings


def check_recorded(url: sa.URL, expected: int) -> None:
    """Every explicit and context transaction recorded both settings; plain ones recorded none."""
    setup = sa.create_engine(url.set(drivername="postgresql+psycopg2"))
    audit_table = table.info[audit.AUDIT_TABLE_KEY]
    query = sa.select(sa.func.count()).where(
        audit_table.c.id > 10_000_000,
        audit_table.c.audit_username == VALUES["username"],
        audit_table.c.audit_request_id == VALUES["request_id"],
    )
    with setup.begin() as connection:
        recorded = connection.execute(query).scalar_one()
        connection.execute(sa.text("TRUNCATE bench_context_audit"))
    setup.dispose()
    if recorded != expected:
        raise SystemExit(f"expected {expected} audited transactions with settings, got {recorded}")


async def _run_async(url: sa.URL, n: int, rounds: int, ids: Ids) -> dict[str, list[float]]:
    engine = create_async_engine(url.set(drivername="postgresql+asyncpg"))
    fast_commits(engine.sync_engine)
    timings: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    try:
        async with engine.connect() as connection:
            await async_batch(connection, "plain", n, ids)
            for r in range(rounds):
                order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
                for variant in order:
                    timings[variant].append(await async_batch(connection, variant, n, ids))
    finally:
        await engine.dispose()
    return timings


def hook_cost(url: sa.URL, n: int = 20_000) -> float:
    """The Python cost of applying a context at a transaction's first statement, in seconds.

    Calls the ``before_cursor_execute`` listener directly (no statement is sent), forgetting
    what was applied and carried before each call as a new transaction's ``begin`` does: the
    client-side share of what a transaction under ``audit_context`` adds on top of the server's
    two ``set_config``.  (``bench/writer_listeners.py`` times every listener a statement passes,
    also in a process with CDC tables.)
    """
    from sqlalchemy_postgresql_audit.context import scope as hooks

    class Statement:
        statement = sa.insert(table)

    class Compiled:
        compiled, no_parameters, execute_style = Statement(), False, None

    engine = sa.create_engine(url.set(drivername="postgresql+psycopg2"))
    statement, parameters = "INSERT INTO bench_context (id, body) VALUES (%(id)s, %(body)s)", {}
    try:
        with audit.audit_context(**VALUES), engine.connect() as connection:
            start = time.perf_counter()
            for _ in range(n):
                hooks._forget(connection)
                hooks._before_cursor_execute(
                    connection, None, statement, parameters, Compiled, False
                )
            elapsed = time.perf_counter() - start
            hooks._forget(connection)  # the last one ends before the context does
            return elapsed / n
    finally:
        engine.dispose()


def report(
    results: dict[str, dict[str, list[float]]], hook: float, args: argparse.Namespace
) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for driver, timings in results.items():
        med = {variant: statistics.median(values) for variant, values in timings.items()}
        summary[driver] = {
            "median_us": {variant: round(value * 1e6, 1) for variant, value in med.items()},
            "context_added_us": round((med["context"] - med["plain"]) * 1e6, 1),
            "explicit_added_us": round((med["explicit"] - med["plain"]) * 1e6, 1),
            "context_vs_plain": round(med["context"] / med["plain"], 3),
            "context_vs_explicit": round(med["context"] / med["explicit"], 3),
            "rounds_us": {v: [round(t * 1e6, 1) for t in ts] for v, ts in timings.items()},
        }
    return {
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "sqlalchemy": sa.__version__,
        "transactions": args.transactions,
        "rounds": args.rounds,
        "hook_us": round(hook * 1e6, 2),
        "drivers": summary,
    }


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "# audit_context: added latency per transaction",
        "",
        f"{data['date']}, Python {data['python']}, SQLAlchemy {data['sqlalchemy']}; "
        f"{data['transactions']} transactions (one single-row INSERT into an audited table, two "
        f"settings) per batch, median of {data['rounds']} interleaved rounds, one connection, "
        "`synchronous_commit=off`.",
        "",
        "| driver | plain (µs) | explicit set_session_vars (µs) | audit_context (µs) "
        "| context added (µs) | explicit added (µs) | context / plain | context / explicit |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for driver, s in data["drivers"].items():
        m = s["median_us"]
        lines.append(
            f"| {driver} | {m['plain']} | {m['explicit']} | {m['context']} "
            f"| {s['context_added_us']} | {s['explicit_added_us']} "
            f"| {s['context_vs_plain']:.2f}x | {s['context_vs_explicit']:.2f}x |"
        )
    lines += [
        "",
        f"Client-side cost of applying the context at a transaction's first statement (the "
        f"listener alone, no I/O): {data['hook_us']} µs.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--url", help="SQLAlchemy URL of a database to use (default: embedded)")
    parser.add_argument("--drivers", nargs="+", default=list(DRIVERS), choices=DRIVERS)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for context.{json,md}")
    args = parser.parse_args(argv)
    with server(args.url) as url:
        setup = sa.create_engine(url)
        metadata.drop_all(setup)
        metadata.create_all(setup)
        setup.dispose()
        results = {
            driver: run_driver(url, driver, args.transactions, args.rounds)
            for driver in args.drivers
        }
        hook = hook_cost(url)
    data = report(results, hook, args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "context.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out / "context.md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main(sys.argv[1:])
