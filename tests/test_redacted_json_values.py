"""A JSON value of the shape ``changes()`` uses for redacted values must not break reading."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from sqlalchemy_postgresql_audit import changes
from sqlalchemy_postgresql_audit.history._redacted import JSON_MARKER


def test_a_json_value_shaped_like_a_redaction_marker_reads_as_itself(engine: sa.Engine) -> None:
    table = sa.Table(
        "profile",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String),
        sa.Column("prefs", postgresql.JSONB),
        info={"audit.options": {"enabled": True, "redact": {"email": "mask"}}},
    )
    table.metadata.create_all(engine)
    planted = [{JSON_MARKER: "zz"}, {JSON_MARKER: ""}, {JSON_MARKER: "ab"}]
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, email="a", prefs={"x": 1}))
        for value in planted:
            connection.execute(table.update().values(prefs=value))
    with engine.connect() as connection:
        listed = list(connection.execute(changes(table, 1)))
    afters = [c.after for c in listed if c.column == "prefs"]
    assert afters[-3:] == planted
