#!/usr/bin/env python
"""Where a trigger call's time goes: the audit function with one piece removed at a time.

Inside the server, like ``hardening.py``: each sample is one ``DO`` block running ``--single``
single-row statements in a PL/pgSQL loop (one trigger call each), or one ``--rows``-row bulk
statement, so no client round trip dilutes the difference.  Every variant is its own copy of the
capture benchmark's table in one database, audited by the library (``statement`` or ``row``
mode), then changed as named:

``full``       the function as installed (SECURITY DEFINER, pinned settings, guard, ...).
``no_set``     without its ``SET`` clauses (``ALTER FUNCTION ... RESET ALL``): the cost of
               entering and leaving a function with settings (before PostgreSQL 17 the
               search path is recomputed on the way in and again on the way out).
``invoker``    also SECURITY INVOKER: the cost of the definer call itself.
``no_guard``   the body without the table and trigger-name guards.
``no_writer``  the writer expression replaced by ``session_user``.
``no_setting`` the ``audit.username`` setting read replaced by NULL.
``no_moved_keys`` the body without looking for moved keys (``K`` rows; UPDATE only; statement
               mode: no key trigger either).
``no_key_trigger`` statement mode only: the key trigger dropped, the function as installed:
               what the trigger's presence costs an UPDATE that moves no key (its ``WHEN``).
``before_key_trigger`` statement mode only: the statement call looking for moved keys itself
               (the anti-join over the transition tables, as template 2 had it before the key
               trigger, which is dropped): the same run's "before".
``no_insert``  the body without its INSERTs: everything but writing the audit rows.
``empty``      a body that only returns, with the function's settings kept: the call.
``bare``       a body that only returns, SECURITY INVOKER, no settings: what firing a trigger
               costs PostgreSQL (with transition tables in statement mode).
``no_index``   as installed, the audit table without its history index.

``unaudited`` and ``floor`` (the statement writing the same audit rows through a
data-modifying CTE, into an audit table with the same indexes) run in the same rounds.
Rounds are interleaved (the order rotates); the result is the median over rounds of each
sample's time, and of its ratio to the floor in the same round.  A sample's time is the server
backend's CPU time (``/proc/<pid>/schedstat``, nanoseconds on the CPU) when the server runs on
this machine, else wall time (``--clock``): on a shared machine, CPU time leaves out the time the
backend waited for a CPU, which is most of the noise; WAL flushes by other processes and the
checkpoint between samples are outside both.  With ``track_functions =
all``, the function's own time per call (``pg_stat_user_functions``) is read for ``full``.

    .venv/bin/python bench/breakdown.py [--url URL] [--rounds 9 --single 2000 --rows 20000]

Writes ``bench/results/breakdown[-<label>].{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

import sqlalchemy_postgresql_audit as audit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import capture
import moved_keys

OUT = Path(__file__).resolve().parent / "results"
MODES = ("statement", "row")
VARIANTS = (
    "full",
    "no_set",
    "invoker",
    "no_guard",
    "no_writer",
    "no_setting",
    "no_moved_keys",
    "no_key_trigger",
    "before_key_trigger",
    "no_insert",
    "empty",
    "bare",
    "no_index",
)
WORKLOADS = (
    "insert_single",
    "update_single",
    "delete_single",
    "insert_bulk",
    "update_bulk",
    "delete_bulk",
)
USERNAME = "'bench-user'"  # a constant of this script, as the floor's audit_username


#: Variants that only statement mode has.
STATEMENT_ONLY = ("no_key_trigger", "before_key_trigger")


def variants(mode: str, chosen: tuple[str, ...] = VARIANTS) -> list[str]:
    """The variants run for ``mode``, among ``chosen`` (``--variants``; ``full`` always)."""
    return [
        v
        for v in VARIANTS
        if (v in chosen or v == "full") and (mode == "statement" or v not in STATEMENT_ONLY)
    ]


def designs(chosen: tuple[str, ...] = VARIANTS) -> list[str]:
    return ["unaudited", "floor", *(f"{m}_{v}" for m in MODES for v in variants(m, chosen))]


def table_of(design: str) -> str:
    return f"b_{design}"


def create(engine: sa.Engine, chosen: tuple[str, ...]) -> None:
    metadata = sa.MetaData(schema=capture.SCHEMA)
    sa.Table(table_of("unaudited"), metadata, *capture.source_columns())
    floor = sa.Table(
        table_of("floor"),
        metadata,
        *capture.source_columns(),
        info=capture.library_options("statement"),
    )
    for mode in MODES:
        for variant in variants(mode, chosen):
            sa.Table(
                table_of(f"{mode}_{variant}"),
                metadata,
                *capture.source_columns(),
                info=capture.library_options(mode),
            )
    metadata.create_all(engine)
    floor_metadata = sa.MetaData(schema=capture.SCHEMA)
    floor.to_metadata(floor_metadata)
    audit.uninstall_audit_triggers(floor_metadata, engine)
    with engine.begin() as connection:
        for mode in MODES:
            for variant in variants(mode, chosen):
                alter(connection, f"{mode}_{variant}", variant)


def alter(connection: sa.Connection, design: str, variant: str) -> None:
    """Change the installed function (or audit table) of ``design`` into ``variant``."""
    function = capture.qualified(f"{capture.SCHEMA}_{table_of(design)}_audit")
    if variant == "no_set":
        connection.exec_driver_sql(f"ALTER FUNCTION {function}() RESET ALL")
        return
    if variant in ("invoker", "bare"):
        connection.exec_driver_sql(f"ALTER FUNCTION {function}() SECURITY INVOKER RESET ALL")
    if variant == "no_index":
        index = connection.exec_driver_sql(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = "
            f"'{capture.qualified(table_of(design) + '_audit')}'::regclass AND NOT indisprimary"
        ).scalar_one()
        connection.exec_driver_sql(f"DROP INDEX {index}")
        return
    if variant in ("full", "invoker"):
        return
    source = connection.exec_driver_sql(
        f"SELECT pg_get_functiondef('{function}()'::regprocedure)"
    ).scalar_one()
    match = re.match(r"(?s)(.*?\nAS (\$\w*\$))(.*)(\2\s*)$", source)
    assert match is not None, source
    head, _, body, tail = match.groups()
    if variant in ("empty", "bare"):
        body = "\nBEGIN\n  RETURN NULL;\nEND;\n"
    elif variant == "no_guard":
        # Both guards (table and trigger name), each an outer IF at two spaces' indent.
        body, n = re.subn(r"(?s)\n  IF \(TG_TABLE_SCHEMA.*?\n  END IF;\n", "\n", body, count=1)
        assert n == 1, variant
        body, n = re.subn(r"(?s)\n  IF TG_NAME .*?\n  END IF;\n", "\n", body, count=1)
        assert n == 1, variant
    elif variant == "no_writer":
        body, n = re.subn(r"(writer pg_catalog\.text := ).*?;\n", r"\1session_user;\n", body)
        assert n == 1, variant
    elif variant == "no_setting":
        body, n = re.subn(r"(setting_0 [^:]*:= ).*?;\n", r"\1NULL;\n", body)
        assert n == 1, variant
    elif variant == "no_moved_keys" and design.startswith("row"):
        body, n = re.subn(r"(?s)IF ROW\(.*?END IF;\n\s*END IF;\n", "", body, count=1)
        assert n == 1, variant
    elif variant == "no_key_trigger":
        trigger = capture.q(f"{capture.SCHEMA}_{table_of(design)}_audit_update_key")
        table = capture.qualified(table_of(design))
        connection.exec_driver_sql(f"DROP TRIGGER {trigger} ON {table}")
        return
    elif variant in ("no_moved_keys", "before_key_trigger"):
        how = "cut" if variant == "no_moved_keys" else "anti_join"
        trigger = capture.q(f"{capture.SCHEMA}_{table_of(design)}_audit_update_key")
        assert moved_keys.reshape(
            connection, function, capture.qualified(table_of(design)), trigger, how
        ), variant
        return
    elif variant == "no_insert":
        # INSERT statements only (the TRUNCATE copy's dynamic one is a string: kept).
        body, n = re.subn(r"(?ms)^( +)INSERT INTO .*?;\n", r"\1NULL;\n", body)
        assert n >= 1, variant
    connection.exec_driver_sql(head + body + tail)


def workloads(design: str, single: int, rows: int) -> dict[str, str]:
    t = capture.qualified(table_of(design))
    plain = {
        "insert_single": (
            "insert",
            f"INSERT INTO {t} (id, account, amount, label) VALUES (i, 1, 1, 'x')",
        ),
        "update_single": ("update", f"UPDATE {t} SET amount = amount + 1 WHERE id = i"),
        "delete_single": ("delete", f"DELETE FROM {t} WHERE id = i"),
        "insert_bulk": (
            "insert",
            f"INSERT INTO {t} (id, account, amount, label) "
            f"SELECT g, 1, 1, 'x' FROM generate_series({single + 1}, {single + rows}) AS g",
        ),
        "update_bulk": ("update", f"UPDATE {t} SET amount = amount + 1"),
        "delete_bulk": ("delete", f"DELETE FROM {t}"),
    }
    if design == "floor":
        wrap = capture.floor_wrap(table_of("floor") + "_audit")
        plain = {w: (op, wrap(sql, op).replace("%s", USERNAME)) for w, (op, sql) in plain.items()}
    loop = "DO $b$ BEGIN FOR i IN 1..{n} LOOP {sql}; END LOOP; END $b$"
    return {
        w: loop.format(n=single, sql=sql) if w.endswith("_single") else sql
        for w, (_, sql) in plain.items()
    }


def function_ms(cursor: Any, design: str) -> tuple[int, float]:
    """(calls, total ms) of ``design``'s audit function so far, as the statistics report it."""
    cursor.execute(
        "SELECT coalesce(sum(calls), 0), coalesce(sum(total_time), 0) FROM pg_stat_user_functions "
        "WHERE schemaname = %s AND funcname = %s",
        (capture.SCHEMA, f"{capture.SCHEMA}_{table_of(design)}_audit"),
    )
    calls, total = cursor.fetchone()
    return int(calls), float(total)


def run(url: URL, args: argparse.Namespace) -> dict[str, Any]:
    engine = sa.create_engine(url.set(drivername="postgresql+psycopg"), poolclass=sa.NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {capture.q(capture.SCHEMA)} CASCADE")
        connection.exec_driver_sql(f"CREATE SCHEMA {capture.q(capture.SCHEMA)}")
    create(engine, args.variants)
    raw = engine.raw_connection()
    conn: Any = raw.driver_connection
    conn.autocommit = True
    cursor = conn.cursor()
    cursor.execute("SET audit.username = 'bench-user'")
    cursor.execute("SET track_functions = 'all'")
    version = cursor.execute("SHOW server_version").fetchone()[0]
    clock = sample_clock(args.clock, cursor.execute("SELECT pg_backend_pid()").fetchone()[0])
    seconds: dict[str, dict[str, list[float]]] = {
        d: {w: [] for w in WORKLOADS} for d in designs(args.variants)
    }
    per_call: dict[str, dict[str, list[float]]] = {
        d: {w: [] for w in WORKLOADS if w.endswith("_single")}
        for d in designs(args.variants)
        if d.endswith("_full")
    }
    order = designs(args.variants)
    for round_no in range(args.rounds + 1):  # round 0 warms up, unrecorded
        shift = round_no % len(order)
        for design in order[shift:] + order[:shift]:
            cursor.execute(f"TRUNCATE {capture.qualified(table_of(design))}")
            if design != "unaudited":
                cursor.execute(f"TRUNCATE {capture.qualified(table_of(design) + '_audit')}")
            for workload, sql in workloads(design, args.single, args.rows).items():
                cursor.execute("CHECKPOINT")
                tracked = design in per_call and workload in per_call[design]
                if tracked:
                    cursor.execute("SELECT pg_stat_force_next_flush()")
                    cursor.execute("SELECT 1")
                    before = function_ms(cursor, design)
                started = clock()
                cursor.execute(sql)
                elapsed = clock() - started
                if tracked:
                    cursor.execute("SELECT pg_stat_force_next_flush()")
                    cursor.execute("SELECT 1")
                    after = function_ms(cursor, design)
                    calls = after[0] - before[0]
                    if round_no and calls:
                        per_call[design][workload].append((after[1] - before[1]) / calls * 1000)
                if round_no:
                    seconds[design][workload].append(elapsed)
        print(f"round {round_no}/{args.rounds} done", file=sys.stderr, flush=True)
    pieces = micro(cursor, args.rounds * 2 + 1, args.single * 10, clock)
    raw.close()
    engine.dispose()
    ratio = {
        d: {
            w: statistics.median(s / f for s, f in zip(by[w], seconds["floor"][w], strict=True))
            for w in WORKLOADS
        }
        for d, by in seconds.items()
    }
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "server_version": version,
        "clock": args.clock,
        "load_average": os.getloadavg(),
        "args": {k: v for k, v in vars(args).items() if k != "url"},
        "median_ms": {
            d: {w: statistics.median(s) * 1000 for w, s in by.items()} for d, by in seconds.items()
        },
        "ratio_to_floor": ratio,
        "micro": pieces,
        "function_us_per_call": {
            d: {w: statistics.median(v) for w, v in by.items() if v} for d, by in per_call.items()
        },
    }


#: Expressions of the function's DECLARE block, each timed alone in a PL/pgSQL loop.
EXPRESSIONS = {
    "nothing (loop only)": "n := i",
    "writer (current_setting('role') twice)": "t := CASE WHEN pg_catalog.current_setting('role') "
    "= 'none' THEN session_user ELSE pg_catalog.current_setting('role') END",
    "setting read (audit.username)": "v := NULLIF(pg_catalog.current_setting('audit.username', "
    "true), '')",
    "clock_timestamp()": "ts := pg_catalog.clock_timestamp()",
    "TG_OP-like dispatch, third branch": "IF op = 'INSERT' THEN n := 1; ELSIF op = 'UPDATE' THEN "
    "n := 2; ELSIF op = 'DELETE' THEN n := 3; END IF",
}
#: Function settings of an empty BEFORE ROW trigger (it returns NULL: nothing is written).
CALLS = {
    "plain": "",
    "SECURITY DEFINER": "SECURITY DEFINER",
    "SECURITY DEFINER, SET search_path": "SECURITY DEFINER SET search_path TO pg_catalog, pg_temp",
    "SECURITY DEFINER, SET search_path, SET enable_nestloop": "SECURITY DEFINER "
    "SET search_path TO pg_catalog, pg_temp SET enable_nestloop TO off",
}


def micro(
    cursor: Any, rounds: int, iterations: int, clock: Callable[[], float]
) -> dict[str, dict[str, float]]:
    """µs per evaluation of each expression, and per call of an empty trigger per setting."""
    cursor.execute(f"CREATE TABLE {capture.qualified('calls')} (n int)")
    calls = {}
    for n, (name, settings) in enumerate(CALLS.items()):
        function = capture.qualified(f"call_{n}")
        cursor.execute(
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql {settings} "
            "AS $f$ BEGIN RETURN NULL; END $f$"
        )
        table = capture.qualified(f"calls_{n}")
        cursor.execute(f"CREATE TABLE {table} (n int)")
        cursor.execute(
            f"CREATE TRIGGER t BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {function}()"
        )
        calls[name] = (
            f"DO $b$ BEGIN FOR i IN 1..{iterations} LOOP INSERT INTO {table} VALUES (i); "
            "END LOOP; END $b$"
        )
    declare = "n int; t text; v varchar(64); ts timestamptz; op text := 'DELETE';"
    expressions = {
        name: f"DO $b$ DECLARE {declare} BEGIN FOR i IN 1..{iterations * 5} LOOP {sql}; "
        "END LOOP; END $b$"
        for name, sql in EXPRESSIONS.items()
    }
    samples: dict[str, list[float]] = {name: [] for name in [*expressions, *calls]}
    statements = {**expressions, **calls}
    for _ in range(rounds):
        for name, sql in statements.items():
            started = clock()
            cursor.execute(sql)
            samples[name].append(clock() - started)
    loop = statistics.median(samples["nothing (loop only)"]) / (iterations * 5)
    return {
        "expression_us": {
            name: (statistics.median(samples[name]) / (iterations * 5) - loop) * 1e6
            for name in expressions
            if name != "nothing (loop only)"
        },
        "empty_trigger_call_us": {
            name: statistics.median(samples[name]) / iterations * 1e6 for name in calls
        },
    }


def sample_clock(kind: str, backend_pid: int) -> Callable[[], float]:
    """Seconds, by ``kind``: the backend's CPU time (``cpu``, the server on this machine) or
    the wall clock (``wall``)."""
    if kind == "wall":
        return time.perf_counter
    stat = Path(f"/proc/{backend_pid}/schedstat")
    if not stat.exists():
        raise SystemExit("--clock cpu needs the server on this machine (try --clock wall)")

    def cpu() -> float:
        return int(stat.read_text().split()[0]) / 1e9

    return cpu


def us_per_change(
    result: dict[str, Any], design: str, workload: str, args: argparse.Namespace
) -> float:
    n = args.single if workload.endswith("_single") else args.rows
    return float(result["median_ms"][design][workload]) * 1000 / n


def markdown(result: dict[str, Any], args: argparse.Namespace) -> str:
    load = ", ".join(f"{x:.2f}" for x in result["load_average"])
    lines = [
        f"# Where a trigger call's time goes (PostgreSQL {result['server_version']})",
        "",
        f"- {result['date']}, load average at the end {load}; {args.rounds} interleaved rounds;"
        f" clock: {result.get('clock', 'wall')} time of the server backend;"
        f" {args.single} single-row statements per sample (one DO block), {args.rows}-row bulk",
        "- µs per changed row (median sample / rows); `Δ` columns: what removing the piece saves,"
        " per row, against `full` (negative: the variant was slower, i.e. noise)",
        "- `x floor`: median over rounds of sample time / the floor's in the same round",
        "",
    ]
    for mode in MODES:
        lines += [f"## mode={mode}", "", "| variant | " + " | ".join(WORKLOADS) + " |"]
        lines.append("|---|" + "---:|" * len(WORKLOADS))
        for design in (
            "unaudited",
            "floor",
            *(f"{mode}_{v}" for v in variants(mode, args.variants)),
        ):
            cells = []
            for w in WORKLOADS:
                us = us_per_change(result, design, w, args)
                cell = f"{us:.2f} ({result['ratio_to_floor'][design][w]:.2f}x)"
                if design.startswith(mode) and not design.endswith("_full"):
                    saved = us_per_change(result, f"{mode}_full", w, args) - us
                    cell += f" Δ{saved:+.2f}"
                cells.append(cell)
            lines.append(f"| {design} | " + " | ".join(cells) + " |")
        calls = result["function_us_per_call"].get(f"{mode}_full", {})
        if calls:
            lines += [
                "",
                "Function time per call of `full` (pg_stat_user_functions, µs): "
                + ", ".join(f"{w} {v:.2f}" for w, v in calls.items()),
            ]
        lines.append("")
    lines += [
        "## Pieces alone (median of interleaved PL/pgSQL loops)",
        "",
        "| piece | µs |",
        "|---|---:|",
        *(f"| {k} | {v:.3f} |" for k, v in result["micro"]["expression_us"].items()),
        *(
            f"| call of an empty BEFORE ROW trigger (INSERT skipped), {k} | {v:.3f} |"
            for k, v in result["micro"]["empty_trigger_call_us"].items()
        ),
        "",
    ]
    return "\n".join(lines)


@contextlib.contextmanager
def server(args: argparse.Namespace) -> Iterator[URL]:
    if args.url:
        yield make_url(args.url)
    else:
        with capture.embedded_server() as url:
            yield url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", help="an existing database (superuser) instead of the embedded server"
    )
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--single", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--label", default="", help="suffix of the result files (e.g. pg15)")
    parser.add_argument(
        "--variants",
        type=lambda text: tuple(text.split(",")),
        default=VARIANTS,
        help="comma-separated variants to run (full always runs); default: all",
    )
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="time a sample by the backend's CPU time (default; the server must run on this "
        "machine) or by the wall clock",
    )
    args = parser.parse_args()
    with server(args) as url:
        result = run(url, args)
    name = "breakdown" + (f"-{args.label}" if args.label else "")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result, args)
    (OUT / f"{name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
