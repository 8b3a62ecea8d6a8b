"""How long Alembic autogenerate takes with many audited tables.

    .venv/bin/python bench/autogenerate.py [--sizes 50 200 500] [--rounds 3] [--url URL]

For each size N it creates N audited tables (so 2N tables with their audit tables) in a fresh
database and times, in interleaved rounds: (a) a full ``produce_migrations`` with the audit
comparator, (b) the audit comparator alone, and (c) the baseline: ``produce_migrations`` over 2N
plain tables of the same shape, with no auditing at all.  Medians are reported; results go to
``bench/results/autogenerate.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import alembic
import sqlalchemy as sa
from alembic.autogenerate import produce_migrations
from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext

import sqlalchemy_postgresql_audit as audit
from embedded import server
from sqlalchemy_postgresql_audit.alembic import compare_audit

RESULTS = Path(__file__).parent / "results"
audit.enable()


def model(n: int, *, audited: bool, prefix: str) -> sa.MetaData:
    metadata = sa.MetaData()
    for i in range(n):
        sa.Table(
            f"{prefix}{i:04d}",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(50), nullable=False),
            sa.Column("amount", sa.Numeric(12, 2)),
            sa.Column("created", sa.DateTime(timezone=True)),
            info={"audit.options": {"enabled": True}} if audited else {},
        )
    return metadata


def fresh_database(admin: sa.Engine, name: str) -> sa.URL:
    quoted = admin.dialect.identifier_preparer.quote(name)
    with admin.connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        connection.execute(sa.text(f"CREATE DATABASE {quoted}"))
    return admin.url.set(database=name)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(url: sa.URL, n: int, rounds: int) -> dict[str, Any]:
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    audited_md = model(n, audited=True, prefix="t")
    plain_md = model(2 * n, audited=False, prefix="p")
    engines = {}
    for key, metadata in (("audited", audited_md), ("plain", plain_md)):
        engine = sa.create_engine(fresh_database(admin, f"bench_autogen_{key}_{n}"))
        metadata.create_all(engine)
        engines[key] = engine

    def autogenerate(key: str, metadata: sa.MetaData) -> Callable[[], None]:
        def run() -> None:
            with engines[key].connect() as connection:
                migrations = produce_migrations(MigrationContext.configure(connection), metadata)
                assert migrations.upgrade_ops is not None
                assert migrations.upgrade_ops.is_empty(), migrations.upgrade_ops.as_diffs()

        return run

    def comparator_only() -> None:
        with engines["audited"].connect() as connection:
            context = AutogenContext(MigrationContext.configure(connection), audited_md)
            upgrade = ops.UpgradeOps(ops=[])
            compare_audit(context, upgrade, [None])
            assert upgrade.is_empty()

    runs: dict[str, list[float]] = {"audited": [], "comparator": [], "plain": []}
    for _ in range(rounds):
        runs["audited"].append(timed(autogenerate("audited", audited_md)))
        runs["comparator"].append(timed(comparator_only))
        runs["plain"].append(timed(autogenerate("plain", plain_md)))
    for engine in engines.values():
        engine.dispose()
    admin.dispose()
    medians = {k: statistics.median(v) for k, v in runs.items()}
    return {
        "audited_tables": n,
        "median_seconds": medians,
        "min_seconds": {k: min(v) for k, v in runs.items()},
        "max_seconds": {k: max(v) for k, v in runs.items()},
        "ratio_to_plain": medians["audited"] / medians["plain"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="server URL of a role that may create databases")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with server(args.url) as url:
        with sa.create_engine(url).connect() as connection:
            pg_version = connection.execute(sa.text("SHOW server_version")).scalar_one()
        results = []
        for n in args.sizes:
            result = measure(url, n, args.rounds)
            m = result["median_seconds"]
            print(
                f"{n:>4} audited tables: autogenerate {m['audited']:.2f} s "
                f"(audit comparator {m['comparator'] * 1000:.0f} ms); "
                f"{2 * n} plain tables {m['plain']:.2f} s; ratio {result['ratio_to_plain']:.2f}x",
                flush=True,
            )
            results.append(result)
    meta = {
        "date": date.today().isoformat(),
        "postgresql": pg_version,
        "sqlalchemy": sa.__version__,
        "alembic": alembic.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "rounds": args.rounds,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "autogenerate.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2)
    )
    lines = [
        f"Autogenerate with audited tables — {meta['date']}, PostgreSQL {pg_version}, "
        f"SQLAlchemy {meta['sqlalchemy']}, Alembic {meta['alembic']}, {meta['cpus']} CPUs, "
        f"median of {args.rounds} rounds",
        "",
        "| audited tables | autogenerate (s) | of which audit comparator (ms) | same number of plain tables (s) | ratio |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        m = r["median_seconds"]
        lines.append(
            f"| {r['audited_tables']} | {m['audited']:.2f} | {m['comparator'] * 1000:.0f} | "
            f"{m['plain']:.2f} | {r['ratio_to_plain']:.2f}x |"
        )
    (args.out / "autogenerate.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
