"""The audit_context benchmark runs end to end with tiny sizes and checks what it recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import URL

BENCH = Path(__file__).resolve().parents[1] / "bench" / "context.py"


def test_quick_context_benchmark_writes_results(database_url: URL, tmp_path: Path) -> None:
    url = database_url.render_as_string(hide_password=False)
    command = [sys.executable, str(BENCH), "--transactions", "5", "--rounds", "2"]
    subprocess.run([*command, "--url", url, "--out", str(tmp_path)], check=True, timeout=300)
    data = json.loads((tmp_path / "context.json").read_text())
    assert set(data["drivers"]) == {"psycopg2", "psycopg", "asyncpg"}
    for driver in data["drivers"].values():
        assert set(driver["median_us"]) == {"plain", "explicit", "context"}
        assert all(len(rounds) == 2 for rounds in driver["rounds_us"].values())
    assert "| asyncpg |" in (tmp_path / "context.md").read_text()
