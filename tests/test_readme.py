"""The README's usage example runs as written, in a fresh interpreter, against the real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import URL

README = Path(__file__).resolve().parent.parent / "README.md"


def usage_example() -> str:
    usage = README.read_text().split("## Usage", 1)[1]
    match = re.search(r"```python\n(.*?)```", usage, re.DOTALL)
    assert match, "README has no usage example"
    return match.group(1)


def test_the_usage_example_runs_and_prints_the_history(database_url: URL) -> None:
    """As written: nothing is defined for it but the ``DATABASE_URL`` it reads."""
    environment = {**os.environ, "DATABASE_URL": database_url.render_as_string(hide_password=False)}
    result = subprocess.run(
        [sys.executable, "-c", usage_example()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["I alice alice"]
