"""What the library's listeners cost the writer's Python per statement, with and without CDC.

    .venv/bin/python bench/writer_listeners.py --url postgresql+psycopg2://u@host/db \\
        [--calls 20000] [--rounds 15]

The server needs ``wal_level = logical`` (a CDC table is installed).  Every statement a writer
sends passes the library's ``before_execute`` listeners (the runtime installation check; the
required-setting check of CDC tables) and its ``before_cursor_execute`` listeners (the one that
applies ``audit_context``, which in a process declaring CDC tables also decides whether the
context row rides in front of the statement: compiled writes by their table, textual SQL by
the first word of each of its statements, cut at ``;``).  A transaction's ``begin`` and
``commit`` listeners forget what it applied.

Each statement is run once on the server (so the installation check has passed, the context
table was found and the compiled statement's answers are cached, as in a long-running
process); then SQLAlchemy's own event dispatch is called for it ``--calls`` times with what
SQLAlchemy hands the listeners (the listeners only: no statement is sent, no I/O, psycopg2, so
the settings and the context row are added to the statement's text), under ``audit_context``
with two settings, one of them required on the CDC table.  The time is the thread's CPU time
(``time.thread_time``): on a machine shared with other work, the time spent waiting for a CPU
is left out.  Cases, in rotating order per round, time per statement the median over rounds:

- ``first statement``: ``begin`` + ``before_execute`` + ``before_cursor_execute`` + ``commit``,
  a one-statement transaction, what a transaction's first statement costs;
- ``later statement``: ``before_execute`` + ``before_cursor_execute`` in a transaction whose
  context was already applied;
- ``required check removed``: the same without the required-setting check's listeners, so
  the difference is that check's cost per statement.

The process starts without CDC tables (the trigger-table case measured first), then declares
one: every case after that runs in a process with CDC tables.  Results go to
``writer_listeners.{json,md}`` in ``--out`` (``bench/results`` by default).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit
from sqlalchemy_postgresql_audit.context import required
from sqlalchemy_postgresql_audit.declare.written import WriteListeners

RESULTS = Path(__file__).parent / "results"
VALUES = {"username": "bench-user", "request_id": uuid.uuid4()}
audit.enable()


def _settings(required: bool) -> list[sa.Column[Any]]:
    return [
        sa.Column("username", sa.String, nullable=not required),
        sa.Column("request_id", sa.UUID),
    ]


def _columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("body", sa.String(40), nullable=False),
    ]


def trigger_metadata() -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData()
    table = sa.Table(
        "bench_listeners_trigger",
        metadata,
        *_columns(),
        info={"audit.options": {"enabled": True, "session_settings": _settings(False)}},
    )
    return metadata, table


def cdc_metadata() -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData(naming_convention={"audit.slot": "bench_listeners"})
    table = sa.Table(
        "bench_listeners_cdc",
        metadata,
        *_columns(),
        info={
            "audit.options": {"enabled": True, "mode": "cdc", "session_settings": _settings(True)}
        },
    )
    return metadata, table


class Ids:
    def __init__(self) -> None:
        self.next = 0

    def take(self) -> dict[str, Any]:
        self.next += 1
        return {"id": self.next, "body": "x"}


def statement_case(
    connection: sa.Connection,
    statement: Any,
    parameters: dict[str, Any],
    *,
    first: bool,
    removed: WriteListeners | None = None,
) -> Callable[[int], float]:
    """Run ``statement`` once under the context, then a timer of its listeners alone (less
    ``removed`` while it times: the difference is that listener's cost)."""
    with audit.audit_context(**VALUES), connection.begin():
        result = connection.execute(statement, parameters)
    context = result.context
    options = context.execution_options
    text, cursor_parameters = context.statement, context.parameters[0]
    dispatch = connection.dispatch
    no_multiparams: list[Any] = []

    def timed(calls: int) -> float:
        if removed is not None:
            removed.remove()
        try:
            return _timed(calls)
        finally:
            if removed is not None:
                removed.install()

    def _timed(calls: int) -> float:
        with audit.audit_context(**VALUES):
            dispatch.begin(connection)
            start = time.thread_time()
            for _ in range(calls):
                if first:
                    dispatch.begin(connection)
                element, multi, single = statement, no_multiparams, parameters
                for fn in dispatch.before_execute:
                    element, multi, single = fn(connection, element, multi, single, options)
                sql, bound = text, cursor_parameters
                for fn in dispatch.before_cursor_execute:
                    sql, bound = fn(connection, None, sql, bound, context, False)
                if first:
                    dispatch.commit(connection)
            elapsed = time.thread_time() - start
            dispatch.commit(connection)
        return elapsed / calls

    return timed


def rounds_of(
    cases: dict[str, Callable[[int], float]], calls: int, rounds: int
) -> dict[str, list[float]]:
    names = list(cases)
    for timed in cases.values():
        timed(calls // 10)  # warm-up
    timings: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            timings[name].append(cases[name](calls))
    return timings


def measure(url: sa.URL, calls: int, rounds: int) -> dict[str, list[float]]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    ids = Ids()
    plain_metadata, trigger = trigger_metadata()
    plain_metadata.drop_all(engine)
    plain_metadata.create_all(engine)
    try:
        with engine.connect() as connection:
            without_cdc = {
                "trigger table, no CDC declared, first statement": statement_case(
                    connection, trigger.insert(), ids.take(), first=True
                ),
                "trigger table, no CDC declared, later statement": statement_case(
                    connection, trigger.insert(), ids.take(), first=False
                ),
            }
            timings = rounds_of(without_cdc, calls, rounds)
        cdc_meta, cdc = cdc_metadata()
        cdc_meta.drop_all(engine)
        cdc_meta.create_all(engine)
        with engine.connect() as connection:
            insert_text = sa.text("INSERT INTO bench_listeners_cdc (id, body) VALUES (:id, :body)")
            two_statements = sa.text(
                "SET LOCAL lock_timeout = '2s'; "
                "INSERT INTO bench_listeners_cdc (id, body) VALUES (:id, :body)"
            )
            with_cdc = {
                "trigger table, CDC declared, first statement": statement_case(
                    connection, trigger.insert(), ids.take(), first=True
                ),
                "trigger table, CDC declared, later statement": statement_case(
                    connection, trigger.insert(), ids.take(), first=False
                ),
                "trigger table, CDC declared, later statement, required check removed": (
                    statement_case(
                        connection,
                        trigger.insert(),
                        ids.take(),
                        first=False,
                        removed=required._LISTENERS,
                    )
                ),
                "CDC table, first statement": statement_case(
                    connection, cdc.insert(), ids.take(), first=True
                ),
                "CDC table, later statement": statement_case(
                    connection, cdc.insert(), ids.take(), first=False
                ),
                "CDC table, later statement, required check removed": statement_case(
                    connection, cdc.insert(), ids.take(), first=False, removed=required._LISTENERS
                ),
                "CDC table, text INSERT, first statement": statement_case(
                    connection, insert_text, ids.take(), first=True
                ),
                "CDC table, text SET LOCAL; INSERT, first statement": statement_case(
                    connection, two_statements, ids.take(), first=True
                ),
            }
            timings.update(rounds_of(with_cdc, calls, rounds))
        cdc_meta.drop_all(engine)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = 'bench_listeners' AND NOT active"
            )
        plain_metadata.drop_all(engine)
    finally:
        engine.dispose()
    return timings


def report(
    timings: dict[str, list[float]], args: argparse.Namespace, server: str
) -> dict[str, Any]:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "postgresql": server,
        "python": platform.python_version(),
        "sqlalchemy": sa.__version__,
        "cpus": os.cpu_count(),
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "calls": args.calls,
        "rounds": args.rounds,
        "median_us": {name: round(statistics.median(t) * 1e6, 2) for name, t in timings.items()},
        "rounds_us": {name: [round(x * 1e6, 2) for x in t] for name, t in timings.items()},
    }


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "# The writer's listeners: Python cost per statement",
        "",
        f"- date: {data['date']}",
        f"- PostgreSQL {data['postgresql']}, Python {data['python']}, SQLAlchemy "
        f"{data['sqlalchemy']}, psycopg2",
        f"- machine: {data['cpus']} CPUs; load average at the end (1, 5, 15 min) "
        f"{data['load_after']}",
        f"- {data['calls']} calls per case and round, median of {data['rounds']} interleaved "
        "rounds, CPU time of the thread; the listeners alone, called through SQLAlchemy's event "
        "dispatch (no I/O), under `audit_context` with two settings",
        "",
        "| case | median µs per statement | min-max µs |",
        "|---|---:|---:|",
    ]
    for name, median in data["median_us"].items():
        rounds = data["rounds_us"][name]
        lines.append(f"| {name} | {median:.2f} | {min(rounds):.2f}-{max(rounds):.2f} |")
    m = data["median_us"]
    check_cdc = (
        m["CDC table, later statement"] - m["CDC table, later statement, required check removed"]
    )
    check_other = (
        m["trigger table, CDC declared, later statement"]
        - m["trigger table, CDC declared, later statement, required check removed"]
    )
    declared = (
        m["trigger table, CDC declared, first statement"]
        - m["trigger table, no CDC declared, first statement"]
    )
    lines += [
        "",
        f"The required-setting check (a later statement less the same with the check removed): "
        f"{check_cdc:.2f} µs per write to a CDC table with a required setting, "
        f"{check_other:.2f} µs per write to another table.  Declaring CDC tables in the process "
        f"changes a trigger table's first statement by {declared:+.2f} µs (medians, same run).",
        "",
        "A first statement includes the transaction's `begin` and `commit` listeners (what a "
        "one-statement transaction pays); a later statement finds the context applied.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", required=True, help="a database on a server with wal_level=logical"
    )
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    url = sa.make_url(args.url)
    timings = measure(url, args.calls, args.rounds)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as connection:
        server = str(connection.exec_driver_sql("SHOW server_version").scalar())
    engine.dispose()
    data = report(timings, args, server)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "writer_listeners.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out / "writer_listeners.md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
