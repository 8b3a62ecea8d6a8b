"""A real Alembic environment in a temporary folder, made by ``alembic init`` from a standard
template (``generic``, or ``async``); only ``env.py``'s metadata line and ``include_schemas`` are
changed.

Commands run in this process get a :class:`Config` without a file name, so ``env.py`` skips
``fileConfig`` (which would replace pytest's log capture); ``alembic.ini`` is still complete for
running the ``alembic`` command in a fresh interpreter (:meth:`AlembicProject.cli`).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL

ENV_METADATA = """
import sqlalchemy_postgresql_audit

sqlalchemy_postgresql_audit.enable()
target_metadata = config.attributes["target_metadata"]
"""


@dataclass
class AlembicProject:
    folder: Path
    url: URL

    def config(self, metadata: sa.MetaData, stdout: io.StringIO | None = None) -> Config:
        config = Config(stdout=stdout or io.StringIO())
        config.set_main_option("script_location", str(self.folder / "migrations"))
        config.set_main_option(
            "sqlalchemy.url", self.url.render_as_string(hide_password=False).replace("%", "%%")
        )
        config.attributes["target_metadata"] = metadata
        return config

    def revision(self, metadata: sa.MetaData, message: str) -> str:
        """Autogenerate a revision; returns the text of the migration file."""
        script = command.revision(self.config(metadata), message=message, autogenerate=True)
        assert script is not None and not isinstance(script, list)
        return Path(script.path).read_text()

    def upgrade(self, metadata: sa.MetaData, target: str = "head") -> None:
        command.upgrade(self.config(metadata), target)

    def downgrade(self, metadata: sa.MetaData, target: str = "-1") -> None:
        command.downgrade(self.config(metadata), target)

    def check(self, metadata: sa.MetaData) -> None:
        command.check(self.config(metadata))

    def offline_sql(self, metadata: sa.MetaData, target: str) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):  # offline SQL goes to sys.stdout
            command.upgrade(self.config(metadata), target, sql=True)
        return out.getvalue()

    def edit_env(self, old: str, new: str) -> None:
        env = self.folder / "migrations" / "env.py"
        text = env.read_text()
        assert old in text, text
        env.write_text(text.replace(old, new, 1))

    def cli(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """Run ``alembic <arguments>`` in a fresh interpreter, in the project's folder."""
        environment = {**os.environ, "PYTHONPATH": str(self.folder)}
        return subprocess.run(
            [sys.executable, "-m", "alembic", *arguments],
            cwd=self.folder,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )


def make_project(
    folder: Path, url: URL, *, template: str = "generic", env_metadata: str = ENV_METADATA
) -> AlembicProject:
    project = AlembicProject(folder, url)
    config = project.config(sa.MetaData())
    config.config_file_name = str(folder / "alembic.ini")
    command.init(config, str(folder / "migrations"), template=template)
    ini = folder / "alembic.ini"
    ini.write_text(
        ini.read_text().replace(
            "sqlalchemy.url = driver://user:pass@localhost/dbname",
            "sqlalchemy.url = " + url.render_as_string(hide_password=False).replace("%", "%%"),
        )
    )
    project.edit_env("target_metadata = None\n", env_metadata)
    project.edit_env(
        "connection=connection, target_metadata=target_metadata",
        "connection=connection, target_metadata=target_metadata, include_schemas=True",
    )
    return project
