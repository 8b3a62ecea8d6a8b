"""Erasure: ``erase`` and ``erase_setting`` remove values from every recorded version (every
partition, kept detached partitions), under ``append_only``, leave an ``E`` marker, and keep
the seals verifiable without leaving anything that tests a guess of an erased value."""

from __future__ import annotations

import datetime
import json
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from cli_run import run, url_text
from sqlalchemy_postgresql_audit import (
    AuditError,
    erase,
    erase_setting,
    history,
    maintain,
    seal,
    set_session_vars,
    verify,
)
from sqlalchemy_postgresql_audit.lifecycle._digest import column_key, commitment
from sqlalchemy_postgresql_audit.lifecycle.seals import record_removed_partition

UTC = datetime.timezone.utc
SETTINGS = [sa.Column("username", sa.String)]


def people(metadata: sa.MetaData | None = None, name: str = "people", **options: Any) -> sa.Table:
    return sa.Table(
        name,
        metadata or sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String),
        sa.Column("city", sa.String),
        info={
            "audit.options": {
                "enabled": True,
                "append_only": True,
                "session_settings": SETTINGS,
                **options,
            }
        },
    )


def versions(engine: sa.Engine, table: sa.Table, key: int, *, user: str = "clerk") -> None:
    """Three versions of row ``key``: inserted, updated, updated."""
    with engine.begin() as connection:
        set_session_vars(connection, username=user)
        connection.execute(table.insert().values(id=key, email=f"p{key}@example.com", city="Oslo"))
        connection.execute(table.update().where(table.c.id == key).values(city="Bergen"))
        connection.execute(
            table.update().where(table.c.id == key).values(email=f"new{key}@example.com")
        )


def recorded(engine: sa.Engine, table: sa.Table, key: int) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [
            (v.audit_operation, v.email, v.city) for v in connection.execute(history(table, key))
        ]


def test_erase_under_append_only_keeps_the_seal_verifiable(engine: sa.Engine) -> None:
    table = people()
    table.metadata.create_all(engine)
    versions(engine, table, 1)
    versions(engine, table, 2)
    seal(engine, table)
    done = erase(engine, table, 1, columns=["email"], reason="GDPR art. 17 request #12")
    assert done.rows == 3 and done.sealed_rows == 3 and done.columns == ("email",)
    assert recorded(engine, table, 1) == [
        ("I", None, "Oslo"),
        ("U", None, "Bergen"),
        ("U", None, "Bergen"),
    ]
    assert recorded(engine, table, 2)[0] == ("I", "p2@example.com", "Oslo")
    with engine.connect() as connection:
        marker = connection.execute(
            sa.text(
                "SELECT audit_operation, audit_current_user, id, email, city, audit_username "
                "FROM people_audit WHERE audit_id = :m"
            ),
            {"m": done.marker_id},
        ).one()
    assert marker.audit_operation == "E" and marker.audit_current_user
    assert (marker.id, marker.email, marker.city, marker.audit_username) == (None,) * 4
    seal(engine, table)  # the marker row is sealed like any other
    report = verify(engine, table)
    assert report.ok, report.problem
    (erasure,) = report.erasures
    assert erasure.reason == "GDPR art. 17 request #12"
    assert (erasure.columns, erasure.rows, erasure.marker_id) == (("email",), 3, done.marker_id)


def test_nothing_left_tests_a_guess_of_an_erased_value(engine: sa.Engine) -> None:
    table = people()
    table.metadata.create_all(engine)
    versions(engine, table, 1)
    seal(engine, table)
    erase(engine, table, 1, reason="request")
    with engine.connect() as connection:
        everything = " ".join(
            str(value)
            for name in (
                "sqlalchemy_postgresql_audit_seals",
                "sqlalchemy_postgresql_audit_seal_keys",
                "sqlalchemy_postgresql_audit_seal_erased",
                "people_audit",
            )
            for row in connection.execute(sa.text(f"SELECT * FROM {name}"))
            for value in row
        )
        erased = connection.execute(
            sa.text("SELECT kept_keys, commitments FROM sqlalchemy_postgresql_audit_seal_erased")
        ).all()
        keys = [
            bytes(k)
            for k in connection.execute(
                sa.text("SELECT key FROM sqlalchemy_postgresql_audit_seal_keys")
            ).scalars()
        ]
    assert "p1@example.com" not in everything and "Oslo" not in everything
    assert [sorted(kept) for kept, _ in erased] == [
        ["audit_current_user", "audit_username", "id"]
    ] * 3
    # A guess of the true value, committed under any key still stored, matches no commitment.
    commitments = {
        bytes.fromhex(c) for _, erased_columns in erased for c in erased_columns.values()
    }
    stored = keys + [bytes.fromhex(k) for kept, _ in erased for k in kept.values()]
    guesses = {commitment(column_key(key, "email"), "p1@example.com") for key in stored} | {
        commitment(key, "p1@example.com") for key in stored
    }
    assert commitments and not guesses & commitments


def test_erase_reaches_every_partition_and_kept_detached_partitions(engine: sa.Engine) -> None:
    now = datetime.datetime(2026, 3, 4, 12, tzinfo=UTC)
    table = people(partition="week")
    table.metadata.create_all(engine)
    maintain(engine, table, at=now - datetime.timedelta(weeks=2))
    for weeks in (2, 1, 0):
        versions(engine, table, 10 - weeks)
        with engine.begin() as connection:
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
            connection.execute(
                sa.text(
                    "UPDATE people_audit SET audit_operation_timestamp = :t, id = 1 WHERE id = :k"
                ),
                {"t": now - datetime.timedelta(weeks=weeks), "k": 10 - weeks},
            )
    seal(engine, table)
    oldest = "people_audit_p20260216"
    with engine.begin() as connection:  # retention that keeps the partition, for archiving
        connection.execute(sa.text(f"ALTER TABLE people_audit DETACH PARTITION {oldest}"))
        record_removed_partition(connection, table.info["audit.table"], oldest)
    done = erase(engine, table, 1, reason="request")
    assert done.rows == 9 and done.kept_partitions == (oldest,) and done.sealed_rows == 6
    with engine.connect() as connection:
        left = connection.execute(
            sa.text(
                f"SELECT count(*) FROM (SELECT email FROM people_audit UNION ALL "
                f"SELECT email FROM {oldest}) AS t WHERE email IS NOT NULL"
            )
        ).scalar_one()
    assert left == 0
    report = verify(engine, table)
    assert report.ok, report.problem


def test_erase_setting_reaches_every_table_recording_the_setting(engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    first, second = people(metadata), people(metadata, "places")
    metadata.create_all(engine)
    versions(engine, first, 1, user="alice")
    versions(engine, second, 1, user="alice")
    versions(engine, second, 2, user="bob")
    seal(engine, metadata)
    done = erase_setting(engine, metadata, "username", "alice", reason="former employee")
    assert [(d.audit_table, d.rows, d.columns) for d in done] == [
        ("people_audit", 3, ("audit_username",)),
        ("places_audit", 3, ("audit_username",)),
    ]
    with engine.connect() as connection:
        users = connection.execute(
            sa.text(
                "SELECT audit_username FROM people_audit UNION ALL "
                "SELECT audit_username FROM places_audit"
            )
        ).scalars()
        assert sorted(u for u in users if u) == ["bob"] * 3
    report = verify(engine, metadata)
    assert report.ok and len(report.erasures) == 2
    with pytest.raises(AuditError, match="records session setting 'nobody'"):
        erase_setting(engine, metadata, "nobody", "x", reason="r")


def test_bad_erasures_are_refused_with_the_table_and_column(engine: sa.Engine) -> None:
    table = people(exclude_columns=["city"])
    table.metadata.create_all(engine)
    with pytest.raises(AuditError, match="'id' is a primary key column"):
        erase(engine, table, 1, columns=["id"], reason="r")
    with pytest.raises(AuditError, match="'people' has no recorded column 'phone'"):
        erase(engine, table, 1, columns=["phone"], reason="r")
    with pytest.raises(AuditError, match="'city' is not recorded"):
        erase(engine, table, 1, columns=["city"], reason="r")
    with pytest.raises(ValueError, match="reason must say why"):
        erase(engine, table, 1, reason=" ")
    with pytest.raises(AuditError, match="columns must be a non-empty list"):
        erase(engine, table, 1, columns=[], reason="r")


def test_the_guard_still_refuses_anything_but_setting_values_to_null(engine: sa.Engine) -> None:
    table = people()
    table.metadata.create_all(engine)
    versions(engine, table, 1)
    with engine.begin() as connection:
        connection.execute(
            sa.text("SELECT set_config('sqlalchemy_postgresql_audit.erasing', '1', true)")
        )
        for change in ("email = 'forged'", "email = NULL, id = NULL"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), connection.begin_nested():
                connection.execute(sa.text(f"UPDATE people_audit SET {change}"))


def test_values_written_back_or_erased_behind_erase_s_back_break_the_seal(
    engine: sa.Engine,
) -> None:
    table = people()
    table.metadata.create_all(engine)
    versions(engine, table, 1)
    versions(engine, table, 2)
    seal(engine, table)
    erase(engine, table, 1, columns=["email"], reason="request")
    assert verify(engine, table).ok
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(sa.text("UPDATE people_audit SET email = 'back' WHERE audit_id = 2"))
    report = verify(engine, table)
    assert not report.ok and report.first_broken == ("people_audit", 2)
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(sa.text("UPDATE people_audit SET email = NULL WHERE audit_id = 2"))
        connection.execute(sa.text("UPDATE people_audit SET city = NULL WHERE id = 2"))
    report = verify(engine, table)
    assert not report.ok and report.first_broken == ("people_audit", 4)


def test_erase_without_seals_still_records_the_erasure(engine: sa.Engine) -> None:
    table = people()
    table.metadata.create_all(engine)
    versions(engine, table, 1)
    done = erase(engine, table, 1, reason="request")
    assert done.rows == 3 and done.sealed_rows == 0
    seal(engine, table)
    report = verify(engine, table)
    assert report.ok and [e.marker_id for e in report.erasures] == [done.marker_id]


CLI_MODELS = """
import sqlalchemy as sa

metadata = sa.MetaData()
for name in ("people", "places"):
    sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("email", sa.String),
        sa.Column("city", sa.String),
        info={"audit.options": {
            "enabled": True,
            "append_only": True,
            "session_settings": [sa.Column("username", sa.String)],
        }},
    )
"""


def test_cli_seal_verify_and_erase(engine: sa.Engine, database_url: Any, tmp_path: Any) -> None:
    (tmp_path / "erasemodels.py").write_text(CLI_MODELS)
    target, url = "erasemodels:metadata", ["--url", url_text(database_url)]
    metadata = sa.MetaData()
    first, second = people(metadata), people(metadata, "places")
    metadata.create_all(engine)
    versions(engine, first, 1, user="alice")
    versions(engine, second, 2, user="alice")
    sealed = run("seal", target, *url, path=tmp_path)
    assert sealed.returncode == 0, sealed.stderr
    head = json.loads(run("--json", "verify", target, *url, path=tmp_path).stdout)["head"]
    assert head and f"head {head}" in sealed.stdout
    erased = run(
        "erase",
        target,
        "people",
        "1",
        "--column",
        "email",
        "--reason",
        "art. 17",
        *url,
        path=tmp_path,
    )
    assert erased.returncode == 0, erased.stderr
    assert "erased values from 3 audit rows" in erased.stdout
    by_setting = run(
        "--json",
        "erase",
        target,
        "--setting",
        "username=alice",
        "--reason",
        "left",
        *url,
        path=tmp_path,
    )
    assert by_setting.returncode == 0, by_setting.stderr
    assert [d["rows"] for d in json.loads(by_setting.stdout)["erased"]] == [3, 3]
    verified = run("verify", target, "--anchor", head, *url, path=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "art. 17" in verified.stdout and "verified 6 sealed rows" in verified.stdout
    assert f"head {head}" not in verified.stdout  # the erasures' records are the new head
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(sa.text("DELETE FROM places_audit WHERE audit_id = 2"))
    broken = run("verify", target, *url, path=tmp_path)
    assert broken.returncode == 1 and "BROKEN in places_audit at audit_id 2" in broken.stdout
    refused = run(
        "erase", target, "people", "1", "--column", "id", "--reason", "r", *url, path=tmp_path
    )
    assert refused.returncode == 2 and "'id' is a primary key column" in refused.stderr


def test_the_chain_is_the_owner_s_alone_and_only_the_owner_erases(
    engine: sa.Engine, make_role: Any, database_url: Any
) -> None:
    reader = make_role("reader")
    table = people()
    table.metadata.create_all(engine)
    with engine.begin() as connection:  # default privileges would hand new tables to a reader
        connection.execute(
            sa.text(f'ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO "{reader}"')
        )
        connection.execute(sa.text(f'GRANT SELECT ON people_audit TO "{reader}"'))
    versions(engine, table, 1)
    seal(engine, table)
    with engine.connect() as connection:
        readable = connection.execute(
            sa.text(
                "SELECT c.relname FROM pg_class c WHERE c.relname LIKE 'sqlalchemy_postgresql%' "
                "AND has_table_privilege(:r, c.oid, 'SELECT') ORDER BY 1"
            ),
            {"r": reader},
        ).scalars()
        assert list(readable) == []
    as_reader = sa.create_engine(database_url.set(username=reader))
    try:
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            erase(as_reader, table, 1, reason="not mine to erase")
    finally:
        as_reader.dispose()
    assert recorded(engine, table, 1)[0][1] == "p1@example.com"


def test_erase_waits_for_a_writer_in_flight_so_its_version_is_erased_too(
    engine: sa.Engine,
) -> None:
    table = people()
    table.metadata.create_all(engine)
    versions(engine, table, 1)
    outcome: dict[str, Any] = {}
    with engine.connect() as writer:
        writer.begin()
        set_session_vars(writer, username="clerk")
        writer.execute(table.update().where(table.c.id == 1).values(city="Tromsø"))

        def run_erase() -> None:
            outcome["done"] = erase(engine, table, 1, columns=["email"], reason="request")

        eraser = threading.Thread(target=run_erase)
        eraser.start()
        with engine.connect() as watcher:
            waiting = sa.text(
                "SELECT EXISTS (SELECT FROM pg_locks WHERE NOT granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()))"
            )
            while eraser.is_alive() and not watcher.execute(waiting).scalar_one():
                eraser.join(0.05)
        writer.commit()
    eraser.join()
    assert outcome["done"].rows == 4
    assert [email for _, email, _ in recorded(engine, table, 1)] == [None] * 4


def test_erase_sets_json_columns_to_sql_null_not_json_null(engine: sa.Engine) -> None:
    table = sa.Table(
        "profiles",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("doc", sa.JSON),
        sa.Column("docb", postgresql.JSONB),
        info={"audit.options": {"enabled": True, "append_only": True}},
    )
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, doc={"email": "a@x"}, docb={"e": "a@x"}))
    seal(engine, table)
    assert erase(engine, table, 1, reason="request").rows == 1
    with engine.connect() as connection:
        nulls = connection.execute(
            sa.text("SELECT doc IS NULL AND docb IS NULL FROM profiles_audit WHERE id = 1")
        ).scalar_one()
    assert nulls
    assert verify(engine, table).ok
    again = erase(engine, table, 1, reason="request")
    assert again.rows == 0 and again.marker_id is None


def test_an_erasure_that_matches_nothing_writes_no_marker(
    engine: sa.Engine, database_url: Any, tmp_path: Any
) -> None:
    table = people()
    table.metadata.create_all(engine)
    versions(engine, table, 1)
    nothing = erase(engine, table, 99, reason="request")
    assert (nothing.rows, nothing.marker_id) == (0, None)
    assert erase(engine, table, 1, columns=["email"], reason="request").rows == 3
    assert erase(engine, table, 1, columns=["email"], reason="request").marker_id is None
    assert [d.marker_id for d in erase_setting(engine, table, "username", "x", reason="r")] == [
        None
    ]
    with engine.connect() as connection:
        markers = connection.execute(
            sa.text("SELECT count(*) FROM people_audit WHERE audit_operation = 'E'")
        ).scalar_one()
    assert markers == 1
    (tmp_path / "cli_erase_models.py").write_text(CLI_MODELS)
    result = run(
        "erase",
        "cli_erase_models:metadata",
        "people",
        "99",
        "--reason",
        "r",
        "--url",
        url_text(database_url),
        path=tmp_path,
    )
    assert result.returncode == 1 and "nothing to erase" in result.stdout + result.stderr


def test_erase_setting_refuses_a_value_of_the_wrong_type_naming_the_setting(
    engine: sa.Engine,
) -> None:
    table = people()
    table.metadata.create_all(engine)
    with pytest.raises(AuditError, match=r"setting 'username' is recorded as str.*got int 5"):
        erase_setting(engine, table.metadata, "username", 5, reason="r")


def test_statistics_forget_an_erased_value(engine: sa.Engine) -> None:
    table = people()
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        set_session_vars(connection, username="clerk")
        connection.execute(table.insert().values(id=1, email="ada@example.com", city="Oslo"))
        for city in ("Bergen", "Oslo") * 20:
            connection.execute(table.update().where(table.c.id == 1).values(city=city))
        connection.execute(table.insert().values(id=2, email="bob@example.com", city="Oslo"))
    stats = sa.text(
        "SELECT coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, '') "
        "FROM pg_stats WHERE tablename = 'people_audit' AND attname = 'email'"
    )
    with engine.begin() as connection:
        connection.execute(sa.text("ANALYZE people_audit"))
        assert "ada@example.com" in connection.execute(stats).scalar_one()
    erase(engine, table, 1, columns=["email"], reason="request")
    with engine.connect() as connection:
        assert "ada@example.com" not in (connection.execute(stats).scalar_one_or_none() or "")


def test_cli_erase_says_what_is_wrong_with_its_arguments(
    engine: sa.Engine, database_url: Any, tmp_path: Any
) -> None:
    (tmp_path / "erase_args_models.py").write_text(CLI_MODELS)
    url = ["--url", url_text(database_url), "--reason", "r"]
    target = "erase_args_models:metadata"
    cases = {
        (): "erase takes [MODULE:METADATA] TABLE PK",
        (target, "--setting", "username"): "--setting takes NAME=VALUE, got 'username'",
        (target, "--setting", "username=x", "--column", "email"): "--column cannot be used",
    }
    for arguments, message in cases.items():
        result = run("erase", *arguments, *url, path=tmp_path)
        assert result.returncode == 2 and message in result.stderr, (arguments, result.stderr)
    helped = run("erase", "--help", path=tmp_path)
    assert "``" not in helped.stdout and "[--column NAME]" in helped.stdout
    assert "[--url URL]" in helped.stdout
