"""The README and the docs site say the same thing where they say it twice, and the numbers
they quote are the newest measured ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
INDEX = (ROOT / "docs" / "index.md").read_text()
ALEMBIC = (ROOT / "docs" / "alembic.md").read_text()


def paragraph(text: str, start: str) -> str:
    """The paragraph that begins with ``start``, its lines joined."""
    found = re.search(rf"^{re.escape(start)}.*?(?=\n\n|\Z)", text, re.MULTILINE | re.DOTALL)
    assert found, start
    return " ".join(found.group(0).split())


def test_install_line_and_extras_are_the_same_in_the_readme_and_the_docs() -> None:
    install = re.compile(r"^pip install .*$", re.MULTILINE)
    assert install.findall(README)[0] == install.findall(INDEX)[0]
    assert paragraph(README, "Extras:") == paragraph(INDEX, "Extras:")
    # An asyncpg application still gets a sync driver for the command line and Alembic.
    assert "psycopg" in install.findall(INDEX)[0]


def test_autogenerate_timings_are_the_newest_measured() -> None:
    measured = json.loads((ROOT / "bench" / "results" / "autogenerate.json").read_text())
    date = measured["meta"]["date"]
    rows = {row["audited_tables"]: row["median_seconds"] for row in measured["results"]}
    for tables, seconds in rows.items():
        line = (
            f"| {tables} | {seconds['audited']:.2f} | {round(seconds['comparator'] * 1000)} | "
            f"{seconds['plain']:.2f} |"
        )
        assert line in README, line
    largest = max(rows)
    quoted = (
        f"Autogenerate with {largest} audited tables took {rows[largest]['audited']:.2f} s, of which "
        f"{round(rows[largest]['comparator'] * 1000)} ms in the audit comparator, against "
        f"{rows[largest]['plain']:.2f} s for {largest} plain tables"
    )
    assert quoted in " ".join(ALEMBIC.split())
    assert date in paragraph(ALEMBIC, "The integration registers itself")


def test_the_docs_say_what_happens_to_dropped_columns_and_what_a_downgrade_drops() -> None:
    for text in (README, ALEMBIC):
        flat = " ".join(text.split())
        assert "**the audit column and its history are kept**" in flat
        assert "with the values recorded in that column since the upgrade" in flat
    assert "no migration the library generates deletes audit history" not in README


def test_the_readme_alembic_sample_names_the_current_template() -> None:
    from sqlalchemy_postgresql_audit.declare.spec import TEMPLATE_VERSION

    assert re.findall(r"^\s*template=(\d+),$", README, re.MULTILINE) == [str(TEMPLATE_VERSION)]


def test_the_alembic_page_says_what_autogenerate_writes_for_redact() -> None:
    table = ALEMBIC.split("## What autogenerate writes", 1)[1].split("\n\n", 2)[1]
    assert "`redact`" in table and "redact: hash" in table
