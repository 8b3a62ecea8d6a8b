"""Models the command-line tests point the CLI at (``cli_models:metadata``, ``cli_models:Base``).

Imported by the CLI in a subprocess, with ``tests/`` on PYTHONPATH.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

AUDITED = {
    "audit.options": {
        "enabled": True,
        "session_settings": [sa.Column("username", sa.String, nullable=False)],
    }
}


def declare(metadata: sa.MetaData, *task_columns: sa.Column[object]) -> tuple[sa.Table, sa.Table]:
    projects = sa.Table(
        "projects",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String, nullable=False),
        info=AUDITED,
    )
    tasks = sa.Table(
        "tasks",
        metadata,
        sa.Column("project_id", sa.ForeignKey(projects.c.id), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("title", sa.String, nullable=False),
        *task_columns,
        info=AUDITED,
    )
    return projects, tasks


metadata = sa.MetaData()
projects, tasks = declare(metadata)
labels = sa.Table("labels", metadata, sa.Column("id", sa.Integer, primary_key=True))

#: The same tables plus one more audited table, to show ``check`` an undeclared installation.
extended = sa.MetaData()
declare(extended)
sa.Table(
    "milestones",
    extended,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    info=AUDITED,
)

#: The models one migration later: tasks has a new column the database does not have yet.
evolved = sa.MetaData()
declare(evolved, sa.Column("due", sa.Date))

#: The same tables once auditing was turned off in the models (the audit tables were kept).
retired = sa.MetaData()
sa.Table(
    "projects",
    retired,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String, nullable=False),
)

#: Many audited tables, for install progress.
wide = sa.MetaData()
for number in range(60):
    sa.Table(f"wide_{number:02}", wide, sa.Column("id", sa.Integer, primary_key=True), info=AUDITED)

#: No audited table at all.
plain = sa.MetaData()
sa.Table("notes", plain, sa.Column("id", sa.Integer, primary_key=True))


class Base(DeclarativeBase):
    pass


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = {"info": AUDITED}
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    amount: Mapped[int]


#: Names a SQL file must quote and must not escape: a space, a double quote, a percent sign.
awkward = sa.MetaData()
awkward_table = sa.Table(
    'Done "100%"',
    awkward,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    info={"audit.options": {"enabled": True}},
)
