"""A throwaway Alembic project: autogenerate "add a column" and compare with the page's copy.

Run with ``--write`` to refresh ``generated/add_column.py`` after a deliberate change.
"""

import os
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from revision_text import normalized, operations

import sqlalchemy_postgresql_audit

sqlalchemy_postgresql_audit.enable()
COMMITTED = Path(__file__).parent / "generated" / "add_column_revision.txt"
URL = os.environ["DATABASE_URL"]

# --8<-- [start:env]
# migrations/env.py (the standard "generic" template), the lines that change:
ENV_PY = """
import sqlalchemy_postgresql_audit

sqlalchemy_postgresql_audit.enable()  # also registers the Alembic integration
target_metadata = config.attributes["target_metadata"]  # usually: myapp.models.Base.metadata
"""
# --8<-- [end:env]


def models(with_total: bool) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(20), nullable=False),
        *([sa.Column("total", sa.Numeric(10, 2))] if with_total else []),
        info={
            "audit.options": {
                "enabled": True,
                "session_settings": [sa.Column("username", sa.String)],
            }
        },
    )
    return metadata


def config(folder: Path, metadata: sa.MetaData) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(folder / "migrations"))
    cfg.set_main_option("sqlalchemy.url", URL.replace("%", "%%"))
    cfg.attributes["target_metadata"] = metadata
    return cfg


with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp)
    init = config(folder, sa.MetaData())
    init.config_file_name = str(folder / "alembic.ini")
    command.init(init, str(folder / "migrations"))
    env = folder / "migrations" / "env.py"
    env.write_text(env.read_text().replace("target_metadata = None\n", ENV_PY, 1))

    command.revision(config(folder, models(False)), "create orders", autogenerate=True)
    command.upgrade(config(folder, models(False)), "head")
    # --8<-- [start:generate]
    # The model gained a column: alembic revision --autogenerate -m "add total"
    script = command.revision(config(folder, models(True)), "add total", autogenerate=True)
    # --8<-- [end:generate]
    generated = Path(script.path).read_text()
    command.upgrade(config(folder, models(True)), "head")
    command.check(config(folder, models(True)))  # raises if anything is left to migrate
    command.downgrade(config(folder, models(True)), "-1")  # auditing works with the old definition
    command.upgrade(config(folder, models(True)), "head")

if "--write" in sys.argv:
    COMMITTED.write_text(normalized(generated))
print(normalized(generated))
assert operations(generated) == operations(COMMITTED.read_text()), "the page's copy is out of date"
assert "op.add_column('orders_audit'" in generated and "op.replace_audit_trigger(" in generated
assert "drop_table" not in generated

engine = sa.create_engine(URL)
with engine.begin() as connection:
    connection.execute(sa.text("SELECT set_config('audit.username', 'alice', true)"))
    connection.execute(sa.text("INSERT INTO orders (id, code, total) VALUES (1, 'A-1', 9.50)"))
    row = connection.execute(sa.text("SELECT audit_username, total FROM orders_audit")).one()
assert tuple(row) == ("alice", 9.5)
