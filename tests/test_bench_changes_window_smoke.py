"""The changes-window benchmark runs end to end with tiny sizes, each window checked exact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import URL

BENCH = Path(__file__).resolve().parents[1] / "bench" / "changes_window.py"


def test_quick_changes_window_benchmark_writes_results(database_url: URL, tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(BENCH),
        "--url",
        database_url.render_as_string(hide_password=False),
        "--keys",
        "20",
        "--versions",
        "104",
        "--samples",
        "5",
        "--output-dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((tmp_path / "changes_window.json").read_text())
    assert results["audit_rows"] == 2080
    assert sorted(results["median_ms"]) == ["unbounded", "week 2", "week 26", "week 50"]
    assert "| week 26 |" in (tmp_path / "changes_window.md").read_text()
