"""The documentation cannot rot: every Python example in it is a file that runs here.

Each ```python block in ``docs/*.md`` must include a file from ``docs/examples`` (pymdownx
snippets), and every example runs against the real server in a fresh database, asserting what
the page says it shows.  The site itself builds with ``mkdocs build --strict``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = sorted((DOCS / "examples").glob("*.py"))
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SNIPPET = re.compile(r'^--8<-- "([^":]+)(?::[\w-]+)?"$')


def test_every_python_block_in_the_docs_is_an_example_that_runs() -> None:
    pages = sorted(DOCS.glob("**/*.md"))
    assert pages, "no documentation pages"
    included: set[str] = set()
    for page in pages:
        for block in FENCE.findall(page.read_text()):
            lines = [line.strip() for line in block.strip().splitlines()]
            for line in lines:
                match = SNIPPET.match(line)
                assert match, f"{page.name}: inline Python is not executed; include a file:\n{block}"
                assert (DOCS / "examples" / match.group(1)).is_file(), line
                included.add(match.group(1))
    assert included <= {path.name for path in EXAMPLES}


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs_against_the_real_server(example: Path, database_url: URL) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url.render_as_string(hide_password=False),
        "PYTHONPATH": str(DOCS / "examples"),
    }
    result = subprocess.run(
        [sys.executable, str(example)],
        cwd=example.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_site_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "index.html").is_file()
