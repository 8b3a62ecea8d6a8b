"""The history benchmark runs end to end with tiny sizes and reports what it measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import URL

BENCH = Path(__file__).resolve().parents[1] / "bench" / "history.py"


def test_quick_history_benchmark_writes_results(database_url: URL, tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(BENCH),
        "--url",
        database_url.render_as_string(hide_password=False),
        "--keys", "200", "500",
        "--versions", "4",
        "--samples", "10",
        "--rounds", "1",
        "--single", "20",
        "--bulk", "500",
        "--output-dir", str(tmp_path),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    result = json.loads((tmp_path / "history.json").read_text())
    assert [t["audit_rows"] for t in result["trails"]] == [800, 2000]
    for trail in result["trails"]:
        for name in ("history_core", "history_orm", "as_of_core", "as_of_orm", "changes_core"):
            assert trail["one_row"][name]["samples"] == 10
            assert trail["one_row"][name]["median_ms"] > 0
    assert "Index Cond: (id =" in result["trails"][-1]["one_row"]["plans"]["history"]
    assert result["trails"][0]["whole_table_as_of"]["rows"] == 200
    assert set(result["write_cost"]) == {"insert_single", "insert_bulk"}
    assert "## Write cost of the index" in (tmp_path / "history.md").read_text()
