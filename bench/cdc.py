#!/usr/bin/env python
"""Change-data-capture mode: what writers pay, and how fast the trail follows (issue 16).

Needs two databases with ``wal_level = logical`` (the source; the target, on another server
or another database of the same one) and ``pgbench``::

    .venv/bin/python bench/cdc.py --source postgresql://u@host1/src --target postgresql://u@host2/dst

**Writer cost.**  pgbench TPC-B on the source (``pgbench -i -s <scale>`` once), all four
tables audited, interleaved rounds of each design at ``synchronous_commit`` on and off:

``unaudited``    no triggers, no publication, no slot (the baseline);
``trigger``      the library's statement-level triggers (trigger mode, the default);
``cdc``          ``mode="cdc"``: the tables published, a slot holding their WAL, no trigger;
``cdc+context``  as ``cdc``, and every transaction also inserts its context row, as a writer
                 inside ``audit_context`` does (what the library sends in front of the first
                 statement).

During the writer runs nobody consumes the slot: the writer's own cost is measured, not the
CPU the decoder and the target take on a machine they share.

**Consumer.**  ``Consumer(source, target).run_once()`` after ``--changes`` single-row INSERTs
committed in transactions of 1,000 (design 1: subscription, apply worker, row triggers):
changes/s end to end.  Then pgbench at a fixed ``--rate`` of single-row upserts (each its own
transaction, one change) for ``--duration`` seconds with the subscription running, sampling the slot's lag (bytes
and the walsender's flush lag) every 0.2 s.  Medians throughout; results in
``cdc.json`` and ``cdc.md`` of ``--out`` (``bench/results`` by default), the Markdown headed by
the date, the versions, the load average before and after and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

import sqlalchemy_postgresql_audit as audit
from sqlalchemy_postgresql_audit.cdc import Consumer
from sqlalchemy_postgresql_audit.cdc.status import cdc_status
from sqlalchemy_postgresql_audit.render import cdc_stale as stale_sql

RESULTS = Path(__file__).resolve().parent / "results"
TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")
DESIGNS = ("unaudited", "trigger", "cdc", "cdc+context")
#: The built-in TPC-B script, with the settings and context row the library sends in front of
#: its first statement, in the same round trip (``\;`` joins them, as psycopg2 sends them).
CONTEXT_SCRIPT = """\\set aid random(1, 100000 * :scale)
\\set bid random(1, 1 * :scale)
\\set tid random(1, 10 * :scale)
\\set delta random(-5000, 5000)
BEGIN;
SELECT pg_catalog.set_config('audit.username', 'alice', true) \\;
INSERT INTO audit_cdc_context (settings) VALUES ('{"username": "alice"}') \\;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
"""


def models(mode: str | None, slot: str) -> sa.MetaData:
    """The pgbench tables as an application declares them (reflected), audited in ``mode``."""
    metadata = sa.MetaData(naming_convention={"audit.slot": slot})
    for name in TABLES:
        info = {} if mode is None else {"audit.options": {"enabled": True, "mode": mode}}
        sa.Table(name, metadata, info=info, autoload_with=_SOURCE)
    return metadata


def conninfo(url: URL) -> str:
    return (
        f"host={url.host or 'localhost'} port={url.port or 5432} dbname={url.database} "
        f"user={url.username or os.environ.get('USER', 'postgres')}"
    )


def pgbench(args: argparse.Namespace, *options: str, sync: str = "on") -> str:
    env = {**os.environ, "PGOPTIONS": f"-c synchronous_commit={sync}"}
    if args.source_url.password:
        env["PGPASSWORD"] = str(args.source_url.password)
    done = subprocess.run(
        [args.pgbench, *options, conninfo(args.source_url)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"pgbench {' '.join(options)}: {done.stderr}")
    return done.stdout


def tps(output: str) -> float:
    for line in output.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    raise SystemExit(f"no tps in pgbench output:\n{output}")


def reset(source: sa.Engine) -> None:
    """No triggers, publications or slots of a previous design; history emptied; vacuumed."""
    with source.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in TABLES:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}_audit CASCADE")
        connection.exec_driver_sql(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE database = current_database() AND NOT active"
        )
        connection.exec_driver_sql("DROP PUBLICATION IF EXISTS audit_cdc, audit_cdc_context")
        connection.exec_driver_sql(
            "DROP TABLE IF EXISTS audit_cdc_context, audit_cdc_context_joins"
        )
        for (statement,) in connection.execute(
            sa.text(
                "SELECT format('DROP FUNCTION %s CASCADE', p.oid::regprocedure) FROM pg_proc p "
                "JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'public' "
                "WHERE p.proname LIKE 'public_pgbench_%_audit'"
            )
        ).all():
            connection.exec_driver_sql(statement)
        connection.exec_driver_sql("TRUNCATE pgbench_history")
        connection.exec_driver_sql("VACUUM ANALYZE")
        connection.exec_driver_sql("CHECKPOINT")


def install(source: sa.Engine, design: str) -> None:
    if design == "unaudited":
        return
    metadata = models("cdc" if design.startswith("cdc") else "statement", "bench_cdc")
    for table in metadata.sorted_tables:
        if table.info.get(audit.AUDIT_TABLE_KEY) is not None:
            table.info[audit.AUDIT_TABLE_KEY].create(source, checkfirst=True)
    audit.install_audit_triggers(metadata, source)


def settle(source: sa.Engine) -> None:
    """Vacuum and checkpoint after installing, before the writers run, for every design alike.

    Installing a CDC table that holds rows records their baseline in its audit table (500,000
    ``pgbench_accounts`` rows at scale 5): without this, the checkpoint writing those pages and
    the autovacuum their insert triggers would run during the CDC designs' runs and be counted
    as what their writers pay.
    """
    with source.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
        connection.exec_driver_sql("CHECKPOINT")


def writer_cost(args: argparse.Namespace, source: sa.Engine) -> dict[str, Any]:
    script = Path("/tmp") / f"cdc-context-{uuid.uuid4().hex}.sql"
    script.write_text(CONTEXT_SCRIPT)
    runs: dict[str, list[float]] = {}
    options = ["-n", "-c", str(args.clients), "-j", str(args.clients), "-T", str(args.seconds)]
    for round_ in range(args.rounds):
        for offset in range(len(DESIGNS)):
            design = DESIGNS[(offset + round_) % len(DESIGNS)]
            for sync in ("off", "on"):
                reset(source)
                install(source, design)
                settle(source)
                extra = ["-f", str(script), "-D", f"scale={args.scale}"]
                output = pgbench(
                    args, *options, *(extra if design == "cdc+context" else ()), sync=sync
                )
                runs.setdefault(f"{design} sync={sync}", []).append(tps(output))
                print(
                    f"round {round_ + 1} {design:12} sync={sync:3} {runs[f'{design} sync={sync}'][-1]:9.1f} tps",
                    flush=True,
                )
    reset(source)
    script.unlink()
    medians = {key: statistics.median(values) for key, values in runs.items()}
    # Paired: each run against the unaudited run of the same round and setting, so that load
    # from elsewhere on a shared machine cancels out; the median of those ratios.
    ratios = {key: statistics.median(paired(runs, key)) for key in runs}
    return {"runs": runs, "median_tps": medians, "ratio_to_unaudited": ratios}


def paired(runs: dict[str, list[float]], key: str) -> list[float]:
    """Each round's tps of ``key`` over the unaudited tps of the same round and setting."""
    baseline = runs[f"unaudited sync={key.rsplit('=', 1)[1]}"]
    return [value / baseline[round_] for round_, value in enumerate(runs[key])]


def describe(source: sa.Engine, load_before: tuple[float, ...]) -> dict[str, Any]:
    """What the numbers were measured on: a shared machine shows in the load averages."""
    with source.connect() as connection:
        version = connection.exec_driver_sql("SHOW server_version").scalar()
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "postgresql": version,
        "python": platform.python_version(),
        "sqlalchemy": sa.__version__,
        "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "command": shlex.join(["bench/cdc.py", *_public(sys.argv[1:])]),
    }


def _public(argv: list[str]) -> list[str]:
    """The command line without host names and users: only what shapes the measurement."""
    hidden = {"--source", "--target", "--pgbench", "--out"}
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg.split("=", 1)[0] in hidden:
            skip = "=" not in arg
        else:
            kept.append(arg)
    return kept


def header(run: dict[str, Any]) -> list[str]:
    return [
        "# CDC: writer cost (pgbench TPC-B) and consumer (design 1)",
        "",
        f"- date: {run['date']}",
        f"- PostgreSQL {run['postgresql']}, Python {run['python']}, SQLAlchemy {run['sqlalchemy']}",
        f"- machine: {run['cpus']} CPUs; load average (1, 5, 15 min) before "
        f"{run['load_before']}, after {run['load_after']}",
        f"- command: `{run['command']}`",
        "",
    ]


def consumer_throughput(
    args: argparse.Namespace, source: sa.Engine, target: sa.Engine
) -> dict[str, Any]:
    slot = f"bench_{uuid.uuid4().hex[:10]}"
    metadata = sa.MetaData(naming_convention={"audit.slot": slot})
    item = sa.Table(
        "bench_item",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    metadata.drop_all(source)
    metadata.drop_all(target)  # a replica left by an earlier run would refuse the same keys
    with target.begin() as connection:
        connection.exec_driver_sql(
            "DROP TABLE IF EXISTS audit_cdc_context, audit_cdc_context_joins"
        )
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=3600)
    try:
        consumer.run_once()
        samples: list[float] = []
        replacing_on: list[float] = []
        for round_ in range(args.rounds * 2 if args.replacing_ab else args.rounds):
            # The stale-row triggers are off unless the source lost rows outside the stream;
            # with --replacing-ab every other round has them on, to measure what they cost.
            replacing = args.replacing_ab and round_ % 2 == 1
            if args.replacing_ab:
                with target.begin() as connection:
                    for statement in stale_sql.switch(None, "bench_item", enabled=replacing):
                        connection.exec_driver_sql(statement)
            base = round_ * args.changes
            with source.begin() as connection:
                for start in range(0, args.changes, 1000):
                    connection.execute(
                        item.insert(),
                        [
                            {"id": base + i, "name": f"n{base + i}"}
                            for i in range(start, start + 1000)
                        ],
                    )
            began = time.perf_counter()
            written = consumer.run_once()
            elapsed = time.perf_counter() - began
            (replacing_on if replacing else samples).append(written / elapsed)
            print(
                f"consumer{' (stale-row triggers on)' if replacing else ''}: {written} changes "
                f"in {elapsed:.2f} s = {written / elapsed:,.0f}/s",
                flush=True,
            )
        lag = sustained_lag(args, source, metadata)
        result = {"changes_per_second": samples, "median": statistics.median(samples), **lag}
        if replacing_on:
            result["replacing_on"] = replacing_on
            result["median_replacing_on"] = statistics.median(replacing_on)
            result["paired_ratio_median"] = statistics.median(
                on / off for on, off in zip(replacing_on, samples, strict=True)
            )
        return result
    finally:
        consumer.drop()
        metadata.drop_all(source)
        with source.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("SELECT pg_drop_replication_slot(%s)", (slot,))


def sustained_lag(
    args: argparse.Namespace, source: sa.Engine, metadata: sa.MetaData
) -> dict[str, Any]:
    """The lag while TPC-B-like single-table transactions arrive at ``--rate`` per second."""
    script = Path("/tmp") / f"cdc-rate-{uuid.uuid4().hex}.sql"
    script.write_text(
        "\\set id random(1, 1000000000)\n"
        "INSERT INTO bench_item (id, name) VALUES (:id, 'x') ON CONFLICT (id) DO UPDATE SET name = 'y';\n"
    )
    seconds: list[float] = []
    bytes_: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            found = cdc_status(source, metadata)
            if found.lag_bytes is not None:
                bytes_.append(found.lag_bytes)
            if found.lag_seconds is not None:
                seconds.append(found.lag_seconds)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        pgbench(
            args,
            "-n",
            "-c",
            "4",
            "-j",
            "2",
            "-R",
            str(args.rate),
            "-T",
            str(args.duration),
            "-f",
            str(script),
        )
    finally:
        done.set()
        sampler.join()
        script.unlink()
    return {
        "rate_changes_per_second": args.rate,
        "lag_seconds_median": statistics.median(seconds) if seconds else None,
        "lag_seconds_max": max(seconds) if seconds else None,
        "lag_bytes_median": statistics.median(bytes_) if bytes_ else None,
    }


def main() -> None:
    global _SOURCE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--pgbench", default=shutil.which("pgbench") or "pgbench")
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--changes", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=2_000)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--skip-writer", action="store_true")
    parser.add_argument(
        "--replacing-ab",
        action="store_true",
        help="alternate consumer rounds with the stale-row triggers on (what they cost while on)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for cdc.{json,md}")
    args = parser.parse_args()
    load_before = os.getloadavg()
    args.source_url = make_url(args.source)
    audit.enable()
    source = sa.create_engine(args.source_url, poolclass=sa.NullPool)
    target = sa.create_engine(make_url(args.target), poolclass=sa.NullPool)
    _SOURCE = source
    pgbench(args, "-i", "-q", "-s", str(args.scale))
    result: dict[str, Any] = {}
    if not args.skip_writer:
        result["writer"] = writer_cost(args, source)
    result["consumer"] = consumer_throughput(args, source, target)
    result["run"] = describe(source, load_before)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cdc.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = header(result["run"])
    writer = result.get("writer")
    if writer is not None:
        lines += [
            "| design | median tps | median paired ratio to unaudited | paired ratios (min-max) |",
            "|---|---|---|---|",
        ]
        for key, value in writer["median_tps"].items():
            ratios = paired(writer["runs"], key)
            lines.append(
                f"| {key} | {value:.1f} | {writer['ratio_to_unaudited'][key]:.3f} "
                f"| {min(ratios):.3f}-{max(ratios):.3f} |"
            )
        lines.append("")
    consumer = result["consumer"]
    lines.append(
        f"consumer (design 1): median {consumer['median']:,.0f} changes/s end to end; "
        f"at {consumer['rate_changes_per_second']} changes/s: lag median "
        f"{consumer['lag_seconds_median']} s, max {consumer['lag_seconds_max']} s, "
        f"median {consumer['lag_bytes_median']} bytes"
    )
    if "median_replacing_on" in consumer:
        lines.append(
            f"consumer with the stale-row triggers on (alternate rounds): median "
            f"{consumer['median_replacing_on']:,.0f} changes/s; paired ratio on/off "
            f"(median) {consumer['paired_ratio_median']:.3f}"
        )
    (args.out / "cdc.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


_SOURCE: sa.Engine


if __name__ == "__main__":
    main()
