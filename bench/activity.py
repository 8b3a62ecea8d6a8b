#!/usr/bin/env python
"""``activity()`` on a big trail: which plans serve "who did what", and what they cost.

One command (starts a throwaway PostgreSQL like ``history.py``)::

    .venv/bin/python bench/activity.py                 # 1M audit rows over 4 tables
    .venv/bin/python bench/activity.py --rows 20000    # a quick run
    .venv/bin/python bench/activity.py --url postgresql+psycopg://user@host/db

``--tables`` audited tables share ``--rows`` audit rows, generated straight into the audit
tables with ``INSERT ... SELECT generate_series``: 30 days of changes, timestamps increasing,
50 users (``username``), one ``request_id`` per 5 consecutive changes, shared by every table
(a request that touched each table).  Each index design is added on top of the previous one:

- ``history``: only the declared history index on (key, audit_id);
- ``brin_time``: plus a BRIN index on audit_operation_timestamp;
- ``settings``: plus, per audit table, btree (audit_username, audit_operation_timestamp)
  and btree (audit_request_id);
- ``btree_time``: the BRIN index replaced by a btree on audit_operation_timestamp.

Queries: one user in the last hour, one request, everyone in the last hour, one user all
time, and the newest 50 changes.  For each: the scan of every audit table in
``EXPLAIN (ANALYZE)``, and the client-side median over ``--samples`` runs (build the select,
execute, fetch every row).  Results: ``bench/results/activity.json`` and ``activity.md``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

import sqlalchemy_postgresql_audit as audit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capture import embedded_server

RESULTS_DIR = Path(__file__).resolve().parent / "results"
START = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
DAYS = 30
USERS = 50
DESIGNS = ("history", "brin_time", "settings", "btree_time")


def declare(metadata: sa.MetaData, count: int) -> list[sa.Table]:
    return [
        sa.Table(
            f"t{number}",
            metadata,
            sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("status", sa.Text),
            info={
                "audit.options": {
                    "enabled": True,
                    "session_settings": [
                        sa.Column("username", sa.Text),
                        sa.Column("request_id", sa.UUID),
                    ],
                }
            },
        )
        for number in range(count)
    ]


def audit_of(table: sa.Table) -> sa.Table:
    audit_table: sa.Table = table.info[audit.AUDIT_TABLE_KEY]
    return audit_table


def generate(engine: sa.Engine, tables: list[sa.Table], rows: int) -> None:
    per_table = rows // len(tables)
    step = datetime.timedelta(days=DAYS) / per_table
    for table in tables:
        target = audit_of(table)
        # Names are this script's constants, quoted; every value is a bound parameter.
        quoted = engine.dialect.identifier_preparer.format_table(target)
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    f"INSERT INTO {quoted} (audit_operation, audit_operation_timestamp, "
                    "audit_current_user, audit_username, audit_request_id, id, status) "
                    "SELECT 'U', CAST(:start AS timestamptz) + g * CAST(:step AS interval), "
                    "'app', 'user-' || (g * 7919 % :users), "
                    "CAST(md5(CAST(g / 5 AS text)) AS uuid), g % 100000, 'status' "
                    "FROM generate_series(1, :rows) AS g"
                ),
                {"start": START, "step": step, "users": USERS, "rows": per_table},
            )
            connection.exec_driver_sql(f"ANALYZE {quoted}")


def add_design(engine: sa.Engine, tables: list[sa.Table], design: str) -> None:
    with engine.begin() as connection:
        for table in tables:
            target = audit_of(table)
            c = target.c
            if design == "settings":
                indexes = [
                    sa.Index(
                        f"{target.name}_by_user", c.audit_username, c.audit_operation_timestamp
                    ),
                    sa.Index(f"{target.name}_by_request", c.audit_request_id),
                ]
            elif design == "brin_time":
                indexes = [
                    sa.Index(
                        f"{target.name}_by_time",
                        c.audit_operation_timestamp,
                        postgresql_using="brin",
                    )
                ]
            elif design == "btree_time":  # replaces the BRIN index
                old = next(i for i in target.indexes if i.name == f"{target.name}_by_time")
                old.drop(connection)
                target.indexes.discard(old)
                indexes = [sa.Index(f"{target.name}_by_time", c.audit_operation_timestamp)]
            else:
                indexes = []
            for index in indexes:
                index.create(connection)
            quoted = engine.dialect.identifier_preparer.format_table(target)
            connection.exec_driver_sql(f"ANALYZE {quoted}")


def queries(
    metadata: sa.MetaData, end: datetime.datetime, request: uuid.UUID
) -> dict[str, Callable[[], sa.Select[Any]]]:
    hour = end - datetime.timedelta(hours=1)

    def newest() -> sa.Select[Any]:
        query = audit.activity(metadata)
        at = query.selected_columns.audit_operation_timestamp
        return query.order_by(None).order_by(at.desc()).limit(50)

    return {
        "one user, last hour": lambda: audit.activity(metadata, username="user-7", since=hour),
        "one request": lambda: audit.activity(metadata, request_id=request),
        "everyone, last hour": lambda: audit.activity(metadata, since=hour),
        "one user, all time": lambda: audit.activity(metadata, username="user-7"),
        "newest 50": newest,
    }


def scans(plan: dict[str, Any]) -> Iterator[str]:
    """``node (index)`` for every scan of a table or index in an EXPLAIN JSON plan."""
    if "Relation Name" in plan or "Index Name" in plan:
        index = f" ({plan['Index Name']})" if "Index Name" in plan else ""
        yield f"{plan['Node Type']}{index}"
    for child in plan.get("Plans", ()):
        yield from scans(child)


def shape(plan: dict[str, Any]) -> Iterator[str]:
    """The plan's nodes above the scans, top down (``Limit``, ``Merge Append``, ...)."""
    if "Relation Name" in plan or "Index Name" in plan:
        return
    yield plan["Node Type"]
    for child in plan.get("Plans", ()):
        yield from shape(child)


def measure(engine: sa.Engine, build: Callable[[], sa.Select[Any]], samples: int) -> dict[str, Any]:
    with engine.connect() as connection:
        compiled = build().compile(engine, compile_kwargs={"literal_binds": True})
        explained = connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}"
        ).scalar_one()
        top = explained[0]
        timings = []
        count = 0
        for _ in range(samples):
            started = time.perf_counter()
            count = len(connection.execute(build()).all())
            timings.append(time.perf_counter() - started)
    return {
        "rows": count,
        "median_ms": statistics.median(timings) * 1000,
        "server_ms": top["Execution Time"],
        "shape": " > ".join(dict.fromkeys(shape(top["Plan"]))),
        "scans": sorted(set(scans(top["Plan"]))),
    }


def run(url: URL, args: argparse.Namespace) -> dict[str, Any]:
    engine = sa.create_engine(url.set(drivername="postgresql+psycopg"))
    metadata = sa.MetaData()
    tables = declare(metadata, args.tables)
    metadata.create_all(engine)
    started = time.perf_counter()
    generate(engine, tables, args.rows)
    print(f"{args.rows:,} audit rows in {time.perf_counter() - started:.1f} s", flush=True)
    with engine.connect() as connection:
        version = connection.exec_driver_sql("SHOW server_version").scalar_one()
        end = connection.execute(
            sa.select(sa.func.max(audit_of(tables[0]).c.audit_operation_timestamp))
        ).scalar_one()
    # A request in the middle of the trail, as generate() derives them: md5 of g / 5.
    request = uuid.UUID(hashlib.md5(str(args.rows // args.tables // 10).encode()).hexdigest())
    builds = []
    for _ in range(args.samples):
        begun = time.perf_counter()
        audit.activity(metadata, username="user-7", since=end)
        builds.append(time.perf_counter() - begun)
    result: dict[str, Any] = {
        "environment": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "postgresql": version,
            "sqlalchemy": sa.__version__,
            "nproc": os.cpu_count(),
            "load_average_at_start": os.getloadavg()[0],
        },
        "parameters": {"rows": args.rows, "tables": args.tables, "samples": args.samples},
        "build_ms": statistics.median(builds) * 1000,
        "designs": {},
    }
    for design in DESIGNS:
        add_design(engine, tables, design)
        measured = {
            name: measure(engine, build, args.samples)
            for name, build in queries(metadata, end, request).items()
        }
        result["designs"][design] = measured
        for name, numbers in measured.items():
            print(f"{design:10} {name:20} {numbers['median_ms']:9.2f} ms  {numbers['rows']} rows")
    engine.dispose()
    return result


def write_results(result: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "activity.json").write_text(json.dumps(result, indent=2) + "\n")
    parameters = result["parameters"]
    lines = [
        f"# activity(): {parameters['rows']:,} audit rows over {parameters['tables']} tables",
        "",
        f"PostgreSQL {result['environment']['postgresql']}, SQLAlchemy "
        f"{result['environment']['sqlalchemy']}, {result['environment']['date']}, "
        f"{result['environment']['nproc']} CPUs, load average "
        f"{result['environment']['load_average_at_start']:.1f} at start; client-side "
        f"medians of {parameters['samples']} runs (build, execute, fetch); building the select "
        f"alone: {result['build_ms']:.2f} ms.",
        "",
        "| indexes | query | rows | median ms | server ms | plan | scans |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for design, measured in result["designs"].items():
        for name, numbers in measured.items():
            # Index names without the table's prefix: every audit table is scanned alike.
            kinds = sorted({re.sub(r"\(t\d+_", "(", scan) for scan in numbers["scans"]})
            lines.append(
                f"| {design} | {name} | {numbers['rows']} | {numbers['median_ms']:.2f} | "
                f"{numbers['server_ms']:.2f} | {numbers['shape']} | {', '.join(kinds)} |"
            )
    (folder / "activity.md").write_text("\n".join(lines) + "\n")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="SQLAlchemy URL of an existing, empty database")
    parser.add_argument("--rows", type=int, default=1_000_000, help="audit rows in all")
    parser.add_argument("--tables", type=int, default=4, help="audited tables")
    parser.add_argument("--samples", type=int, default=20, help="runs per query")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.url:
        result = run(make_url(args.url), args)
    else:
        with embedded_server() as url:
            result = run(url, args)
    write_results(result, args.output_dir)
    print(f"wrote {args.output_dir / 'activity.json'} and activity.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
