"""The capture benchmark runs end to end with tiny sizes, and every design really captures."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

BENCH = Path(__file__).resolve().parents[1] / "bench" / "capture.py"
ROWS, SINGLE = 200, 30
#: Concurrent workload: clients, and transactions per client (INSERT, UPDATE, DELETE in turn).
CLIENTS, TRANSACTIONS = 3, 30
WORKLOADS = [
    "insert_single",
    "update_single",
    "delete_single",
    "insert_bulk",
    "update_bulk",
    "delete_bulk",
    "concurrent",
]
#: design -> (audit table, column holding the session setting)
AUDITED = {
    "floor": ("t_floor_audit", "audit_username"),
    "statement": ("t_statement_audit", "audit_username"),
    "row": ("t_row_audit", "audit_username"),
    "legacy_05": ("t_legacy_audit", "username"),
}


def test_quick_benchmark_writes_results_and_every_design_captures_every_change(
    database_url: URL, tmp_path: Path
) -> None:
    command = [
        sys.executable,
        str(BENCH),
        "--url",
        database_url.render_as_string(hide_password=False),
        "--quick",
        "--rows",
        str(ROWS),
        "--single",
        str(SINGLE),
        "--rounds",
        "1",
        "--clients",
        str(CLIENTS),
        "--transactions",
        str(TRANSACTIONS),
        "--warmup",
        "0",
        "--pin",
        "none",
        "--keep",
        "--output-dir",
        str(tmp_path),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 0, finished.stderr

    result = json.loads((tmp_path / "capture.json").read_text())
    assert result["parameters"]["rows"] == ROWS
    assert result["parameters"]["single"] == SINGLE
    assert result["workloads"] == WORKLOADS
    designs = {d["name"]: d for d in result["designs"]}
    assert set(designs) == {"unaudited", *AUDITED}
    assert result["expected_audit_rows"] == dict.fromkeys(
        "IUD", SINGLE + ROWS + CLIENTS * TRANSACTIONS // 3
    )
    for name, design in designs.items():
        assert set(design["workloads"]) == set(WORKLOADS)
        for workload, entry in design["workloads"].items():
            assert len(entry["seconds"]) == 1
            assert entry["median_s"] > 0
            assert entry["min_s"] <= entry["median_s"] <= entry["max_s"]
            assert entry["wal_bytes"][0] > 0
            assert entry["changes"] == (
                CLIENTS * TRANSACTIONS
                if workload == "concurrent"
                else SINGLE
                if workload.endswith("_single")
                else ROWS
            )
            if name == "unaudited":
                assert entry["ratio_to_unaudited"] == 1.0
            if name == "floor":
                assert entry["ratio_to_floor"] == 1.0
    for name in AUDITED:
        assert designs[name]["audit_bytes"] > 0
    assert designs["unaudited"]["audit_table"] is None
    env = result["environment"]
    assert env["postgresql"]
    assert env["sqlalchemy"] == sa.__version__
    assert env["nproc"] >= 1
    markdown = (tmp_path / "capture.md").read_text()
    assert "| workload | design | median ms |" in markdown
    assert "PostgreSQL " + env["postgresql"] in markdown

    assert designs["unaudited"]["workloads"]["concurrent"]["tps"] > 0
    assert f"## {CLIENTS} concurrent clients" in markdown

    # Counted in the database, not taken from the benchmark's own report.
    # Each concurrent client inserts, updates and deletes TRANSACTIONS / 3 keys of its own.
    changed = SINGLE + ROWS + CLIENTS * TRANSACTIONS // 3
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            captured: dict[str, Counter[tuple[object, ...]]] = {}
            for name, (audit_table, setting) in AUDITED.items():
                rows = connection.execute(
                    sa.text(
                        f"SELECT audit_operation, id, amount, label, {setting} "
                        f"FROM capture_bench.{audit_table}"
                    )
                ).all()
                counts = Counter(row[0] for row in rows)
                assert counts == {"I": changed, "U": changed, "D": changed}, name
                assert {row[4] for row in rows} == {"bench-user"}, name
                captured[name] = Counter(tuple(row[:4]) for row in rows)
            # Every design recorded the very same changes (operation, key and values).
            assert all(c == captured["floor"] for c in captured.values())
            assert sum(captured["floor"].values()) == 3 * changed
            levels = dict(
                connection.execute(
                    sa.text(
                        "SELECT c.relname, bool_and(t.tgtype::int & 1 = 1) "
                        "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                        # TRUNCATE triggers are statement level in every mode
                        "AND t.tgtype::int & 32 = 0 "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = 'capture_bench' AND NOT t.tgisinternal "
                        "GROUP BY c.relname"
                    )
                ).all()
            )
            # FOR EACH ROW where intended, FOR EACH STATEMENT for the default mode, none elsewhere.
            assert levels == {"t_statement": False, "t_row": True, "t_legacy": True}
    finally:
        engine.dispose()


PGBENCH = Path(__file__).resolve().parents[1] / "bench" / "pgbench_tpcb.py"
PGBENCH_TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")


def test_quick_pgbench_tpcb_audits_every_committed_change(
    database_url: URL, tmp_path: Path
) -> None:
    command = [
        sys.executable,
        str(PGBENCH),
        "--url",
        database_url.render_as_string(hide_password=False),
        "--quick",
        "--duration",
        "2",
        "--clients",
        "4",
        "--keep",
        "--output-dir",
        str(tmp_path),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 0, finished.stdout + finished.stderr

    result = json.loads((tmp_path / "pgbench.json").read_text())
    assert result["parameters"]["scale"] == 1
    assert result["parameters"]["rounds"] == 1
    [configuration] = result["configurations"]
    designs = {d["name"]: d for d in configuration["designs"]}
    assert list(designs) == ["unaudited", "floor", "statement", "row"]
    for name, design in designs.items():
        [run] = design["runs"]
        assert run["tps"] > 0
        assert run["transactions"] > 0
        assert run["failed"] == 0
        # Checked by the script after every run: one audit row per committed change.
        n = run["transactions"]
        expected = (
            {t: {} for t in PGBENCH_TABLES}
            if name == "unaudited"
            else {
                "pgbench_accounts": {"U": n},
                "pgbench_branches": {"U": n},
                "pgbench_tellers": {"U": n},
                "pgbench_history": {"I": n},
            }
        )
        assert run["audit_rows"] == expected, name
    assert designs["unaudited"]["ratio_to_unaudited"] == 1.0
    assert designs["floor"]["ratio_to_floor"] == 1.0
    markdown = (tmp_path / "pgbench.md").read_text()
    assert "## synchronous_commit = off" in markdown
    assert "PostgreSQL " + result["environment"]["postgresql"] in markdown

    # Counted in the database, not taken from the benchmark's report: the last run's tables.
    last = result["last_run"]["design"]
    assert last in ("statement", "row")  # one round: designs in declared order
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:

            def scalar(sql: str) -> object:
                return connection.execute(sa.text(sql)).scalar_one()

            history = scalar("SELECT count(*) FROM pgbench_history")
            assert history == designs[last]["runs"][0]["transactions"]
            assert scalar("SELECT count(*) FROM pgbench_history_audit") == history
            assert (
                scalar("SELECT count(*) FROM pgbench_history_audit WHERE audit_operation = 'I'")
                == history
            )
            for table in ("pgbench_accounts", "pgbench_tellers", "pgbench_branches"):
                assert (
                    scalar(f"SELECT count(*) FROM {table}_audit WHERE audit_operation = 'U'")
                    == history
                ), table
                assert scalar(f"SELECT count(*) FROM {table}_audit") == history, table
            # The audit rows are the history rows: same keys and deltas, as a multiset.
            assert (
                scalar(
                    "SELECT count(*) FROM ("
                    "(SELECT tid, bid, aid, delta, mtime FROM pgbench_history EXCEPT ALL "
                    "SELECT tid, bid, aid, delta, mtime FROM pgbench_history_audit) UNION ALL "
                    "(SELECT tid, bid, aid, delta, mtime FROM pgbench_history_audit EXCEPT ALL "
                    "SELECT tid, bid, aid, delta, mtime FROM pgbench_history)) AS difference"
                )
                == 0
            )
            # Installed through the library: the last design's INSERT/UPDATE/DELETE triggers,
            # FOR EACH ROW or not (TRUNCATE triggers are always statement-level).
            levels = dict(
                connection.execute(
                    sa.text(
                        "SELECT c.relname, bool_and(t.tgtype::int & 1 = 1) "
                        "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                        "WHERE NOT t.tgisinternal AND t.tgtype::int & (4 | 8 | 16) <> 0 "
                        "GROUP BY c.relname"
                    )
                ).all()
            )
            assert levels == dict.fromkeys(PGBENCH_TABLES, last == "row")
    finally:
        engine.dispose()
