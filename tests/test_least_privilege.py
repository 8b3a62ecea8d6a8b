"""The grant step reaches a fixpoint: whatever was granted before, a writer holds exactly the
rights SECURITY.md lists, on every object of an audited table and of the library.

The pre-state is hostile: default privileges hand everything on new tables, sequences and
functions to PUBLIC and to a group the writer is in, a group holding a grant option grants on,
column grants reach the audit table and the audited table, the writer holds UPDATE (``setval``)
on the audit table's identity sequence.  The writer's rights are then enumerated with
``has_*_privilege`` over every object (tables, columns, partitions, sequences, functions), and
the table of them is rendered and compared with the one in SECURITY.md and docs/security.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import SPEC_KEY, maintain, seal, verify
from sqlalchemy_postgresql_audit.install.grants import grant_least_privilege
from sqlalchemy_postgresql_audit.render import guard_function, quote
from sqlalchemy_postgresql_audit.render.redaction import KEY_TABLE
from sqlalchemy_postgresql_audit.render.seals import create_seal_tables

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- writer-rights:begin -->", "<!-- writer-rights:end -->"
SCHEMA = "Shop Data"

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "REFERENCES")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")

#: The kinds of object, in the order SECURITY.md lists them.
KINDS = (
    "audited table whose TRUNCATE is audited",
    "audited table whose TRUNCATE is not audited",
    "column of an audited table",
    "partition of an audited table, and its columns",
    "sequence of a serial column of an audited table",
    "identity sequence of an audited table",
    "audit table, and its columns",
    "the audit table's `audit_id` sequence",
    "trigger function, append-only guard function",
    "redaction key table (`redact` with `hash`), and its columns",
)


def models() -> sa.MetaData:
    metadata = sa.MetaData(schema=SCHEMA)
    sa.Table(  # identity key, append-only, every operation audited, a hashed column
        "order",
        metadata,
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("item", sa.Text),
        info={"audit.options": {"enabled": True, "append_only": True, "redact": {"item": "hash"}}},
    )
    sa.Table(  # a serial key; TRUNCATE not audited
        "note",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("body", sa.Text),
        info={"audit.options": {"enabled": True, "operations": ["INSERT", "UPDATE", "DELETE"]}},
    )
    sa.Table(  # partitioned (row mode), partitions created afterwards
        "reading",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.Integer),
        postgresql_partition_by="RANGE (id)",
        info={"audit.options": {"enabled": True}},
    )
    return metadata


def hostile_pre_state(connection: sa.Connection, writer: str, group: str) -> None:
    """Before the tables exist: default privileges to PUBLIC and to the writer's group."""
    w, g = quote(writer), quote(group)
    for sql in (
        f"CREATE SCHEMA {quote(SCHEMA)}",
        f"GRANT {g} TO {w}",
        f"GRANT USAGE, CREATE ON SCHEMA {quote(SCHEMA)} TO PUBLIC",
        "ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC",
        f"ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO {g} WITH GRANT OPTION",
        f"ALTER DEFAULT PRIVILEGES GRANT ALL ON SEQUENCES TO PUBLIC, {g}",
        f"ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO {g}",
    ):
        connection.execute(sa.text(sql))


def hostile_grants(connection: sa.Connection, writer: str, group: str) -> None:
    """After the tables exist: column grants, a grant made through a grant option, partitions
    made after install, and ``setval`` rights on the audit table's identity sequence."""
    w, g, s = quote(writer), quote(group), quote(SCHEMA)
    for sql in (
        f"CREATE TABLE {s}.reading_low PARTITION OF {s}.reading FOR VALUES FROM (0) TO (100)",
        f"CREATE TABLE {s}.reading_high PARTITION OF {s}.reading"
        " FOR VALUES FROM (100) TO (1000) PARTITION BY RANGE (id)",
        f"CREATE TABLE {s}.reading_top PARTITION OF {s}.reading_high"
        " FOR VALUES FROM (100) TO (1000)",
        f"GRANT INSERT (audit_operation, audit_operation_timestamp, audit_current_user)"
        f" ON {s}.order_audit TO {g}",
        f"GRANT INSERT (audit_operation, audit_current_user) ON {s}.note_audit TO PUBLIC",
        f"GRANT REFERENCES (id), UPDATE (body) ON {s}.note TO PUBLIC",
        f"GRANT UPDATE, USAGE ON SEQUENCE {s}.order_audit_audit_id_seq TO {w}",
        f"GRANT ALL ON {s}.reading_top TO {w}",
        f"SET ROLE {g}",  # the group passes its grant option on
        f"GRANT INSERT, TRUNCATE ON {s}.note_audit TO {w}",
        f"GRANT TRUNCATE ON {s}.note TO {w}",
        "RESET ROLE",
    ):
        connection.execute(sa.text(sql))


Rights = dict[str, dict[str, frozenset[str]]]


def writer_rights(connection: sa.Connection, metadata: sa.MetaData, role: str) -> Rights:
    """``has_*_privilege`` of ``role`` on every object: {kind: {object: rights}}."""
    version = int(connection.execute(sa.text("SHOW server_version_num")).scalar_one())
    table_privileges = TABLE_PRIVILEGES + (("MAINTAIN",) if version >= 170000 else ())
    by_kind: dict[str, dict[str, frozenset[str]]] = defaultdict(dict)

    def has(function: str, target: str, privilege: str, column: str | None = None) -> bool:
        arguments = (
            ":role, :target, :column, :privilege" if column else ":role, :target, :privilege"
        )
        return bool(
            connection.execute(
                sa.text(f"SELECT {function}({arguments})"),
                {"role": role, "target": target, "column": column, "privilege": privilege},
            ).scalar_one()
        )

    def table(kind: str, oid_name: str) -> None:
        by_kind[kind][oid_name] = frozenset(
            p for p in table_privileges if has("has_table_privilege", oid_name, p)
        )

    def columns(kind: str, oid_name: str) -> None:
        names = connection.execute(
            sa.text(
                "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass)"
                " AND attnum > 0 AND NOT attisdropped"
            ),
            {"t": oid_name},
        ).scalars()
        for name in names:
            by_kind[kind][f"{oid_name}.{name}"] = frozenset(
                p for p in COLUMN_PRIVILEGES if has("has_column_privilege", oid_name, p, name)
            )

    def sequences(of: str) -> list[tuple[str, str]]:
        rows = connection.execute(
            sa.text(
                "SELECT CAST(CAST(objid AS regclass) AS text), deptype FROM pg_depend"
                " JOIN pg_class s ON s.oid = objid AND s.relkind = 'S'"
                " WHERE refobjid = CAST(:t AS regclass) AND deptype IN ('a', 'i')"
            ),
            {"t": of},
        ).all()
        return [(str(r[0]), str(r[1])) for r in rows]

    def sequence(kind: str, name: str) -> None:
        by_kind[kind][name] = frozenset(
            p for p in SEQUENCE_PRIVILEGES if has("has_sequence_privilege", name, p)
        )

    for source in metadata.tables.values():
        spec = source.info.get(SPEC_KEY)
        if spec is None:
            continue
        name = f"{quote(SCHEMA)}.{quote(source.name)}"
        audit = f"{quote(SCHEMA)}.{quote(spec.audit_table)}"
        truncate = any(t.operation == "TRUNCATE" for t in spec.triggers)
        table(KINDS[0] if truncate else KINDS[1], name)
        columns(KINDS[2], name)
        partitions = connection.execute(
            sa.text(
                "SELECT CAST(CAST(relid AS regclass) AS text) FROM pg_partition_tree(:t)"
                " WHERE relid <> CAST(:t AS regclass)"
            ),
            {"t": name},
        ).scalars()
        for partition in partitions:
            table(KINDS[3], partition)
            columns(KINDS[3], partition)
        for seq, deptype in sequences(name):
            sequence(KINDS[4] if deptype == "a" else KINDS[5], seq)
        table(KINDS[6], audit)
        columns(KINDS[6], audit)
        for seq, _ in sequences(audit):
            sequence(KINDS[7], seq)
        functions = [spec.function, *([guard_function(spec)] if spec.append_only else [])]
        for function in functions:
            signature = f"{quote(SCHEMA)}.{quote(function)}()"
            by_kind[KINDS[8]][signature] = frozenset(
                {"EXECUTE"} if has("has_function_privilege", signature, "EXECUTE") else set()
            )
        if spec.hashes:
            key_table = f"{quote(SCHEMA)}.{quote(KEY_TABLE)}"
            table(KINDS[9], key_table)
            columns(KINDS[9], key_table)
    return dict(by_kind)


def render_table(rights: Rights) -> str:
    """SECURITY.md's table: one row per kind, which must hold the same on every object of it."""
    order = {p: i for i, p in enumerate((*TABLE_PRIVILEGES, "MAINTAIN", "USAGE", "EXECUTE"))}
    lines = ["| object | what a writer holds |", "|---|---|"]
    for kind in KINDS:
        (held_by_all,) = set(rights[kind].values())  # one set of rights for the whole kind
        held = sorted(held_by_all, key=order.__getitem__)
        lines.append(f"| {kind} | {', '.join(held) if held else 'nothing'} |")
    return "\n".join(lines)


def documented_table(path: Path) -> str:
    text = path.read_text()
    return text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()


@pytest.fixture
def roles(make_role: Callable[[str], str]) -> dict[str, str]:
    return {kind: make_role(f"Fix {kind.title()}") for kind in ("writer", "group", "reader")}


def test_grants_reach_a_fixpoint_from_a_hostile_pre_state(
    engine: sa.Engine, roles: dict[str, str]
) -> None:
    metadata = models()
    with engine.begin() as connection:
        hostile_pre_state(connection, roles["writer"], roles["group"])
    metadata.create_all(engine)
    with engine.begin() as connection:
        hostile_grants(connection, roles["writer"], roles["group"])
        before = writer_rights(connection, metadata, roles["writer"])
    # The pre-state really is hostile: the writer could forge history and setval audit_id.
    assert {"INSERT", "TRUNCATE"} <= set().union(*before[KINDS[6]].values())
    assert "UPDATE" in set().union(*before[KINDS[7]].values())
    assert "SELECT" in set().union(*before[KINDS[9]].values())  # the group's default rights
    grant = {"writers": [roles["writer"]], "readers": [roles["reader"]]}
    grant_least_privilege(engine, metadata, **grant)
    with engine.connect() as connection:
        after = writer_rights(connection, metadata, roles["writer"])
    assert set(after) == set(KINDS)
    assert len(after[KINDS[3]]) > 3  # partitions of partitions too, and their columns
    expected = documented_table(ROOT / "SECURITY.md")
    assert render_table(after) == expected
    assert documented_table(ROOT / "docs" / "security.md") == expected
    grant_least_privilege(engine, metadata, **grant)  # idempotent
    with engine.connect() as connection:
        assert writer_rights(connection, metadata, roles["writer"]) == after
        # readers read history, and nothing of the library's reaches them but that
        reader = roles["reader"]
        assert connection.execute(
            sa.text("SELECT has_table_privilege(:r, :t, 'SELECT')"),
            {"r": reader, "t": f"{quote(SCHEMA)}.order_audit"},
        ).scalar_one()


@pytest.mark.parametrize("membership", ["owner", "pg_write_all_data"])
def test_a_writer_that_no_revoke_can_restrict_is_refused_by_name(
    engine: sa.Engine, roles: dict[str, str], membership: str
) -> None:
    metadata = models()
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {quote(SCHEMA)}"))
    metadata.create_all(engine)
    writer = roles["writer"]
    owner = roles["group"] if membership == "owner" else membership
    with engine.begin() as connection:
        connection.execute(sa.text(f"GRANT {quote(owner)} TO {quote(writer)}"))
    options: dict[str, Any] = {"owner": owner} if membership == "owner" else {}
    with pytest.raises(sa.exc.DBAPIError, match=f"role .*{writer}.* cannot be made a writer") as e:
        grant_least_privilege(engine, metadata, writers=[writer], **options)
    assert membership in str(e.value)


def _as_role(database_url: sa.URL, role: str, *statements: str) -> None:
    as_role = sa.create_engine(database_url.set(username=role))
    try:
        with as_role.begin() as connection:
            for statement in statements:
                connection.execute(sa.text(statement))
    finally:
        as_role.dispose()


def test_a_key_table_a_writer_planted_is_never_adopted(
    engine: sa.Engine, database_url: sa.URL, roles: dict[str, str]
) -> None:
    writer = roles["writer"]
    with engine.begin() as connection:
        connection.execute(sa.text(f"GRANT CREATE ON SCHEMA public TO {quote(writer)}"))
    _as_role(
        database_url,
        writer,
        "CREATE FUNCTION public.planted() RETURNS boolean LANGUAGE sql AS 'SELECT true'",
        f"CREATE TABLE public.{KEY_TABLE} (version int2 PRIMARY KEY, inner_pad bytea NOT NULL, "
        "outer_pad bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
        f"ALTER TABLE public.{KEY_TABLE} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE public.{KEY_TABLE} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY planted ON public.{KEY_TABLE} USING (public.planted())",
    )
    metadata = sa.MetaData()
    sa.Table(
        "customer",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String),
        info={"audit.options": {"enabled": True, "redact": {"email": "hash"}}},
    )
    refused = f"{KEY_TABLE} was not created by sqlalchemy-postgresql-audit"
    with pytest.raises(sa.exc.DBAPIError, match=f"{refused}.*owned by .*{writer}"):
        metadata.create_all(engine)
    # Handed to a trusted owner, what it was planted with still refuses it.
    with engine.begin() as connection:
        connection.execute(sa.text(f"ALTER TABLE public.{KEY_TABLE} OWNER TO CURRENT_USER"))
        connection.execute(sa.text(f"ALTER TABLE public.{KEY_TABLE} ADD COLUMN extra text"))
    reasons = "row level security is enabled on it; it has policies planted.*columns.*extra"
    with pytest.raises(sa.exc.DBAPIError, match=reasons):
        metadata.create_all(engine)


def test_seal_tables_a_writer_planted_are_never_adopted(
    engine: sa.Engine, database_url: sa.URL, roles: dict[str, str]
) -> None:
    writer = roles["writer"]
    metadata = models()
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {quote(SCHEMA)}"))
        connection.execute(
            sa.text(f"GRANT USAGE, CREATE ON SCHEMA {quote(SCHEMA)} TO {quote(writer)}")
        )
    metadata.create_all(engine)
    _as_role(database_url, writer, *create_seal_tables(SCHEMA))
    with pytest.raises(sa.exc.DBAPIError, match="was not created by sqlalchemy-postgresql-audit"):
        seal(engine, metadata)
    with pytest.raises(sa.exc.DBAPIError, match="was not created by sqlalchemy-postgresql-audit"):
        verify(engine, metadata)  # reading them would run the planter's policies too


def test_the_owner_gets_every_partition_of_a_partitioned_audit_table(
    engine: sa.Engine, database_url: sa.URL, roles: dict[str, str]
) -> None:
    owner = roles["group"]
    metadata = sa.MetaData()
    sa.Table(
        "account",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String),
        info={"audit.options": {"enabled": True, "append_only": True, "partition": "week"}},
    )
    metadata.create_all(engine)
    grant_least_privilege(engine, metadata, writers=[roles["writer"]], owner=owner)
    with engine.connect() as connection:
        owners = connection.execute(
            sa.text(
                "SELECT relid::regclass::text, pg_get_userbyid(c.relowner) "
                "FROM pg_partition_tree('account_audit') t JOIN pg_class c ON c.oid = t.relid"
            )
        ).all()
    assert any(name.endswith("_default") for name, _ in owners)
    assert {o for _, o in owners} == {owner}, owners
    with engine.begin() as connection:  # maintain makes partitions: CREATE on the schema
        connection.execute(sa.text(f"GRANT CREATE ON SCHEMA public TO {quote(owner)}"))
    as_owner = sa.create_engine(database_url.set(username=owner))
    try:
        maintain(as_owner, metadata)
    finally:
        as_owner.dispose()
