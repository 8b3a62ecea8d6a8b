#!/usr/bin/env python
"""What do seals and erasure cost on a large trail?

One command (starts a throwaway PostgreSQL like ``capture.py``)::

    .venv/bin/python bench/seals.py [--rows 1000000 10000000] [--rounds 3] [--versions 1000]

For each trail size (audit rows of one statement-mode table with five mirrored columns, filled
by bulk INSERTs through the trigger): ``seal`` of the whole trail (rows/s) and ``verify`` of it,
each against the **read floor**, streaming the same rows as text in ``audit_id`` order to the
client without hashing (what any seal must at least do); then ``erase`` of one subject with
``--versions`` versions in that trail, against a plain ``UPDATE ... SET col = NULL`` of another
subject's as many versions through the history index.  Seal and verify run ``--rounds`` times
on the smallest size (the chain is dropped between rounds) and once on larger ones; erasure runs
``--rounds`` times on every size, a fresh subject each round.  Medians; ratios to the floor of
the same run.  Writers pay nothing for sealing by construction: no trigger changes.  Writes
``bench/results/seals.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

import sqlalchemy_postgresql_audit as audit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capture import embedded_server

CHAIN_TABLES = (
    "sqlalchemy_postgresql_audit_seals",
    "sqlalchemy_postgresql_audit_seal_keys",
    "sqlalchemy_postgresql_audit_seal_rows",
    "sqlalchemy_postgresql_audit_seal_erased",
    "sqlalchemy_postgresql_audit_seal_pending",
)


def declare() -> sa.Table:
    return sa.Table(
        "person",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.Text),
        sa.Column("city", sa.Text),
        sa.Column("amount", sa.Integer),
        sa.Column("note", sa.Text),
        info={"audit.options": {"enabled": True, "append_only": True}},
    )


def timed(action: Callable[[], object], cpu: list[float] | None = None) -> float:
    """Wall seconds of ``action``; its client CPU seconds appended to ``cpu``."""
    started, process = time.perf_counter(), time.process_time()
    action()
    if cpu is not None:
        cpu.append(time.process_time() - process)
    return time.perf_counter() - started


def fill(engine: sa.Engine, table: sa.Table, upto: int) -> None:
    """Grow the trail to ``upto`` audit rows with bulk INSERTs (one audit row per row)."""
    with engine.connect() as connection:
        have = connection.execute(sa.text("SELECT count(*) FROM person_audit")).scalar_one()
    step = 1_000_000
    while have < upto:
        count = min(step, upto - have)
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO person (id, email, city, amount, note) "
                    "SELECT g, 'user' || g || '@example.com', 'city ' || (g % 1000), g % 97, "
                    "repeat('n', 20) FROM generate_series(CAST(:low AS int), CAST(:high AS int)) g"
                ),
                {"low": 1_000_000_000 - have - count, "high": 1_000_000_000 - have - 1},
            )
        have += count
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE person_audit")


def verified(engine: sa.Engine, table: sa.Table) -> None:
    report = audit.verify(engine, table)
    assert report.ok, report.problem


def drop_chain(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS " + ", ".join(CHAIN_TABLES))


def read_floor(engine: sa.Engine) -> int:
    """Stream every audit row as text by ``audit_id``, like seal and verify, hashing nothing."""
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=20_000).execute(
            sa.text(
                "SELECT audit_id, audit_operation, audit_operation_timestamp::text, "
                "audit_current_user::text, id::text, email, city, amount::text, note "
                "FROM person_audit ORDER BY audit_id"
            )
        )
        return sum(1 for _ in result)


def versions_of(engine: sa.Engine, key: int, count: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO person VALUES (:k, :e, 'Oslo', 0, 'x')"),
            {"k": key, "e": f"subject{key}@example.com"},
        )
        for n in range(count - 1):
            connection.execute(
                sa.text("UPDATE person SET amount = :n WHERE id = :k"), {"n": n, "k": key}
            )


def erasure_round(engine: sa.Engine, table: sa.Table, key: int, count: int) -> dict[str, float]:
    versions_of(engine, key, count)
    versions_of(engine, key + 1, count)
    audit.seal(engine, table)
    seconds = timed(lambda: audit.erase(engine, table, key, reason="bench"))

    def floor() -> None:
        with engine.begin() as connection:
            connection.execute(
                sa.text("SELECT set_config('sqlalchemy_postgresql_audit.erasing', '1', true)")
            )
            connection.execute(
                sa.text(
                    "UPDATE person_audit SET email = NULL, city = NULL, amount = NULL, "
                    "note = NULL WHERE id = :k"
                ),
                {"k": key + 1},
            )

    return {"erase": seconds, "erase_floor": timed(floor)}


def measure(
    engine: sa.Engine, table: sa.Table, size: int, rounds: int, args: Any
) -> dict[str, Any]:
    fill(engine, table, size)
    samples: dict[str, list[float]] = {
        k: [] for k in ("seal", "verify", "read_floor", "seal_cpu", "verify_cpu")
    }
    for _ in range(rounds):
        drop_chain(engine)
        samples["read_floor"].append(timed(lambda: read_floor(engine)))
        samples["seal"].append(timed(lambda: audit.seal(engine, table), samples["seal_cpu"]))
        samples["verify"].append(timed(lambda: verified(engine, table), samples["verify_cpu"]))
    erasures: dict[str, list[float]] = {"erase": [], "erase_floor": []}
    for n in range(args.rounds):
        for name, value in erasure_round(engine, table, 10 * size + 2 * n, args.versions).items():
            erasures[name].append(value)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT count(*) FROM person_audit")).scalar_one()
    medians = {k: statistics.median(v) for k, v in {**samples, **erasures}.items()}
    return {
        "audit_rows": rows,
        "rounds": rounds,
        "samples": {**samples, **erasures},
        "median_seconds": medians,
        "seal_rows_per_second": size / medians["seal"],
        "verify_rows_per_second": size / medians["verify"],
        "seal_vs_read_floor": medians["seal"] / medians["read_floor"],
        "verify_vs_read_floor": medians["verify"] / medians["read_floor"],
        "erase_vs_floor": medians["erase"] / medians["erase_floor"],
    }


def report_markdown(results: dict[str, Any], args: Any) -> str:
    lines = [
        "# Seals and erasure",
        "",
        f"`bench/seals.py --rows {' '.join(map(str, args.rows))} --rounds {args.rounds} "
        f"--versions {args.versions}`; load average {os.getloadavg()[0]:.2f} at the end.",
        "",
        "| audit rows | seal | seal rows/s | verify | verify rows/s | read floor | seal / floor "
        "| verify / floor | seal, verify client CPU | erase 1 subject | plain UPDATE "
        "| erase / UPDATE |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, r in results.items():
        m = r["median_seconds"]
        lines.append(
            f"| {size:,} | {m['seal']:.1f} s | {r['seal_rows_per_second']:,.0f} | "
            f"{m['verify']:.1f} s | {r['verify_rows_per_second']:,.0f} | {m['read_floor']:.1f} s "
            f"| {r['seal_vs_read_floor']:.2f}x | {r['verify_vs_read_floor']:.2f}x | "
            f"{m['seal_cpu']:.1f} s, {m['verify_cpu']:.1f} s | "
            f"{m['erase'] * 1000:.0f} ms | {m['erase_floor'] * 1000:.0f} ms | "
            f"{r['erase_vs_floor']:.1f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="SQLAlchemy URL of an existing, empty database")
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    audit.enable()
    if args.url:
        run(make_url(args.url), args)
    else:
        with embedded_server() as url:
            run(url, args)


def run(url: Any, args: Any) -> None:
    engine = sa.create_engine(url)
    table = declare()
    table.metadata.create_all(engine)
    results = {}
    for n, size in enumerate(sorted(args.rows)):
        rounds = args.rounds if n == 0 else 1
        results[size] = measure(engine, table, size, rounds, args)
        print(json.dumps({size: results[size]["median_seconds"]}), flush=True)
    engine.dispose()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "seals.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = report_markdown(results, args)
    (args.output_dir / "seals.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
