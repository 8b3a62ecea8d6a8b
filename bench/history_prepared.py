#!/usr/bin/env python
"""One row's history over 52 weekly partitions: psycopg2 with the library's prepared
statements, psycopg2 without them (``audit_prepare=False``), and psycopg 3, in the same run.

One command (starts a throwaway PostgreSQL like ``capture.py``, or ``--url``)::

    .venv/bin/python bench/history_prepared.py [--rows 1000000] [--keys 10000] [--lookups 300]

The tables and their load are ``partitions.py``'s (audit rows spread evenly over the 52 weeks
before now, ``rows / keys`` versions per key: the defaults give the 100 versions per key of its
10-million-row run), an unpartitioned audit table beside the weekly one.  Each query runs once
per key untimed first, then the three readers take turns lookup by lookup (``lookup_ms``).
Before timing, every reader must return the same rows for a few keys.
Also where a psycopg2 call's time goes without preparing: ``EXPLAIN (ANALYZE, SUMMARY)`` of the
exact SQL, planning against execution, median of 50.  Writes
``bench/results/history_prepared.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capture import embedded_server
from partitions import UTC, WEEKS, declare, load, lookup_ms, make_weeks

#: Reader name -> (driver, execution options of its engine).
READERS: dict[str, tuple[str, dict[str, Any]]] = {
    "psycopg2, prepared": ("psycopg2", {}),
    "psycopg2, unprepared": ("psycopg2", {"audit_prepare": False}),
    "psycopg 3": ("psycopg", {}),
}


def same_rows(readers: dict[str, sa.Engine], queries: list[sa.Select[Any]]) -> None:
    """Every reader returns the same rows for each query (prepared or not, either driver)."""
    for query in queries:
        found = {}
        for name, reader in readers.items():
            with reader.connect() as connection:
                found[name] = [tuple(row) for row in connection.execute(query)]
        first = next(iter(found.values()))
        wrong = [name for name, rows in found.items() if rows != first]
        if wrong:
            raise AssertionError(f"{wrong} differ from {next(iter(found))} for {query}")


def planning_ms(engine: sa.Engine, query: sa.Select[Any], runs: int) -> dict[str, float]:
    """Median planning and execution time the server reports for ``query`` as psycopg2 sends it
    unprepared (the values in the text): ``EXPLAIN`` put in front by a listener."""
    found: dict[str, list[float]] = {"planning": [], "execution": []}

    def explain(*args: Any) -> tuple[str, Any]:
        return f"EXPLAIN (ANALYZE, SUMMARY) {args[2]}", args[3]

    with engine.connect().execution_options(audit_prepare=False) as connection:
        sa.event.listen(connection, "before_cursor_execute", explain, retval=True)
        for _ in range(runs):
            for line in connection.execute(query).scalars():
                for kind in found:
                    if line.startswith(f"{kind.capitalize()} Time:"):
                        found[kind].append(float(line.split()[2]))
    return {kind: statistics.median(values) for kind, values in found.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="SQLAlchemy URL of an existing database to use")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--explains", type=int, default=50)
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    audit.enable()
    if args.url:
        return run(sa.make_url(args.url), args)
    with embedded_server() as url:
        return run(url, args)


def run(url: sa.URL, args: argparse.Namespace) -> int:
    engine = sa.create_engine(url.set(drivername="postgresql+psycopg2"))
    now = datetime.datetime.now(UTC)
    metadata = sa.MetaData()
    week = datetime.timedelta(weeks=1)
    tables = {
        "unpartitioned": declare(metadata, "flat"),
        "52 weekly partitions": declare(
            metadata, "weekly", partition="week", retention=WEEKS * week
        ),
    }
    load_before = os.getloadavg()
    metadata.create_all(engine)
    make_weeks(engine, tables["52 weekly partitions"], now)
    for table in tables.values():
        load(engine, table, args.rows, args.keys, now)
    with engine.connect() as connection:
        server = connection.exec_driver_sql("SHOW server_version").scalar_one()
    back = now - WEEKS // 2 * week
    shapes: dict[str, Callable[[sa.Table, int], sa.Select[Any]]] = {
        "history(table, key)": lambda t, key: audit.history(t, key),
        "as_of(table, at, key), 26 weeks back": lambda t, key: audit.as_of(t, back, key),
        "changes(table, key, since=, until=), one week 26 weeks back": lambda t, key: (
            audit.changes(t, key, since=back, until=back + week)
        ),
    }
    readers = {
        name: sa.create_engine(
            url.set(drivername=f"postgresql+{driver}"), execution_options=options
        )
        for name, (driver, options) in READERS.items()
    }
    lookups: dict[str, dict[str, dict[str, float]]] = {}
    split: dict[str, dict[str, dict[str, float]]] = {}
    for shape, query in shapes.items():
        lookups[shape], split[shape] = {}, {}
        for name, table in tables.items():
            same_rows(readers, [query(table, key) for key in range(0, args.keys, args.keys // 5 or 1)])
            lookups[shape][name] = lookup_ms(
                readers, args.lookups, lambda n, t=table, q=query: q(t, (n * 7919) % args.keys)
            )
            split[shape][name] = planning_ms(engine, query(table, 42), args.explains)
    for reader in readers.values():
        reader.dispose()
    engine.dispose()
    results = {
        "server": server,
        "rows": args.rows,
        "keys": args.keys,
        "weeks": WEEKS,
        "lookups": args.lookups,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "lookup_ms": lookups,
        "explain_ms": split,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "history_prepared.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.output_dir / "history_prepared.md").write_text(markdown(results))
    print(markdown(results))
    return 0


def markdown(results: dict[str, Any]) -> str:
    before, after = results["loadavg_before"], results["loadavg_after"]
    lines = [
        f"# One row's history: {results['rows']:,} audit rows over {results['weeks']} weeks, "
        "prepared or not",
        "",
        f"PostgreSQL {results['server']}; {results['keys']:,} keys "
        f"({results['rows'] // results['keys']:,} versions each); load average (1, 5, 15 min) "
        f"{before[0]:.1f} {before[1]:.1f} {before[2]:.1f} before, "
        f"{after[0]:.1f} {after[1]:.1f} {after[2]:.1f} after (2 cores, shared).",
        "",
        f"Median of {results['lookups']} lookups (ms), the readers taking turns; the ratio is "
        "to psycopg2 unprepared on the same table:",
    ]
    for shape, by_table in results["lookup_ms"].items():
        lines += ["", f"`{shape}`:", "", "| reader | " + " | ".join(by_table) + " |"]
        lines.append("|---|" + "---|" * len(by_table))
        for reader in READERS:
            cells = []
            for times in by_table.values():
                base = times["psycopg2, unprepared"]
                cells.append(f"{times[reader]:.2f} ({times[reader] / base:.2f})")
            lines.append(f"| {reader} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Unprepared, where the server's time goes: `EXPLAIN (ANALYZE, SUMMARY)` of the exact "
        "SQL, median (ms):",
        "",
        "| query | table | planning | execution |",
        "|---|---|---|---|",
    ]
    for shape, by_table in results["explain_ms"].items():
        for name, times in by_table.items():
            lines.append(
                f"| `{shape}` | {name} | {times['planning']:.2f} | {times['execution']:.2f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
