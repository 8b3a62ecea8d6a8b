"""What the runtime installation check costs per statement, once it has passed.

    .venv/bin/python bench/runtime_check.py [--inserts 10000] [--rounds 11] [--url URL]

On psycopg2 it times, in interleaved rounds on one connection, batches of single-row Core
INSERTs (one transaction per batch, ``synchronous_commit=off``):

- ``without``: the ``before_execute`` listener removed (the Engine class keeps its event
  dispatch switched on, as it is whenever any listener was ever registered);
- ``other``: the listener on, writing to a table that is not audited (the early return);
- ``audited``: the listener on, writing to an audited table whose check passed.

Every table has the same columns; the audited one has its triggers, so ``audited`` also pays for
the trigger, which is measured separately as ``audited_without`` (the audited table, listener
removed).  The check's own cost is ``audited / audited_without``.  The listener is also called
directly (no I/O) to give its Python cost per statement.  Results go to
``bench/results/runtime_check.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit
from embedded import server
from sqlalchemy_postgresql_audit.install import runtime_check

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("without", "other", "audited", "audited_without")
audit.enable()

metadata = sa.MetaData()


def _table(name: str, **info: Any) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("body", sa.String(40), nullable=False),
        info=info,
    )


plain = _table("bench_plain")
audited = _table("bench_audited", **{"audit.options": {"enabled": True}})


def listening(on: bool) -> None:
    if on:
        runtime_check._LISTENERS.install()
    else:
        runtime_check._LISTENERS.remove()


def batch(connection: sa.Connection, variant: str, n: int, first_id: int) -> float:
    table = audited if variant.startswith("audited") else plain
    listening(variant in ("other", "audited"))
    insert = table.insert()
    start = time.perf_counter()
    with connection.begin():
        for i in range(first_id, first_id + n):
            connection.execute(insert, {"id": i, "body": "x"})
    return (time.perf_counter() - start) / n


def listener_cost(connection: sa.Connection, calls: int = 100_000) -> float:
    """The listener alone, called as SQLAlchemy calls it, for a checked audited INSERT."""
    insert = audited.insert()
    options = connection.get_execution_options()
    listener = runtime_check._LISTENERS._before_execute
    start = time.perf_counter()
    for _ in range(calls):
        listener(connection, insert, (), {}, options)
    return (time.perf_counter() - start) / calls


def run(url: sa.URL, n: int, rounds: int) -> dict[str, Any]:
    engine = sa.create_engine(url, connect_args={"options": "-c synchronous_commit=off"})
    metadata.drop_all(engine)
    metadata.create_all(engine)
    timings: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    next_id = 1
    try:
        with engine.connect() as connection:
            for variant in VARIANTS:  # warm-up; the first audited write runs the check
                batch(connection, variant, 100, next_id)
                next_id += 100
            for r in range(rounds):
                order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
                for variant in order:
                    timings[variant].append(batch(connection, variant, n, next_id))
                    next_id += n
                with connection.begin():
                    connection.execute(sa.text("TRUNCATE bench_plain, bench_audited"))
            listening(True)
            direct = listener_cost(connection)
    finally:
        listening(True)
        engine.dispose()
    median = {v: statistics.median(t) * 1e6 for v, t in timings.items()}
    return {
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "sqlalchemy": sa.__version__,
        "inserts_per_batch": n,
        "rounds": rounds,
        "median_us": median,
        "rounds_us": {v: [t * 1e6 for t in ts] for v, ts in timings.items()},
        "listener_alone_us": direct * 1e6,
        "ratio_other": median["other"] / median["without"],
        "ratio_audited": median["audited"] / median["audited_without"],
    }


def markdown(data: dict[str, Any]) -> str:
    m = data["median_us"]
    return (
        "# Runtime installation check: cost per statement once it has passed\n\n"
        f"{data['date']}, Python {data['python']}, SQLAlchemy {data['sqlalchemy']}, psycopg2; "
        f"{data['inserts_per_batch']} single-row Core INSERTs per batch (one transaction), "
        f"median of {data['rounds']} interleaved rounds, one connection, "
        "`synchronous_commit=off`.\n\n"
        "| table | listener off (µs) | listener on (µs) | on / off |\n"
        "|---|---:|---:|---:|\n"
        f"| not audited | {m['without']:.1f} | {m['other']:.1f} | {data['ratio_other']:.3f}x |\n"
        f"| audited (triggers installed, check passed) | {m['audited_without']:.1f} | "
        f"{m['audited']:.1f} | {data['ratio_audited']:.3f}x |\n\n"
        f"The listener alone, called directly for a checked audited INSERT (no I/O): "
        f"{data['listener_alone_us']:.2f} µs.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inserts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--url", help="a database to use (default: a throwaway PostgreSQL)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with server(args.url) as url:
        data = run(url, args.inserts, args.rounds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "runtime_check.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out / "runtime_check.md").write_text(markdown(data))
    sys.stdout.write(markdown(data))


if __name__ == "__main__":
    main()
