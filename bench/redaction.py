"""What each redaction form costs the writer, against the same column recorded as it is.

    .venv/bin/python bench/redaction.py [--rows 10000] [--single 2000] [--rounds 7] [--url URL]

Four tables with the same columns, audited the same way, differ only in how column ``email``
is recorded: ``plain`` (its value), ``mask``, ``hash`` and ``omit``.  Every table captures
``changed_columns`` (redaction turns it on, so ``plain`` declares it too: the ratios are the
redaction's own cost).  Per capture mode (``statement``, ``row``) and round, each table gets, in
a rotating order: ``--single`` single-row INSERTs then single-row UPDATEs of ``email`` (one
autocommitted statement each, on one connection), then a bulk INSERT of ``--rows`` rows, a bulk
UPDATE of ``email`` in all of them, and a TRUNCATE (untimed).  ``synchronous_commit=off``.
Reported: the median time per statement (single) or per row (bulk), and its ratio to
``plain``'s median in the same run.  Results go to ``bench/results/redaction.{json,md}``.
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

RESULTS = Path(__file__).parent / "results"
FORMS = ("plain", "mask", "hash", "omit")
MODES = ("statement", "row")
WORKLOADS = ("insert_single", "update_single", "insert_bulk", "update_bulk")
audit.enable()


def tables(mode: str) -> dict[str, sa.Table]:
    metadata = sa.MetaData()
    made = {}
    for form in FORMS:
        redact = {} if form == "plain" else {"email": form}
        made[form] = sa.Table(
            f"bench_{mode}_{form}",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("name", sa.String(40), nullable=False),
            sa.Column("email", sa.String(80), nullable=False),
            info={
                "audit.options": {
                    "enabled": True,
                    "mode": mode,
                    "capture": ["changed_columns"],
                    "redact": redact,
                }
            },
        )
    return made


def timed(connection: sa.Connection, table: sa.Table, single: int, rows: int) -> dict[str, float]:
    """Seconds per statement (single) or per row (bulk) of each workload, on an empty table."""
    insert, update = table.insert(), table.update()
    result: dict[str, float] = {}
    start = time.perf_counter()
    for i in range(single):
        connection.execute(insert, {"id": i, "name": "n", "email": f"user{i}@example.org"})
    result["insert_single"] = (time.perf_counter() - start) / single
    start = time.perf_counter()
    for i in range(single):
        connection.execute(update.where(table.c.id == i).values(email=f"moved{i}@example.org"))
    result["update_single"] = (time.perf_counter() - start) / single
    connection.execute(sa.text(f"TRUNCATE {table.name}"))
    i = sa.func.generate_series(1, rows).column_valued("i")
    start = time.perf_counter()
    connection.execute(
        insert.from_select(
            ["id", "name", "email"],
            sa.select(i, sa.literal("n"), sa.func.concat("user", i, "@example.org")),
        )
    )
    result["insert_bulk"] = (time.perf_counter() - start) / rows
    start = time.perf_counter()
    connection.execute(update.values(email=sa.func.concat("moved-", table.c.email)))
    result["update_bulk"] = (time.perf_counter() - start) / rows
    connection.execute(sa.text(f"TRUNCATE {table.name}, {table.name}_audit"))
    return result


def run(url: sa.URL, single: int, rows: int, rounds: int) -> dict[str, Any]:
    engine = sa.create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        connect_args={"options": "-c synchronous_commit=off"},
    )
    by_mode = {mode: tables(mode) for mode in MODES}
    samples: dict[str, dict[str, dict[str, list[float]]]] = {
        mode: {form: {w: [] for w in WORKLOADS} for form in FORMS} for mode in MODES
    }
    try:
        for made in by_mode.values():
            metadata = next(iter(made.values())).metadata
            metadata.drop_all(engine)
            metadata.create_all(engine)
        with engine.connect() as connection:
            for made in by_mode.values():  # warm-up: plans, caches, the key table
                for table in made.values():
                    timed(connection, table, 20, 100)
            for r in range(rounds):
                order = FORMS[r % len(FORMS) :] + FORMS[: r % len(FORMS)]
                for mode, made in by_mode.items():
                    for form in order:
                        measured = timed(connection, made[form], single, rows)
                        for workload, seconds in measured.items():
                            samples[mode][form][workload].append(seconds)
    finally:
        for made in by_mode.values():
            next(iter(made.values())).metadata.drop_all(engine)
        engine.dispose()
    median = {
        mode: {
            form: {w: statistics.median(s) * 1e6 for w, s in workloads.items()}
            for form, workloads in forms.items()
        }
        for mode, forms in samples.items()
    }
    ratio = {
        mode: {
            form: {w: median[mode][form][w] / median[mode]["plain"][w] for w in WORKLOADS}
            for form in FORMS
        }
        for mode in MODES
    }
    with engine.connect() as connection:
        version = connection.execute(sa.text("SHOW server_version")).scalar_one()
    return {
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "sqlalchemy": sa.__version__,
        "postgresql": version,
        "single": single,
        "rows": rows,
        "rounds": rounds,
        "median_us": median,
        "ratio_to_plain": ratio,
        "rounds_us": {
            mode: {
                form: {w: [s * 1e6 for s in ss] for w, ss in workloads.items()}
                for form, workloads in forms.items()
            }
            for mode, forms in samples.items()
        },
    }


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "# Redaction: the writer's cost of each form against the column recorded as it is\n",
        f"{data['date']}, PostgreSQL {data['postgresql']}, Python {data['python']}, SQLAlchemy "
        f"{data['sqlalchemy']}, psycopg2; median of {data['rounds']} interleaved rounds; "
        f"{data['single']} single-row statements, bulk statements of {data['rows']} rows; "
        "µs per statement (single) or per row (bulk); ratio to `plain` in the same run.\n",
        "| mode | form | " + " | ".join(WORKLOADS) + " |",
        "|---|---|" + "---:|" * len(WORKLOADS),
    ]
    for mode in MODES:
        for form in FORMS:
            cells = [
                f"{data['median_us'][mode][form][w]:.2f} ({data['ratio_to_plain'][mode][form][w]:.2f}x)"
                for w in WORKLOADS
            ]
            lines.append(f"| {mode} | {form} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=2_000)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--url", help="a database to use (default: a throwaway PostgreSQL)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with server(args.url) as url:
        data = run(url, args.single, args.rows, args.rounds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "redaction.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out / "redaction.md").write_text(markdown(data))
    sys.stdout.write(markdown(data))


if __name__ == "__main__":
    main()
