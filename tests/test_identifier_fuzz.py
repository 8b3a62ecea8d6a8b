"""Any identifier and any value: generated names and values through real DDL and real writes.

Each property reuses one database and creates and drops real objects per example.  The number
of examples comes from ``AUDIT_FUZZ_EXAMPLES`` (CI sets 500; 100 by default locally).
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, SPEC_KEY, set_session_vars
from sqlalchemy_postgresql_audit.declare.naming import MAX_IDENTIFIER_BYTES
from sqlalchemy_postgresql_audit.declare.spec import FIXED_AUDIT_COLUMNS

EXAMPLES = int(os.environ.get("AUDIT_FUZZ_EXAMPLES", "100"))

fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

characters = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
#: Pieces that break naive quoting or formatting: quotes, dollar quotes, paramstyle markers,
#: comment starts, backslashes, non-ASCII.
TRICKY = st.sampled_from(
    [
        '"',
        "'",
        " ",
        "%",
        "%%",
        "%(x)s",
        "%s",
        ":",
        ":name",
        "$",
        "$$",
        "$audit$",
        "$1",
        "\\",
        ";",
        "--",
        "/*",
        "é",
        "ß",
        "İ",
        "日本",
        "🙂",
        "\t",
        "\n",
    ]
)
#: SQL reserved words and words that only PL/pgSQL reserves or treats specially, plus the
#: names the generated function uses itself.
KEYWORDS = st.sampled_from(
    [
        "select",
        "user",
        "order",
        "table",
        "from",
        "where",
        "all",
        "default",
        "null",
        "true",
        "if",
        "elsif",
        "loop",
        "end",
        "begin",
        "declare",
        "return",
        "raise",
        "perform",
        "strict",
        "exception",
        "found",
        "new",
        "old",
        "tg_op",
        "tg_when",
        "record",
        "cursor",
        "case",
        "audit_new_rows",
        "audit_old_rows",
        "audited_rows",
        "r",
        "o",
        "SELECT",
        "Order",
        "pg_catalog",
        "public",
        "current_user",
    ]
)


MISQUOTED = re.compile(r"[a-z_][a-z0-9_$]*\n", re.DOTALL)


def fits(name: str) -> bool:
    return 0 < len(name.encode()) <= MAX_IDENTIFIER_BYTES


def cut(name: str, size: int) -> str:
    """The longest prefix of ``name`` of at most ``size`` bytes."""
    return name.encode()[: max(size, 0)].decode(errors="ignore")


def near_limit(draw_text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Names of 50 to 63 bytes, whose derived names (``_audit``, ``<schema>_..``) overflow."""
    return draw_text.map(lambda s: cut(s * 64, MAX_IDENTIFIER_BYTES)).filter(
        lambda s: len(s.encode()) >= 50
    )


identifiers = (
    st.one_of(
        st.text(characters, min_size=1, max_size=20),
        KEYWORDS,
        st.lists(
            st.one_of(TRICKY, KEYWORDS, st.text(characters, max_size=3)), min_size=1, max_size=6
        ).map("".join),
        near_limit(st.text(characters, min_size=1, max_size=8)),
    )
    .filter(fits)
    .filter(lambda name: name.lower() not in {*FIXED_AUDIT_COLUMNS, "audit_actor"})
    # SQLAlchemy leaves such a name unquoted; declaring it is refused (test_declaration).
    .filter(lambda name: not MISQUOTED.fullmatch(name))
)

#: A table name PostgreSQL can create: not 63 underscores, whose array type's name (``_`` in
#: front, cut to 63 bytes) is its own name again however many underscores it tries.
tables = identifiers.filter(lambda name: name.strip("_") or len(name) < MAX_IDENTIFIER_BYTES)

#: A schema the test may create and drop: not a system schema, not reserved (``pg_``).
schemas = identifiers.filter(
    lambda name: name not in {"public", "information_schema"} and not name.startswith("pg_")
)

values = st.one_of(
    st.text(characters, max_size=40),
    st.lists(st.one_of(TRICKY, st.text(characters, max_size=4)), max_size=8).map("".join),
)


def create_schema(engine: sa.Engine, schema: str) -> None:
    with engine.begin() as connection:
        connection.execute(sa.schema.CreateSchema(schema))


def drop_schema(engine: sa.Engine, schema: str) -> None:
    with engine.begin() as connection:
        connection.execute(sa.schema.DropSchema(schema, cascade=True))


def history(engine: sa.Engine, table: sa.Table) -> list[Any]:
    audit_table = table.info[AUDIT_TABLE_KEY]
    with engine.connect() as connection:
        return list(connection.execute(sa.select(audit_table).order_by(audit_table.c.audit_id)))


@fuzz
@given(
    schema=schemas,
    table=tables,
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
                "capture": ["changed_columns"],
            }
        },
    )
    create_schema(engine, schema)
    try:
        metadata.create_all(engine)
        row: dict[str, Any] = {c.key: value for c in source.columns if c.key != "__pk__"}
        changed = {key: text + "!" for key, text in row.items()}
        with engine.begin() as connection:
            set_session_vars(connection, actor=actor)
            connection.execute(source.insert().values(__pk__=1, **row))
            connection.execute(source.update().values(**changed))
            connection.execute(source.delete())
        recorded = history(engine, source)
        assert [r.audit_operation for r in recorded] == ["I", "U", "D"]
        mirrored = [c.name for c in source.columns if c.key != "__pk__"]
        assert [[r._mapping[c] for c in mirrored] for r in recorded] == [
            list(row.values()),
            list(changed.values()),
            list(changed.values()),
        ]
        assert recorded[1].audit_changed_columns == mirrored
        assert {r.audit_actor for r in recorded} == {actor}
    finally:
        drop_schema(engine, schema)


@fuzz
@given(
    prefix=near_limit(st.text(characters, min_size=1, max_size=6)),
    tails=st.lists(
        st.text(characters, min_size=1, max_size=3), min_size=2, max_size=3, unique=True
    ),
)
def test_names_that_collide_after_truncation_stay_distinct(
    engine: sa.Engine, prefix: str, tails: list[str]
) -> None:
    """Tables whose names share their first 55+ bytes: every derived name (audit table,
    function, triggers) is shortened, and each table still gets its own, audited separately."""
    names = {cut(prefix, MAX_IDENTIFIER_BYTES - len(tail.encode())) + tail for tail in tails}
    # A name ending in a newline is refused at declaration (another test covers that).
    names = {name for name in names if fits(name) and not name.endswith("\n")}
    # PostgreSQL itself cannot create two tables whose 63-byte names differ only past a prefix of
    # underscores: their array types' names ("_" + name, shortened) collide however many
    # underscores it prepends ("could not form array type name").  Not the library's names.
    assume(cut(prefix, MAX_IDENTIFIER_BYTES - 3).strip("_") != "")
    metadata = sa.MetaData()
    tables = [
        sa.Table(
            name,
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("label", sa.Text),
            schema="collide",
            info={"audit.options": {"enabled": True}},
        )
        for name in sorted(names)
    ]
    specs = [t.info[SPEC_KEY] for t in tables]
    for derived in ("audit_table", "function"):
        assert len({getattr(s, derived) for s in specs}) == len(specs)
    assert len({t.name for s in specs for t in s.triggers}) == 4 * len(specs)
    create_schema(engine, "collide")
    try:
        metadata.create_all(engine)
        with engine.begin() as connection:
            for position, table in enumerate(tables):
                connection.execute(table.insert().values(id=position, label=table.name))
        for position, table in enumerate(tables):
            assert [(r.audit_operation, r.id, r.label) for r in history(engine, table)] == [
                ("I", position, table.name)
            ]
    finally:
        drop_schema(engine, "collide")


@fuzz
@given(
    settings_values=st.dictionaries(
        st.sampled_from(["username", "request_id", "tenant", "note"]), values, min_size=1
    ),
    mode=st.sampled_from(["statement", "row"]),
)
def test_generated_setting_values_are_recorded_exactly(
    engine: sa.Engine, settings_values: dict[str, str], mode: str
) -> None:
    metadata = sa.MetaData()
    source = sa.Table(
        "item",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        schema="settings_fuzz",
        info={
            "audit.options": {
                "enabled": True,
                "mode": mode,
                "session_settings": [
                    sa.Column(name, sa.Text)
                    for name in ("username", "request_id", "tenant", "note")
                ],
            }
        },
    )
    create_schema(engine, "settings_fuzz")
    try:
        metadata.create_all(engine)
        with engine.begin() as connection:
            set_session_vars(connection, **settings_values)
            connection.execute(source.insert().values(id=1))
        with engine.begin() as connection:  # settings end with their transaction
            connection.execute(source.delete())
        first, second = history(engine, source)
        for name in ("username", "request_id", "tenant", "note"):
            expected = settings_values.get(name) or None  # '' reads as unset
            assert first._mapping[f"audit_{name}"] == expected, name
            assert second._mapping[f"audit_{name}"] is None, name
    finally:
        drop_schema(engine, "settings_fuzz")


@pytest.mark.parametrize("column", ["setting_0", "capture_session_user"])
def test_columns_named_like_function_variables_are_audited(engine: sa.Engine, column: str) -> None:
    source = sa.Table(
        "clash",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(column, sa.Text),
        info={
            "audit.options": {
                "enabled": True,
                "session_settings": [sa.Column("actor", sa.Text, nullable=False)],
                "capture": ["session_user"],
            }
        },
    )
    source.metadata.create_all(engine)
    with engine.begin() as connection:
        set_session_vars(connection, actor="ann")
        connection.execute(source.insert().values({"id": 1, column: "value"}))
    [row] = history(engine, source)
    assert (row.audit_actor, row._mapping[column]) == ("ann", "value")
