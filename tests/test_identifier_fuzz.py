"""Any identifier and any value: generated names and values through real DDL and real writes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, set_session_vars
from sqlalchemy_postgresql_audit.spec import FIXED_AUDIT_COLUMNS

identifiers = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), min_size=1, max_size=20
).filter(lambda name: len(name.encode()) <= 63 and name.lower() not in FIXED_AUDIT_COLUMNS)
values = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=40)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    schema=identifiers.filter(lambda name: not name.startswith("pg_")),  # reserved prefix
    table=identifiers,
    columns=st.lists(identifiers, min_size=1, max_size=3, unique=True),
    value=values,
    actor=values.filter(bool),  # an empty setting reads as NULL, like an unset one
    mode=st.sampled_from(["statement", "row"]),
)
def test_generated_identifiers_and_values_are_audited_exactly(
    engine: sa.Engine,
    schema: str,
    table: str,
    columns: list[str],
    value: str,
    actor: str,
    mode: str,
) -> None:
    metadata = sa.MetaData()
    source = sa.Table(
        table,
        metadata,
        sa.Column("pk", sa.Integer, primary_key=True, key="__pk__"),
        *(sa.Column(name, sa.Text, key=f"c{i}") for i, name in enumerate(columns) if name != "pk"),
        schema=schema,
        info={
            "audit.options": {
                "enabled": True,
                "mode": mode,
                "session_settings": [sa.Column("actor", sa.Text, nullable=False)],
            }
        },
    )
    audit_table = source.info[AUDIT_TABLE_KEY]
    with engine.begin() as connection:
        connection.execute(sa.schema.CreateSchema(schema))
    try:
        metadata.create_all(engine)
        row: dict[str, Any] = {c.key: value for c in source.columns if c.key != "__pk__"}
        with engine.begin() as connection:
            set_session_vars(connection, actor=actor)
            connection.execute(source.insert().values(__pk__=1, **row))
            connection.execute(source.delete())
        with engine.connect() as connection:
            recorded = connection.execute(
                sa.select(audit_table).order_by(audit_table.c.audit_id)
            ).all()
        assert [r.audit_operation for r in recorded] == ["I", "D"]
        for r in recorded:
            assert r._mapping["audit_actor"] == actor
            assert [r._mapping[c.name] for c in source.columns if c.key != "__pk__"] == list(
                row.values()
            )
    finally:
        with engine.begin() as connection:
            connection.execute(sa.schema.DropSchema(schema, cascade=True))
