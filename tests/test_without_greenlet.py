"""SQLAlchemy 2.1 no longer installs greenlet: sync users must not need it."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy.engine import URL

SCRIPT = """
import sys
sys.modules["greenlet"] = None  # as if it were not installed: importing it raises ImportError
import sqlalchemy as sa
import sqlalchemy_postgresql_audit as audit

metadata = sa.MetaData()
t = sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True),
             info={"audit.options": {"enabled": True,
                                     "session_settings": [sa.Column("username", sa.Text)]}})
engine = sa.create_engine(sys.argv[1])
metadata.create_all(engine)
with engine.begin() as connection:
    audit.set_session_vars(connection, username="ann")
    connection.execute(t.insert().values(id=1))
with audit.audit_context(username="bob"), engine.begin() as connection:
    connection.execute(t.insert().values(id=2))
with engine.connect() as connection:
    print(connection.execute(sa.text("SELECT audit_username FROM t_audit ORDER BY audit_id")).scalars().all())
"""


def test_the_library_imports_and_audits_without_greenlet(database_url: URL) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, database_url.render_as_string(hide_password=False)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['ann', 'bob']"
