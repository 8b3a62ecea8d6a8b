"""The redaction benchmark runs end to end with tiny sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import URL

BENCH = Path(__file__).resolve().parents[1] / "bench" / "redaction.py"


def test_quick_redaction_benchmark_writes_results(database_url: URL, tmp_path: Path) -> None:
    url = database_url.render_as_string(hide_password=False)
    command = [sys.executable, str(BENCH), "--single", "5", "--rows", "20", "--rounds", "2"]
    subprocess.run([*command, "--url", url, "--out", str(tmp_path)], check=True, timeout=300)
    data = json.loads((tmp_path / "redaction.json").read_text())
    assert set(data["ratio_to_plain"]) == {"statement", "row"}
    assert set(data["median_us"]["row"]) == {"plain", "mask", "hash", "omit"}
    assert data["ratio_to_plain"]["statement"]["plain"]["insert_bulk"] == 1.0
    assert "| row | hash |" in (tmp_path / "redaction.md").read_text()
