"""A real Alembic environment in a temporary folder, made by ``alembic init`` from the standard
``generic`` template; only ``env.py``'s metadata line and ``include_schemas`` are changed."""

from __future__ import annotations

import contextlib
import io
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
        config = Config(str(self.folder / "alembic.ini"), stdout=stdout or io.StringIO())
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


def make_project(folder: Path, url: URL) -> AlembicProject:
    project = AlembicProject(folder, url)
    command.init(project.config(sa.MetaData()), str(folder / "migrations"), template="generic")
    env = folder / "migrations" / "env.py"
    text = env.read_text()
    text = text.replace("target_metadata = None\n", ENV_METADATA, 1)
    text = text.replace(
        "connection=connection, target_metadata=target_metadata",
        "connection=connection, target_metadata=target_metadata, include_schemas=True",
        1,
    )
    assert ENV_METADATA in text and "include_schemas=True" in text
    env.write_text(text)
    return project
