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

