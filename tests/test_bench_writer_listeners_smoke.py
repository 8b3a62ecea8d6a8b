"""The writer-listeners benchmark runs end to end with tiny sizes and reports every case."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import URL

BENCH = Path(__file__).resolve().parents[1] / "bench" / "writer_listeners.py"


def test_quick_writer_listeners_benchmark_writes_results(
    logical_database_url: URL, tmp_path: Path
) -> None:
    url = logical_database_url.render_as_string(hide_password=False)
    command = [sys.executable, str(BENCH), "--calls", "50", "--rounds", "2"]
    subprocess.run([*command, "--url", url, "--out", str(tmp_path)], check=True, timeout=300)
    data = json.loads((tmp_path / "writer_listeners.json").read_text())
    assert len(data["median_us"]) == 10
    assert all(len(rounds) == 2 for rounds in data["rounds_us"].values())
    assert all(median > 0 for median in data["median_us"].values())
    markdown = (tmp_path / "writer_listeners.md").read_text()
    assert "| CDC table, text SET LOCAL; INSERT, first statement |" in markdown
    assert "The required-setting check" in markdown
