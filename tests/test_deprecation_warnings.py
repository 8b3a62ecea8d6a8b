"""A process run with ``-W error::DeprecationWarning`` can install auditing and read history.

SQLAlchemy 2.1 deprecates APIs 2.0 offered (``Result.tuples()``); an application that turns
deprecation warnings into errors, as test suites often do, must not fail inside this library.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import sqlalchemy as sa
from sqlalchemy.engine import URL

from cli_run import environment, url_text

INSTALL_AND_WRITE = textwrap.dedent(
    """
    import sys
    import sqlalchemy as sa
    from cli_models import AUDITED
    from sqlalchemy_postgresql_audit import install_audit_triggers, set_session_vars

    metadata = sa.MetaData()
    projects = sa.Table(
        "projects", metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String),
        info=AUDITED,
    )
    engine = sa.create_engine(sys.argv[1])
    with engine.begin() as connection:
        metadata.create_all(connection)
        install_audit_triggers(metadata, connection)
        set_session_vars(connection, username="alice")
        connection.execute(projects.insert().values(id=1, name="Apollo"))
    engine.dispose()
    """
)


def strict(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", *args],
        capture_output=True,
        text=True,
        env=environment({}),
        timeout=120,
        check=False,
    )


def test_install_and_the_cli_history_run_with_deprecation_warnings_as_errors(
    database_url: URL, engine: sa.Engine
) -> None:
    url = url_text(database_url)
    installed = strict("-c", INSTALL_AND_WRITE, url)
    assert installed.returncode == 0, installed.stderr
    history = strict("-m", "sqlalchemy_postgresql_audit", "history", "projects", "1", "--url", url)
    assert history.returncode == 0, history.stderr
    assert "Apollo" in history.stdout and "alice" in history.stdout
