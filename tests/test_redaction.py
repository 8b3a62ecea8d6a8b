"""Redaction at write time (option ``redact``): masked, hashed and omitted columns.

Declaration errors need no database; everything else runs on the real server, in both capture
modes: what the trigger records, the HMAC checked against Python's ``hmac``, key rotation,
``matches_hash``, the key table out of writers' reach, and how the history API shows it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import sqlalchemy_postgresql_audit as audit
from alembic_env import make_project
from cli_run import run, url_text
from sqlalchemy_postgresql_audit import (
    AUDIT_TABLE_KEY,
    SPEC_KEY,
    AuditConfigurationError,
    AuditError,
)
from sqlalchemy_postgresql_audit.history import REDACTED, Hashed
from sqlalchemy_postgresql_audit.install.grants import grant_least_privilege
from sqlalchemy_postgresql_audit.lifecycle.redaction_keys import (
    matches_hash,
    padded_keys,
    rotate_redaction_key,
)
from sqlalchemy_postgresql_audit.render import quote, render, render_baseline
from sqlalchemy_postgresql_audit.render.redaction import KEY_TABLE

KEY = bytes(range(32))
MODES = ("statement", "row")


def person(mode: str = "statement", **options: Any) -> sa.Table:
    redact = {"email": "hash", "born": "mask", "note": "omit"}
    return sa.Table(
        "person",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String),
        sa.Column("email", sa.String),
        sa.Column("born", sa.Date),
        sa.Column("note", sa.Text),
        info={"audit.options": {"enabled": True, "mode": mode, "redact": redact, **options}},
    )


def digest(
    value: str, version: int = 2, key: bytes = KEY, domain: bytes = b"person\0email\0"
) -> bytes:
    """What the trigger should record: the key version byte, then HMAC-SHA256 of the table's
    and column's names and the text."""
    return bytes([version]) + hmac.new(key, domain + value.encode(), hashlib.sha256).digest()


@pytest.mark.parametrize(
    ("redact", "fragment"),
    [
        ({"nope": "mask"}, "names 'nope', not a column"),
        ({"id": "mask"}, "primary key column 'id'"),
        ({"name": "blur"}, "must be one of 'mask', 'hash', 'omit'"),
        ({"at": "hash"}, "text form of DATETIME"),
        (["name"], "must be a dict"),
    ],
)
def test_bad_redact_fails_at_declaration_naming_table_and_key(redact: Any, fragment: str) -> None:
    with pytest.raises(AuditConfigurationError) as raised:
        sa.Table(
            "account",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String),
            sa.Column("at", sa.DateTime),
            info={"audit.options": {"enabled": True, "redact": redact}},
        )
    assert (raised.value.table, raised.value.key) == ("account", "redact")
    assert fragment in str(raised.value)


def test_redaction_is_refused_in_cdc_mode_where_the_decoder_would_record_values_in_clear() -> None:
    with pytest.raises(AuditConfigurationError) as raised:
        sa.Table(
            "account",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String),
            info={"audit.options": {"enabled": True, "mode": "cdc", "redact": {"name": "mask"}}},
        )
    assert (raised.value.table, raised.value.key) == ("account", "redact")
    assert "mode='cdc'" in str(raised.value)


@pytest.mark.parametrize(
    ("type_", "reason", "not_cited"),
    [
        (sa.Float(), "extra_float_digits", "DateStyle"),
        (sa.JSON(), "spacing and key order", "DateStyle"),
        (sa.dialects.postgresql.JSONB(), "1.0 and 1.00", "DateStyle"),
        (sa.Interval(), "IntervalStyle", "extra_float_digits"),
        (sa.LargeBinary(), "bytea_output", "DateStyle"),
    ],
)
def test_hash_refused_for_a_type_names_that_types_reason(
    type_: Any, reason: str, not_cited: str
) -> None:
    with pytest.raises(AuditConfigurationError) as raised:
        sa.Table(
            "account",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("score", type_),
            info={"audit.options": {"enabled": True, "redact": {"score": "hash"}}},
        )
    assert reason in str(raised.value)
    assert not_cited not in str(raised.value)


def test_redact_and_exclude_columns_cannot_name_one_column() -> None:
    with pytest.raises(AuditConfigurationError, match="also in exclude_columns") as raised:
        audit.audit(
            sa.Table(
                "t",
                sa.MetaData(),
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("a", sa.String),
            ),
            redact={"a": "mask"},
            exclude_columns=["a"],
        )
    assert (raised.value.table, raised.value.key) == ("t", "redact")


def test_statement_mode_needs_a_key_to_list_changed_columns() -> None:
    def keyless(mode: str) -> sa.Table:
        return sa.Table(
            "log",
            sa.MetaData(),
            sa.Column("line", sa.Text),
            sa.Column("secret", sa.Text),
            info={"audit.options": {"enabled": True, "mode": mode, "redact": {"secret": "mask"}}},
        )

    with pytest.raises(AuditConfigurationError, match="needs a primary key") as raised:
        keyless("statement")
    assert (raised.value.table, raised.value.key) == ("log", "redact")
    assert "audit_changed_columns" in keyless("row").info[AUDIT_TABLE_KEY].c


def test_audit_table_shape_per_form() -> None:
    table = person()
    audit_table = table.info[AUDIT_TABLE_KEY]
    assert "note" not in audit_table.c  # omit: no column
    assert isinstance(audit_table.c.born.type, sa.Date)  # mask: the typed column
    assert isinstance(audit_table.c.email.type, sa.LargeBinary)  # hash: bytea
    assert "audit_changed_columns" in audit_table.c  # a masked change shows here
    spec = table.info[SPEC_KEY]
    assert [(r.name, r.form) for r in spec.redacted] == [
        ("email", "hash"),
        ("born", "mask"),
        ("note", "omit"),
    ]
    assert audit.AuditSpec.from_json(spec.to_json()) == spec


def test_a_table_without_redaction_renders_its_spec_as_before() -> None:
    plain = sa.Table(
        "plain",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        info={"audit.options": {"enabled": True}},
    )
    spec = plain.info[SPEC_KEY]
    assert "redacted" not in spec.as_dict()
    assert KEY_TABLE not in "".join(render(spec).install)


def read_audit(connection: sa.Connection, table: sa.Table) -> list[Any]:
    audit_table = table.info[AUDIT_TABLE_KEY]
    return connection.execute(sa.select(audit_table).order_by(audit_table.c.audit_id)).all()


@pytest.mark.parametrize("mode", MODES)
def test_each_form_is_recorded_as_declared(engine: sa.Engine, mode: str) -> None:
    table = person(mode, truncate_rows=True)
    table.metadata.create_all(engine)
    rotate_redaction_key(engine, table, KEY)
    with engine.begin() as connection:
        connection.execute(
            table.insert().values(id=1, name="a", email="a@x.org", born="1990-01-01", note="n")
        )
        connection.execute(table.update().values(note="changed"))  # only the omitted column
        connection.execute(table.update().values(born="1991-02-03", email="b@x.org"))
        connection.execute(table.update().values(email=None))
        connection.execute(sa.text("TRUNCATE person"))  # copies the row: truncate_rows
        rows = read_audit(connection, table)
    assert [r.audit_operation for r in rows] == ["I", "U", "U", "U", "T"]
    assert [r.born for r in rows] == [None] * 5
    assert [None if r.email is None else bytes(r.email) for r in rows] == [
        digest("a@x.org"),
        digest("a@x.org"),
        digest("b@x.org"),
        None,
        None,
    ]
    assert [r.audit_changed_columns for r in rows] == [
        None,
        ["note"],
        ["email", "born"],
        ["email"],
        None,
    ]


@pytest.mark.parametrize("mode", MODES)
def test_skip_unchanged_still_records_a_change_of_an_omitted_column(
    engine: sa.Engine, mode: str
) -> None:
    table = person(mode, skip_unchanged=True)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, note="n"))
        connection.execute(table.update().values(note="n"))  # no change: skipped
        connection.execute(table.update().values(note="m"))
        rows = read_audit(connection, table)
    assert [(r.audit_operation, r.audit_changed_columns) for r in rows] == [
        ("I", None),
        ("U", ["note"]),
    ]


def test_rotation_keeps_old_digests_checkable(engine: sa.Engine) -> None:
    table = person()
    table.metadata.create_all(engine)
    with engine.begin() as connection:  # the first key: made by the server at install
        connection.execute(table.insert().values(id=1, email="a@x.org"))
    assert rotate_redaction_key(engine, table.metadata, KEY) == {"public": 2}
    with engine.begin() as connection:
        connection.execute(table.update().values(email="a@x.org"))
        first, second = (r.email for r in read_audit(connection, table))
    assert first[0] == 1 and bytes(second) == digest("a@x.org", 2)
    with engine.connect() as connection:
        for recorded in (first, second, Hashed.from_recorded(bytes(first))):
            assert matches_hash(connection, table, "email", "a@x.org", recorded)
            assert not matches_hash(connection, table, "email", "A@x.org", recorded)
        assert matches_hash(connection, table, "email", None, None)
        with pytest.raises(ValueError, match="'born' is not redacted with 'hash'"):
            matches_hash(connection, table, "born", "1990-01-01", first)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        rotate_redaction_key(engine, table, b"short")


def test_matches_hash_takes_every_form_the_trail_is_shown_in(engine: sa.Engine) -> None:
    table = person()
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, email="a@x.org"))
        (recorded,) = (bytes(r.email) for r in read_audit(connection, table))
    shown = Hashed.from_recorded(recorded)
    with engine.connect() as connection:
        for form in (recorded.hex(), "\\x" + recorded.hex(), bytearray(recorded)):
            assert matches_hash(connection, table, "email", "a@x.org", form)
            assert not matches_hash(connection, table, "email", "b@x.org", form)
        with pytest.raises(ValueError, match="shortened form shown in tables"):
            matches_hash(connection, table, "email", "a@x.org", str(shown))
        with pytest.raises(ValueError, match="not hex text"):
            matches_hash(connection, table, "email", "a@x.org", "a@x.org")
        with pytest.raises(ValueError, match="is 32 bytes; a recorded digest is 33"):
            matches_hash(connection, table, "email", "a@x.org", recorded[1:])
        with pytest.raises(TypeError, match="column 'email': recorded must be a Hashed"):
            matches_hash(connection, table, "email", "a@x.org", 7)  # type: ignore[arg-type]
        assert not matches_hash(connection, table, "email", "a@x.org", None)


def test_the_sql_hmac_is_rfc_2104() -> None:
    """The pads the key table stores give Python's HMAC when hashed as the trigger does."""
    for key in (KEY, b"k" * 100):  # a key longer than a block is hashed first
        inner, outer = padded_keys(key)
        message = b"a@x.org"
        ours = hashlib.sha256(outer + hashlib.sha256(inner + message).digest()).digest()
        assert ours == hmac.new(key, message, hashlib.sha256).digest()


def test_a_missing_key_fails_the_write_instead_of_recording_null(engine: sa.Engine) -> None:
    table = person()
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DELETE FROM {KEY_TABLE}"))
    with pytest.raises(sa.exc.DBAPIError, match="no redaction key"), engine.begin() as connection:
        connection.execute(table.insert().values(id=1, email="a@x.org"))


def test_writers_and_readers_cannot_read_the_key(
    engine: sa.Engine, database_url: sa.URL, make_role: Callable[[str], str]
) -> None:
    writer, reader, owner = make_role("writer"), make_role("reader"), make_role("owner")
    table = person("row")
    with engine.begin() as connection:
        # The hostile case: new tables hand every right to PUBLIC.
        connection.execute(sa.text("ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC"))
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text(f"GRANT SELECT (version) ON {KEY_TABLE} TO {quote(writer)}"))
    grant_least_privilege(engine, table.metadata, writers=[writer], readers=[reader], owner=owner)
    rotate_redaction_key(engine, table, KEY)
    with engine.connect() as connection:
        for role in (writer, reader):
            for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"):
                held = connection.execute(
                    sa.text("SELECT has_table_privilege(:r, :t, :p)"),
                    {"r": role, "t": KEY_TABLE, "p": privilege},
                ).scalar_one()
                assert not held, (role, privilege)
            held = connection.execute(
                sa.text("SELECT has_any_column_privilege(:r, :t, 'SELECT')"),
                {"r": role, "t": KEY_TABLE},
            ).scalar_one()
            assert not held, role
        owner_of = connection.execute(
            sa.text(
                "SELECT relowner::regrole::text FROM pg_class WHERE oid = CAST(:t AS regclass)"
            ),
            {"t": KEY_TABLE},
        ).scalar_one()
        assert owner_of == owner
    as_writer = sa.create_engine(database_url.set(username=writer))
    try:
        with as_writer.begin() as connection:  # the trigger still reads it, as the owner
            connection.execute(table.insert().values(id=1, email="a@x.org"))
        denied = pytest.raises(sa.exc.ProgrammingError, match="permission denied")
        with denied, as_writer.connect() as connection:
            connection.execute(sa.text(f"SELECT inner_pad FROM {KEY_TABLE}"))
    finally:
        as_writer.dispose()
    with engine.connect() as connection:
        assert bytes(read_audit(connection, table)[0].email) == digest("a@x.org")


class Base(DeclarativeBase):
    pass


class Person(Base):
    __tablename__ = "person"
    __table_args__ = {
        "info": {
            "audit.options": {
                "enabled": True,
                "redact": {"email": "hash", "born": "mask", "note": "omit"},
            }
        }
    }
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None]
    email: Mapped[str | None]
    born: Mapped[str | None] = mapped_column(sa.String)
    note: Mapped[str | None]


@pytest.mark.parametrize("mode", MODES)
def test_history_shows_redacted_values_never_none(engine: sa.Engine, mode: str) -> None:
    table = person(mode)
    table.metadata.create_all(engine)
    rotate_redaction_key(engine, table, KEY)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, name="a", email="a@x.org", born=None))
        connection.execute(table.update().values(note="m"))
        connection.execute(table.update().values(name="b", born="1990-01-01"))
    with engine.connect() as connection:
        versions = connection.execute(audit.history(table, 1)).all()
        changes = connection.execute(audit.changes(table, 1)).all()
        (state,) = connection.execute(
            audit.as_of(table, versions[-1].audit_operation_timestamp, 1)
        ).all()
    assert [v.born for v in versions] == [REDACTED] * 3  # NULL or not, it does not say
    assert {v.email for v in versions} == {Hashed(2, digest("a@x.org")[1:])}
    assert (state.name, state.born, state.email) == ("b", REDACTED, versions[0].email)
    listed = [(c.audit_id - versions[0].audit_id, c.column, c.before, c.after) for c in changes]
    assert listed == [
        (0, "id", None, 1),
        (0, "name", None, "a"),
        (0, "email", None, versions[0].email),
        (0, "born", None, REDACTED),
        (0, "note", None, REDACTED),
        (1, "note", REDACTED, REDACTED),
        (2, "name", "a", "b"),
        (2, "born", REDACTED, REDACTED),
    ]
    assert repr(REDACTED) == "REDACTED" and str(versions[0].email).startswith("[hash:v2:")


def test_orm_versions_show_redacted_attributes(engine: sa.Engine) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Person(id=1, name="a", email="a@x.org", born="x", note="n"))
        session.commit()
        person_row = session.get(Person, 1)
        assert person_row is not None
        person_row.note = "m"
        session.commit()
        first, second = session.scalars(audit.history(Person, 1)).all()
    assert first.row is not None and second.row is not None
    assert (first.row.born, first.row.note) == (REDACTED, REDACTED)
    assert isinstance(first.row.email, Hashed)
    assert second.changed == {"note": (REDACTED, REDACTED)}


def test_the_command_line_shows_redacted_values(engine: sa.Engine, database_url: sa.URL) -> None:
    """Read from the database alone (the installed definition names the redacted columns)."""
    table = person()
    table.metadata.create_all(engine)
    rotate_redaction_key(engine, table, KEY)
    with engine.begin() as connection:
        connection.execute(
            table.insert().values(id=1, name="[redacted]", email="a@x.org", born=None)
        )
        connection.execute(table.update().values(born="1990-01-01", note="m"))
    url = url_text(database_url)
    text = run("history", "person", "1", "--url", url)
    assert text.returncode == 0, text.stderr
    hashed = f"[hash:v2:{digest('a@x.org')[1:5].hex()}…]"
    assert f"email={hashed}, born=[redacted], note=[redacted]" in text.stdout
    assert "born: [redacted] -> [redacted], note: [redacted] -> [redacted]" in text.stdout
    document = run("history", "person", "1", "--url", url, "--json")
    versions = json.loads(document.stdout)["versions"]
    hash_object = {"hash": {"key_version": 2, "digest": digest("a@x.org")[1:].hex()}}
    # A redacted value is an object, never text a real value could also be.
    assert versions[1]["values"] == {
        "id": 1,
        "name": "[redacted]",
        "email": hash_object,
        "born": {"redacted": "mask"},
        "note": {"redacted": "omit"},
    }
    assert versions[1]["changes"] == {
        "born": [{"redacted": "mask"}, {"redacted": "mask"}],
        "note": [{"redacted": "omit"}, {"redacted": "omit"}],
    }
    # What --json prints is what matches_hash takes.
    with engine.connect() as connection:
        assert matches_hash(connection, table, "email", "a@x.org", hash_object)
        assert matches_hash(connection, table, "email", "a@x.org", hash_object["hash"])
    as_of = run("as-of", "person", "2100-01-01T00:00:00Z", "--url", url, "--json")
    assert json.loads(as_of.stdout)["rows"][0]["note"] == {"redacted": "omit"}


def test_alembic_adds_and_removes_redaction(tmp_path: Path, engine: sa.Engine) -> None:
    """Masking and omitting an existing column, and hashing a new one, are one autogenerated
    revision each way: the audit table's columns and a trigger replace."""

    def models(redact: dict[str, str], *extra: sa.Column[Any]) -> sa.MetaData:
        metadata = sa.MetaData()
        sa.Table(
            "person",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("born", sa.Date),
            sa.Column("note", sa.Text),
            *extra,
            info={"audit.options": {"enabled": True, "redact": redact}},
        )
        return metadata

    project = make_project(tmp_path, engine.url)
    plain = models({})
    project.revision(plain, "plain")
    project.upgrade(plain)
    redacted = models(
        {"born": "mask", "note": "omit", "email": "hash"}, sa.Column("email", sa.String)
    )
    text = project.revision(redacted, "redact")
    assert "redacted +born +note +email" in text
    project.upgrade(redacted)
    project.check(redacted)  # nothing left to migrate
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO person VALUES (1, '1990-01-01', 'n', 'a@x.org')"))
        row = connection.execute(sa.text("SELECT * FROM person_audit")).one()
    assert (row.born, row.note, bytes(row.email)[0]) == (None, None, 1)  # note: kept, unused
    project.downgrade(redacted, "-1")
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE person SET note = 'm'"))
        notes = connection.execute(sa.text("SELECT note FROM person_audit ORDER BY audit_id")).all()
    assert notes == [(None,), ("m",)]


def test_autogenerate_refuses_to_retype_recorded_values_to_a_hash(
    tmp_path: Path, engine: sa.Engine
) -> None:
    """Hashing a column that already has history: a retype of the audit column to bytea would
    keep the plain values whatever ``USING`` cast was added, so autogenerate (and ``alembic
    check``) raise, naming the table and column, and the audit table is left as it was."""

    def models(redact: dict[str, str]) -> sa.MetaData:
        metadata = sa.MetaData()
        sa.Table(
            "person",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("email", sa.String),
            info={"audit.options": {"enabled": True, "redact": redact}},
        )
        return metadata

    project = make_project(tmp_path, engine.url)
    plain = models({})
    project.revision(plain, "plain")
    project.upgrade(plain)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO person VALUES (1, 'a@x.org')"))
    hashed = models({"email": "hash"})
    for step in (lambda: project.revision(hashed, "hash"), lambda: project.check(hashed)):
        with pytest.raises(audit.AuditError, match=r"table 'person'.*column 'email' 'hash'"):
            step()
    assert len(list((tmp_path / "migrations" / "versions").glob("*.py"))) == 1
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT email FROM person_audit")).scalar() == "a@x.org"


def test_redact_history_scrubs_what_a_column_recorded_before_it_was_masked(
    engine: sa.Engine,
) -> None:
    """Masking stops recording a column, not what it recorded: those values stay readable in
    the audit table until ``redact_history`` erases them, under ``append_only``, with one
    ``E`` marker."""

    def model(redact: dict[str, str]) -> sa.Table:
        return sa.Table(
            "person",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("born", sa.Date),
            info={"audit.options": {"enabled": True, "append_only": True, "redact": redact}},
        )

    plain = model({})
    plain.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            plain.insert(), [{"id": 1, "born": "1990-01-01"}, {"id": 2, "born": "1980-01-01"}]
        )
        connection.execute(plain.update().where(plain.c.id == 1).values(born="1991-01-01"))
    masked = model({"born": "mask"})
    with pytest.raises(AuditError, match="column 'id' is not redacted"):
        audit.redact_history(engine, masked, "id", reason="x")
    done = audit.redact_history(engine, masked, "born", reason="born was masked")
    assert (done.rows, done.columns) == (3, ("born",))
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT audit_operation, born FROM person_audit ORDER BY audit_id")
        ).all()
    assert [tuple(r) for r in rows] == [("I", None), ("I", None), ("U", None), ("E", None)]


def test_baseline_records_as_the_trigger_does_and_restore_leaves_redacted_columns(
    engine: sa.Engine,
) -> None:
    table = person()
    table.metadata.create_all(engine)
    rotate_redaction_key(engine, table, KEY)
    with engine.begin() as connection:  # a row written while auditing was off
        connection.execute(sa.text("ALTER TABLE person DISABLE TRIGGER USER"))
        connection.execute(
            sa.text("INSERT INTO person VALUES (1, 'a', 'a@x.org', '1990-01-01', 'n')")
        )
        connection.execute(sa.text("ALTER TABLE person ENABLE TRIGGER USER"))
    with engine.begin() as connection:
        assert audit.record_baseline(connection, table) == 1
        assert audit.record_baseline(connection, table) == 0
        (baseline,) = read_audit(connection, table)
    assert (baseline.audit_operation, baseline.name, baseline.born) == ("B", "a", None)
    assert bytes(baseline.email) == digest("a@x.org")
    with engine.begin() as connection:
        connection.execute(table.update().values(name="b", email="b@x.org", born="1991-01-01"))
        restored = audit.restore(connection, table, 1, version=baseline.audit_id)
        row = connection.execute(sa.select(table)).one()
    assert restored == "updated"
    # The name comes back; the redacted values stay as they are: the trail does not hold them.
    assert (row.name, row.email, str(row.born), row.note) == ("a", "b@x.org", "1991-01-01", "n")


MODELS = """
import sqlalchemy as sa

metadata = sa.MetaData()
sa.Table(
    "person",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String),
    sa.Column("email", sa.String),
    sa.Column("born", sa.Date),
    sa.Column("note", sa.Text),
    info={"audit.options": {"enabled": True, "redact": {"email": "hash", "born": "mask", "note": "omit"}}},
)
"""


def test_check_finds_no_drift_in_a_redacted_table(
    engine: sa.Engine, database_url: sa.URL, tmp_path: Path
) -> None:
    """An omitted column is neither mirrored nor excluded, and still no drift."""
    person().metadata.create_all(engine)
    (tmp_path / "redacted_models.py").write_text(MODELS)
    result = run(
        "check", "redacted_models:metadata", "--url", url_text(database_url), path=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_migration_baseline_records_redacted_columns_as_the_trigger_does(
    engine: sa.Engine,
) -> None:
    table = person()
    table.metadata.create_all(engine)
    rotate_redaction_key(engine, table, KEY)
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE person DISABLE TRIGGER USER"))
        connection.execute(
            sa.text("INSERT INTO person VALUES (1, 'a', 'a@x.org', '1990-01-01', 'n')")
        )
        connection.execute(sa.text("ALTER TABLE person ENABLE TRIGGER USER"))
        for statement in render_baseline(table.info[SPEC_KEY]):
            connection.execute(sa.text(statement))
        (row,) = read_audit(connection, table)
    assert (row.audit_operation, row.name, row.born) == ("B", "a", None)
    assert bytes(row.email) == digest("a@x.org")


def test_a_guess_written_into_one_hashed_column_tests_nothing_in_another(
    engine: sa.Engine,
) -> None:
    """A writer who can read the trail writes a guess into a hashed column it may write and
    reads its digest: that digest must not match the same value in another column or table."""
    metadata = sa.MetaData()
    tables = [
        sa.Table(
            name,
            metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("email", sa.String),
            sa.Column("alias", sa.String),
            info={"audit.options": {"enabled": True, "redact": {"email": "hash", "alias": "hash"}}},
        )
        for name in ("person", "guess")
    ]
    metadata.create_all(engine)
    rotate_redaction_key(engine, metadata, KEY)
    with engine.begin() as connection:
        for table in tables:
            connection.execute(table.insert().values(id=1, email="a@x.org", alias="a@x.org"))
        recorded = {
            (table.name, column): bytes(row._mapping[column])
            for table in tables
            for row in read_audit(connection, table)
            for column in ("email", "alias")
        }
    assert len(set(recorded.values())) == 4
    assert recorded["person", "email"] == digest("a@x.org", 2)
    with engine.connect() as connection:
        # a digest made before the message held the names is still checked
        legacy = bytes([2]) + hmac.new(KEY, b"a@x.org", hashlib.sha256).digest()
        assert matches_hash(connection, tables[0], "email", "a@x.org", legacy)
        assert not matches_hash(
            connection, tables[0], "email", "a@x.org", recorded["guess", "email"]
        )
        assert not matches_hash(
            connection, tables[0], "email", "a@x.org", recorded["person", "alias"]
        )


def test_check_reports_recorded_values_that_are_not_digests_of_a_known_key(
    engine: sa.Engine, database_url: sa.URL, tmp_path: Path
) -> None:
    """A value kept by ``USING email::bytea`` reads back as a digest of key version 97 (the
    byte 'a'): ``check`` counts it, by its length and by its key version."""
    table = person()
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, email="a@x.org"))  # a real digest
    (tmp_path / "redacted_models.py").write_text(MODELS)
    url = url_text(database_url)
    assert run("check", "redacted_models:metadata", "--url", url, path=tmp_path).returncode == 0
    plain_33_bytes = "a" * 33  # as long as a digest, its first byte names key version 97
    with engine.begin() as connection:
        for kept in ("a@x.org", plain_33_bytes):
            connection.execute(
                sa.text(
                    "INSERT INTO person_audit "
                    "(audit_operation, audit_operation_timestamp, id, email) "
                    "VALUES ('I', now(), 2, convert_to(:kept, 'UTF8'))"
                ),
                {"kept": kept},
            )
    result = run("check", "redacted_models:metadata", "--url", url, path=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 values of email are not 33-byte digests" in result.stdout
    assert "1 digests of email name a key version not in audit_redaction_key" in result.stdout
