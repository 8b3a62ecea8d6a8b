"""The prepared-history benchmark runs end to end with tiny sizes, every reader's rows equal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import URL

BENCH = Path(__file__).resolve().parents[1] / "bench" / "history_prepared.py"


def test_quick_history_prepared_benchmark_writes_results(database_url: URL, tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(BENCH),
        "--url",
        database_url.render_as_string(hide_password=False),
        "--rows",
        "2000",
        "--keys",
        "20",
        "--lookups",
        "6",
        "--explains",
        "2",
        "--output-dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((tmp_path / "history_prepared.json").read_text())
    times = results["lookup_ms"]["history(table, key)"]["52 weekly partitions"]
    assert sorted(times) == ["psycopg 3", "psycopg2, prepared", "psycopg2, unprepared"]
    assert "| psycopg2, prepared |" in (tmp_path / "history_prepared.md").read_text()
