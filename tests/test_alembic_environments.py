"""The Alembic integration in the environments users have: models imported before ``enable()``,
the ``async`` template on asyncpg, and a migration that runs the install script by hand."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from alembic_env import make_project
from sqlalchemy_postgresql_audit import install_audit_triggers
from test_alembic_evolution import CODE_TOTAL, USERNAME, assert_audited, orders

MODELS = """
import sqlalchemy as sa

metadata = sa.MetaData()
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("code", sa.String(20)),
    info={"audit.options": {"enabled": True}},
)
"""

ENV_IMPORTING_MODELS_FIRST = """
import lazy_models  # the models are declared before the library listens

import sqlalchemy_postgresql_audit

sqlalchemy_postgresql_audit.enable()
target_metadata = lazy_models.metadata
"""


def _upgrade_body(text: str) -> str:
    return text.split("def upgrade", 1)[1].split("def downgrade", 1)[0]


def test_models_imported_before_enable_are_compared_like_any_table(
    tmp_path: Path, engine: sa.Engine
) -> None:
    """A fresh interpreter, as ``alembic`` runs: env.py imports the models, then enables."""
    project = make_project(tmp_path, engine.url, env_metadata=ENV_IMPORTING_MODELS_FIRST)
    (tmp_path / "lazy_models.py").write_text(MODELS)
    revision = project.cli("revision", "--autogenerate", "-m", "first")
    assert revision.returncode == 0, revision.stderr
    (path,) = (tmp_path / "migrations" / "versions").glob("*first*.py")
    text = path.read_text()
    for fragment in ("op.create_table('orders_audit'", "op.create_audit_trigger("):
        assert fragment in text, text
    upgrade = project.cli("upgrade", "head")
    assert upgrade.returncode == 0, upgrade.stderr
    check = project.cli("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "drop_audit_trigger" not in check.stdout + check.stderr
    assert_audited(engine, orders(columns=(("code", sa.String(20)),)))


def test_async_template_on_asyncpg(tmp_path: Path, engine: sa.Engine) -> None:
    """``alembic init -t async``: env.py runs the migration through ``run_sync``."""
    metadata = orders(settings=(USERNAME,))
    metadata.create_all(engine)
    project = make_project(
        tmp_path, engine.url.set(drivername="postgresql+asyncpg"), template="async"
    )
    assert "run_sync" in (tmp_path / "migrations" / "env.py").read_text()
    project.check(metadata)
    text = project.revision(metadata, "nothing to do")
    assert "op." not in _upgrade_body(text), text
    project.upgrade(metadata)

    changed = orders(settings=(USERNAME,), columns=CODE_TOTAL)
    text = project.revision(changed, "add total")
    assert "op.replace_audit_trigger(" in text
    project.upgrade(changed)
    assert_audited(engine, changed)
    project.check(changed)
    project.downgrade(metadata)
    assert_audited(engine, metadata)


def test_op_execute_of_install_script(tmp_path: Path, engine: sa.Engine) -> None:
    """A hand-written migration pastes the script of ``install_audit_triggers(metadata)``."""
    metadata = orders(settings=(USERNAME,), columns=(("50% off", sa.Text), ("it's", sa.Text)))
    with engine.begin() as connection:
        for table in metadata.sorted_tables:  # the tables as create_all makes them, no triggers
            connection.execute(sa.schema.CreateTable(table))
            for index in table.indexes:
                connection.execute(sa.schema.CreateIndex(index))
            if table.comment:
                connection.execute(sa.schema.SetTableComment(table))
    script = install_audit_triggers(metadata)
    project = make_project(tmp_path, engine.url)
    revision = command.revision(project.config(metadata), message="install by hand")
    assert revision is not None and not isinstance(revision, list)
    path = Path(revision.path)
    path.write_text(path.read_text().replace("    pass\n", f"    op.execute({script!r})\n", 1))
    project.upgrade(metadata)
    assert_audited(engine, metadata)
    project.check(metadata)
