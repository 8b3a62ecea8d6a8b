#!/usr/bin/env python
"""What SECURITY DEFINER and the pinned search_path cost, measured inside the server.

The capture benchmark (``bench/capture.py --hardening``) measures the same designs through a
client, one round trip per statement; on a shared machine its spread is larger than the effect.
This script keeps the client out: each sample is one ``DO`` block that runs ``--single``
single-row statements in a PL/pgSQL loop (one trigger call per statement in either mode), or
one ``--rows``-row bulk statement.  Designs (from ``capture.create_designs``): ``statement`` and
``row`` are the library as installed; ``*_unhardened`` is the same function altered to SECURITY
INVOKER without its SET clause.  Rounds are interleaved, alternating which of a pair runs first;
the result is the median over rounds of the per-round ratio hardened / unhardened, written to
``bench/results/hardening/hardening.{json,md}``.

    .venv/bin/python bench/hardening.py [--rounds 15 --single 2000 --rows 50000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import capture

OUT = Path(__file__).resolve().parent / "results" / "hardening"
PAIRS = (("statement", "statement_unhardened"), ("row", "row_unhardened"))


def workloads(table: str, single: int, rows: int) -> dict[str, str]:
    t = capture.qualified(table)
    loop = "DO $b$ BEGIN FOR i IN 1..{n} LOOP {sql}; END LOOP; END $b$"
    return {
        "insert_single": loop.format(
            n=single,
            sql=f"INSERT INTO {t} (id, account, amount, label) VALUES (i, 1, 1, 'x')",
        ),
        "update_single": loop.format(
            n=single, sql=f"UPDATE {t} SET amount = amount + 1 WHERE id = i"
        ),
        "delete_single": loop.format(n=single, sql=f"DELETE FROM {t} WHERE id = i"),
        "insert_bulk": f"INSERT INTO {t} (id, account, amount, label) "
        f"SELECT g, 1, 1, 'x' FROM generate_series(1, {rows}) AS g",
        "update_bulk": f"UPDATE {t} SET amount = amount + 1",
        "delete_bulk": f"DELETE FROM {t}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--single", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=50000)
    args = parser.parse_args()
    with capture.embedded_server() as url:
        engine = sa.create_engine(url.set(drivername="postgresql+psycopg"), poolclass=sa.NullPool)
        with engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {capture.q(capture.SCHEMA)}")
        designs, _ = capture.create_designs(engine, with_pypi=False, with_hardening=True)
        tables = {d.name: d for d in designs}
        seconds: dict[str, dict[str, list[float]]] = {}
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.exec_driver_sql("SET audit.username = 'bench'")
            for round_no in range(args.rounds + 1):  # round 0 warms up, unrecorded
                for pair in PAIRS:
                    for name in pair if round_no % 2 else reversed(pair):
                        design = tables[name]
                        connection.exec_driver_sql(
                            f"TRUNCATE {capture.qualified(design.audit_table or '')}"
                        )
                        for workload, sql in workloads(
                            design.table, args.single, args.rows
                        ).items():
                            connection.exec_driver_sql("CHECKPOINT")
                            started = time.perf_counter()
                            connection.exec_driver_sql(sql)
                            elapsed = time.perf_counter() - started
                            if round_no:
                                seconds.setdefault(name, {}).setdefault(workload, []).append(
                                    elapsed
                                )
                print(f"round {round_no}/{args.rounds} done", file=sys.stderr, flush=True)
        engine.dispose()
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "args": vars(args),
        "median_ms": {
            name: {w: statistics.median(s) * 1000 for w, s in by.items()}
            for name, by in seconds.items()
        },
        "ratio_hardened_to_unhardened": {
            hardened: {
                w: statistics.median(
                    h / u for h, u in zip(seconds[hardened][w], seconds[plain][w], strict=True)
                )
                for w in seconds[hardened]
            }
            for hardened, plain in PAIRS
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "hardening.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Cost of SECURITY DEFINER and the pinned search_path (server-side loops)",
        "",
        f"- {result['date']}, {args.rounds} interleaved rounds, {args.single} single-row "
        f"statements per sample (one DO block), {args.rows}-row bulk statements",
        "- median over rounds of (hardened time / unhardened time) in the same round",
        "",
        "| workload | statement: hardened / unhardened | row: hardened / unhardened |",
        "|---|---:|---:|",
    ]
    ratios = result["ratio_hardened_to_unhardened"]
    for workload in ratios["statement"]:
        lines.append(
            f"| {workload} | {ratios['statement'][workload]:.3f} | {ratios['row'][workload]:.3f} |"
        )
    lines += ["", "Median ms per sample:", "", "| workload | " + " | ".join(seconds) + " |"]
    lines.append("|---|" + "---:|" * len(seconds))
    for workload in ratios["statement"]:
        row = " | ".join(f"{result['median_ms'][n][workload]:.1f}" for n in seconds)
        lines.append(f"| {workload} | {row} |")
    (OUT / "hardening.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
