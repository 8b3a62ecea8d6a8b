"""Run the command line as a user does: a subprocess of this venv's python, on a pipe or a
terminal, with ``tests/`` on PYTHONPATH so that ``cli_models`` imports."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import URL

TESTS = Path(__file__).parent
COMMAND = [sys.executable, "-m", "sqlalchemy_postgresql_audit"]
ERROR_PREFIX = "sqlalchemy-postgresql-audit: error: "


def environment(extra: Mapping[str, str], *, path: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "DATABASE_URL")}
    folders = [str(TESTS), *([str(path)] if path else []), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(f for f in folders if f)
    env.update(extra)
    return env


def url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def run(
    *args: str, env: Mapping[str, str] | None = None, path: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        env=environment(env or {}, path=path),
        timeout=timeout,
        check=False,
    )


def run_on_terminal(*args: str, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal; returns the exit code and the screen."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*COMMAND, *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=environment({"COLUMNS": "160", **(env or {})}),
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=120), b"".join(chunks).decode()
