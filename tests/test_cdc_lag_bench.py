"""The CDC lag benchmark runs end to end with tiny sizes, for both designs, and says what it
measured (no figure is asserted: speed lives in bench/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import URL

BENCH = Path(__file__).resolve().parents[1] / "bench" / "cdc_lag.py"


def test_quick_lag_benchmark_writes_results_for_both_designs(
    logical_database_url: URL, tmp_path: Path
) -> None:
    url = logical_database_url.render_as_string(hide_password=False)
    command = [sys.executable, str(BENCH), "--rate", "500", "--seconds", "2", "--rounds", "1"]
    subprocess.run([*command, "--url", url, "--results", str(tmp_path)], check=True, timeout=300)
    data = json.loads((tmp_path / "cdc_lag.json").read_text())
    assert set(data["designs"]) == {"decoder", "replica"}
    for rounds in data["designs"].values():
        (found,) = rounds
        assert found["transactions"] > 0
        assert 0 <= found["median"] <= found["p95"] <= found["max"]
    assert "| decoder |" in (tmp_path / "cdc_lag.md").read_text()
