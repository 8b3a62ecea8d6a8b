"""The runtime-check benchmark runs end to end with tiny sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import URL

BENCH = Path(__file__).resolve().parents[1] / "bench" / "runtime_check.py"


def test_quick_runtime_check_benchmark_writes_results(database_url: URL, tmp_path: Path) -> None:
    url = database_url.render_as_string(hide_password=False)
    command = [sys.executable, str(BENCH), "--inserts", "20", "--rounds", "2"]
    subprocess.run([*command, "--url", url, "--out", str(tmp_path)], check=True, timeout=300)
    data = json.loads((tmp_path / "runtime_check.json").read_text())
    assert set(data["median_us"]) == {"without", "other", "audited", "audited_without"}
    assert all(len(rounds) == 2 for rounds in data["rounds_us"].values())
    assert "| audited (triggers installed" in (tmp_path / "runtime_check.md").read_text()
