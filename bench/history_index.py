#!/usr/bin/env python
"""What does the history index (source key..., audit_id) cost on writes, and what does it buy?

One command (starts a throwaway PostgreSQL like ``capture.py``)::

    .venv/bin/python bench/history_index.py [--single 3000] [--rows 100000] [--rounds 7]

Designs, each its own table in one database: ``unaudited``, ``no_index`` (statement mode,
``history_index=False``) and ``index`` (statement mode, the default).  Workloads per round, in
interleaved order: ``--single`` autocommitted single-row INSERTs then UPDATEs, a ``--rows``
bulk INSERT ... SELECT, a bulk UPDATE, then one row's history read back ``--lookups`` times.
Prints medians and ratios to ``no_index``; writes ``bench/results/history_index.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capture import embedded_server

DESIGNS = ("unaudited", "no_index", "index")
WORKLOADS = ("insert_single", "update_single", "insert_bulk", "update_bulk", "history_lookup")


def declare(metadata: sa.MetaData, design: str) -> sa.Table:
    options = {"enabled": True, "history_index": design == "index"}
    return sa.Table(
        f"t_{design}",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("v", sa.Integer),
        sa.Column("note", sa.Text),
        info={"audit.options": options} if design != "unaudited" else {},
    )


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run_round(engine: sa.Engine, table: sa.Table, args: argparse.Namespace) -> dict[str, float]:
    audit_table = table.info.get(audit.AUDIT_TABLE_KEY)
    with engine.begin() as connection:  # identifiers of this script; TRUNCATE leaves no bloat
        connection.exec_driver_sql(f"TRUNCATE {table.name}")
        if audit_table is not None:
            connection.exec_driver_sql(f"TRUNCATE {audit_table.name}")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("CHECKPOINT")
    samples: dict[str, float] = {}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        insert = table.insert()
        update = table.update().where(table.c.id == sa.bindparam("key")).values(v=table.c.v + 1)

        def singles(statement: Any, params: Callable[[int], dict[str, Any]]) -> None:
            for n in range(args.single):
                connection.execute(statement, params(n))

        samples["insert_single"] = timed(lambda: singles(insert, lambda n: {"id": n, "v": 0}))
        samples["update_single"] = timed(lambda: singles(update, lambda n: {"key": n}))
        bulk = sa.text(
            f"INSERT INTO {table.name} (id, v, note) "  # identifiers of this script
            "SELECT g, 0, 'x' FROM generate_series(CAST(:low AS integer), CAST(:high AS integer)) g"
        )
        low = args.single
        samples["insert_bulk"] = timed(
            lambda: connection.execute(bulk, {"low": low, "high": low + args.rows - 1})
        )
        samples["update_bulk"] = timed(lambda: connection.execute(table.update().values(v=1)))
        connection.exec_driver_sql("ANALYZE")
        if audit_table is None:
            samples["history_lookup"] = float("nan")
        else:
            history = (
                sa.select(audit_table)
                .where(audit_table.c.id == sa.bindparam("key"))
                .order_by(audit_table.c.audit_id)
            )

            def lookups() -> None:
                for n in range(args.lookups):
                    connection.execute(history, {"key": low + n * 7 % args.rows}).all()

            samples["history_lookup"] = timed(lookups)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--single", type=int, default=3000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    samples: dict[str, dict[str, list[float]]] = {d: {w: [] for w in WORKLOADS} for d in DESIGNS}
    with embedded_server() as url:
        engine = sa.create_engine(url)
        metadata = sa.MetaData()
        tables = {design: declare(metadata, design) for design in DESIGNS}
        metadata.create_all(engine)
        for round_number in range(args.rounds):
            order = DESIGNS[round_number % 3 :] + DESIGNS[: round_number % 3]
            for design in order:
                for workload, seconds in run_round(engine, tables[design], args).items():
                    samples[design][workload].append(seconds)
        engine.dispose()
    medians = {d: {w: statistics.median(s) for w, s in ws.items()} for d, ws in samples.items()}
    plain = {
        d: {w: None if math.isnan(m) else m for w, m in ms.items()} for d, ms in medians.items()
    }
    lines = [
        f"# History index cost: medians of {args.rounds} interleaved rounds",
        "",
        f"{args.single} single-row statements, {args.rows} bulk rows, {args.lookups} lookups of "
        "one row's history (seconds; ratio to `no_index`)",
        "",
        "| workload | " + " | ".join(DESIGNS) + " |",
        "|---|" + "---:|" * len(DESIGNS),
    ]
    for workload in WORKLOADS:
        base = medians["no_index"][workload]
        cells = [
            "n/a"
            if math.isnan(medians[d][workload])
            else f"{medians[d][workload]:.3f} ({medians[d][workload] / base:.2f}x)"
            for d in DESIGNS
        ]
        lines.append(f"| {workload} | " + " | ".join(cells) + " |")
    report = "\n".join(lines) + "\n"
    print(report)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "history_index.md").write_text(report)
    (args.output_dir / "history_index.json").write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "medians": plain}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
