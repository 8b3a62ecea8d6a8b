"""The README's demo runs its real flow."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import URL

from sqlalchemy_postgresql_audit import demo


def test_demo_records_the_history_it_prints(
    database_url: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main([database_url.render_as_string(hide_password=False)]) == 0
    out = capsys.readouterr().out
    assert "audit.username is required" in out
    lines = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert [(cells[1], cells[2], cells[5], cells[6]) for cells in lines] == [
        ("I", "alice", "alice", "100.00"),
        ("I", "alice", "bob", "50.00"),
        ("U", "bob", "alice", "110.00"),
        ("U", "bob", "bob", "60.00"),
        ("D", "bob", "bob", "60.00"),
    ]
