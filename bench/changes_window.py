#!/usr/bin/env python
"""What does a time window save ``changes(table, key)`` on a partitioned audit table?

One command (starts a throwaway PostgreSQL like ``capture.py``)::

    .venv/bin/python bench/changes_window.py [--keys 2000] [--versions 520] [--samples 300]

One audit table partitioned by week over 52 weeks, ``--keys`` rows with ``--versions`` versions
each spread evenly over the year (written straight into the audit table, as a replica's apply
would).  For random keys, interleaved in random order: ``changes(table, key)`` unbounded, and
``changes(table, key, since=..., until=...)`` for one week early, in the middle and late in the
year (the later the window, the more earlier partitions its look-back for the version before it
plans).  Each window's result is checked to equal the unbounded one filtered in Python.
Medians, in the driver's own time (psycopg2: no prepared statements, every call planned);
ratios to the unbounded call of the same run.  Writes ``bench/results/changes_window.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

import sqlalchemy_postgresql_audit as audit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capture import embedded_server

START = datetime.datetime(2025, 3, 3, tzinfo=datetime.timezone.utc)  # a Monday
WEEKS = 52
WINDOWS = (2, 26, 50)  # the week each window starts in


def declare() -> sa.Table:
    return sa.Table(
        "accounts",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": True, "partition": "week"}},
    )


def fill(engine: sa.Engine, table: sa.Table, keys: int, versions: int) -> int:
    table.metadata.create_all(engine)
    for week in range(WEEKS + 1):
        audit.maintain(engine, table, at=START + datetime.timedelta(weeks=week))
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(
            sa.text(
                "INSERT INTO accounts_audit (audit_operation, audit_operation_timestamp, "
                "audit_current_user, id, balance) "
                "SELECT CASE WHEN v = 0 THEN 'I' ELSE 'U' END, "
                ":start + v * :step + k * interval '1 millisecond', 'bench', k, v "
                "FROM generate_series(1, :keys) k, generate_series(0, :versions - 1) v"
            ),
            {
                "start": START,
                "step": datetime.timedelta(weeks=WEEKS) / versions,
                "keys": keys,
                "versions": versions,
            },
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE accounts_audit"))
    return keys * versions


def measure(engine: sa.Engine, table: sa.Table, keys: int, samples: int) -> dict[str, float]:
    chosen = random.Random(1)
    spent: dict[str, list[float]] = {"unbounded": [], **{f"week {w}": [] for w in WINDOWS}}
    with engine.connect() as connection:
        for _ in range(samples):
            key = chosen.randint(1, keys)
            forms: dict[str, Any] = {"unbounded": audit.changes(table, key)}
            bounds = {}
            for week in WINDOWS:
                since = START + datetime.timedelta(weeks=week)
                until = since + datetime.timedelta(weeks=1)
                bounds[f"week {week}"] = (since, until)
                forms[f"week {week}"] = audit.changes(table, key, since=since, until=until)
            results = {}
            for name in chosen.sample(list(forms), len(forms)):
                started = time.perf_counter()
                results[name] = connection.execute(forms[name]).all()
                spent[name].append(time.perf_counter() - started)
            for name, (since, until) in bounds.items():
                expected = [
                    r for r in results["unbounded"] if since <= r.audit_operation_timestamp < until
                ]
                assert results[name] == expected, (key, name)
    return {name: statistics.median(values) for name, values in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="SQLAlchemy URL of an existing, empty database")
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--versions", type=int, default=520, help="versions per key")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.url:
        run(make_url(args.url), args)
    else:
        with embedded_server() as url:
            run(url.set(drivername="postgresql+psycopg2"), args)


def run(url: Any, args: Any) -> None:
    engine = sa.create_engine(url)
    table = declare()
    rows = fill(engine, table, args.keys, args.versions)
    medians = measure(engine, table, args.keys, args.samples)
    engine.dispose()
    base = medians["unbounded"]
    results = {
        "audit_rows": rows,
        "partitions": WEEKS + 1,
        "samples": args.samples,
        "median_ms": {name: round(value * 1000, 3) for name, value in medians.items()},
        "ratio_to_unbounded": {name: round(value / base, 3) for name, value in medians.items()},
    }
    print(json.dumps(results), flush=True)
    lines = [
        f"`changes(table, key)` over {WEEKS} weekly partitions, {rows:,} audit rows "
        f"({args.versions} versions per key), median of {args.samples}, {url.drivername}:",
        "",
        "| call | median | ratio to unbounded |",
        "|---|---|---|",
        *(
            f"| {name} | {results['median_ms'][name]} ms | {results['ratio_to_unbounded'][name]} |"
            for name in medians
        ),
    ]
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "changes_window.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.output_dir / "changes_window.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
