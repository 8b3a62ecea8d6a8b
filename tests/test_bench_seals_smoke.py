"""The seals benchmark runs end to end with tiny sizes, and its sealed trail verifies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import URL

BENCH = Path(__file__).resolve().parents[1] / "bench" / "seals.py"


def test_quick_seals_benchmark_writes_results(database_url: URL, tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(BENCH),
        "--url",
        database_url.render_as_string(hide_password=False),
        "--rows",
        "300",
        "600",
        "--rounds",
        "1",
        "--versions",
        "5",
        "--output-dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((tmp_path / "seals.json").read_text())
    assert sorted(results) == ["300", "600"]
    assert results["600"]["audit_rows"] >= 600  # the trail grew to the size, then the subjects
    assert "| 600 |" in (tmp_path / "seals.md").read_text()
