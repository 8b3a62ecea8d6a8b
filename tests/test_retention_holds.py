"""Retention holds against a hostile writer and a racing ``maintain``: a holds table someone else
made (or may change) is refused by name, never used, and a hold placed while retention is in
flight returns only once nothing it covers can still be dropped."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import (
    AuditError,
    MaintenanceError,
    hold,
    holds_of,
    maintain,
    release,
)
from sqlalchemy_postgresql_audit.lifecycle.holds import holds_watched
from sqlalchemy_postgresql_audit.render import quote
from sqlalchemy_postgresql_audit.render.partitioning import HOLDS_TABLE
from sqlalchemy_postgresql_audit.retention import purge_audit_history

UTC = datetime.timezone.utc
#: A Wednesday; its ISO week starts on Monday 2026-03-02.
NOW = datetime.datetime(2026, 3, 4, 12, tzinfo=UTC)
REFUSED = f"{HOLDS_TABLE} was not created by sqlalchemy-postgresql-audit, so it is not adopted"


def accounts(metadata: sa.MetaData | None = None, name: str = "accounts") -> sa.Table:
    return sa.Table(
        name,
        metadata or sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.Integer),
        info={
            "audit.options": {
                "enabled": True,
                "partition": "week",
                "retention": datetime.timedelta(weeks=1),
            }
        },
    )


def as_role(database_url: sa.URL, role: str, *statements: str) -> None:
    engine = sa.create_engine(database_url.set(username=role))
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(sa.text(statement))
    finally:
        engine.dispose()


def audit_triggers_enabled(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        states = connection.execute(
            sa.text(
                "SELECT tgenabled FROM pg_trigger "
                "WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal"
            )
        ).scalars()
        return all(state == "O" for state in states)


PLANTED = (
    f"CREATE TABLE public.{HOLDS_TABLE} (audit_table text PRIMARY KEY, reason text NOT NULL, "
    "held_by text NOT NULL DEFAULT current_user, held_at timestamptz NOT NULL DEFAULT now())",
    f"GRANT ALL ON public.{HOLDS_TABLE} TO PUBLIC",
    # Runs as whoever places a hold: switches the auditing of the table off.
    "CREATE FUNCTION public.planted() RETURNS trigger LANGUAGE plpgsql AS "
    "$$BEGIN EXECUTE 'ALTER TABLE public.accounts DISABLE TRIGGER USER'; RETURN NEW; END$$",
    f"CREATE TRIGGER planted AFTER INSERT OR DELETE ON public.{HOLDS_TABLE} "
    "FOR EACH ROW EXECUTE FUNCTION public.planted()",
)


def test_a_holds_table_a_writer_planted_is_refused_by_every_call(
    engine: sa.Engine, database_url: sa.URL, make_role: Callable[[str], str]
) -> None:
    writer = make_role("writer")
    metadata = sa.MetaData()
    table, other = accounts(metadata), accounts(metadata, "ledger")
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text(f"GRANT CREATE ON SCHEMA public TO {quote(writer)}"))
    as_role(database_url, writer, *PLANTED)
    owned = f"{REFUSED}.*owned by {writer}"
    with pytest.raises(sa.exc.DBAPIError, match=owned):
        hold(engine, table, "litigation 2026-17")
    with pytest.raises(sa.exc.DBAPIError, match=owned):
        release(engine, table, "litigation 2026-17")
    # Loudly, for each table: no table's retention goes on as if nothing were held.
    with pytest.raises(MaintenanceError, match=owned) as failed:
        maintain(engine, metadata, at=NOW)
    assert [table for table, _ in failed.value.failures] == ["accounts_audit", "ledger_audit"]
    with engine.begin() as connection:  # check says so, and reads no hold from it
        seen = holds_watched(connection, "public", "accounts_audit")
    assert seen.state == "outdated" and "owned by" in seen.reasons[0]
    assert audit_triggers_enabled(engine)  # the planted trigger never ran
    # Handed to the owner, what it was planted with still refuses it.
    with engine.begin() as connection:
        connection.execute(sa.text(f"ALTER TABLE {HOLDS_TABLE} OWNER TO CURRENT_USER"))
    with pytest.raises(sa.exc.DBAPIError, match=f"{REFUSED}: it has triggers planted"):
        hold(engine, other, "investigation")
    with pytest.raises(MaintenanceError, match=r"it has triggers planted.*PUBLIC"):
        maintain(engine, other, at=NOW)  # and any role may write it
    assert audit_triggers_enabled(engine)


def test_no_role_but_the_owner_may_change_the_holds_table(
    engine: sa.Engine, database_url: sa.URL, make_role: Callable[[str], str]
) -> None:
    writer = make_role("writer")
    table = accounts()
    table.metadata.create_all(engine)
    with engine.begin() as connection:  # default privileges hand new tables to the writer
        connection.execute(
            sa.text(f"ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO {quote(writer)}")
        )
    hold(engine, table, "litigation 2026-17")
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        as_role(database_url, writer, f"DELETE FROM {HOLDS_TABLE}")  # cannot lift the hold
    with engine.begin() as connection:
        connection.execute(sa.text(f"GRANT DELETE ON {HOLDS_TABLE} TO {quote(writer)}"))
    changeable = f"{REFUSED}: roles other than its owner may change it: {writer} \\(DELETE\\)"
    with pytest.raises(MaintenanceError, match=changeable):
        maintain(engine, table, at=NOW + datetime.timedelta(weeks=3))
    hold(engine, table, "investigation 3")  # the owner's next hold takes the right back
    (held,) = maintain(engine, table, at=NOW + datetime.timedelta(weeks=3))
    assert held.held == "litigation 2026-17; investigation 3" and held.dropped == ()


def waiting(engine: sa.Engine, event: str, done: Callable[[], bool]) -> None:
    """Return once another session of this database waits for a lock of kind ``event``
    (``relation``, ``advisory``), or ``done()``."""
    with engine.connect() as watcher:
        for _ in range(1200):
            if done():
                return
            found = watcher.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND wait_event = :event AND datname = current_database()"
                ),
                {"event": event},
            ).scalar_one()
            if found:
                return
            watcher.execute(sa.text("SELECT pg_sleep(0.05)"))
            watcher.rollback()  # pg_stat_activity is read once per transaction
    raise AssertionError(f"no session ever waited for a {event} lock")


def exists(engine: sa.Engine, relation: str) -> bool:
    """Read from the catalog, without a lock that would queue behind a pending DETACH."""
    with engine.connect() as connection:
        return (
            connection.execute(sa.text("SELECT to_regclass(:r)"), {"r": relation}).scalar()
            is not None
        )


def test_a_hold_placed_while_retention_waits_for_its_detach_stops_it_or_waits_for_it(
    engine: sa.Engine,
) -> None:
    table = accounts()
    table.metadata.create_all(engine)
    later = NOW + datetime.timedelta(weeks=3)
    maintain(engine, table, at=NOW)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=10))
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(
            sa.text("UPDATE accounts_audit SET audit_operation_timestamp = :t"), {"t": NOW}
        )
    hold(engine, table, "until the partitions ahead exist")
    maintain(engine, table, at=later)  # creates them; retention held
    release(engine, table, "until the partitions ahead exist")
    expired = "accounts_audit_p20260302"
    assert exists(engine, expired)
    errors: list[BaseException] = []
    results: dict[str, Any] = {}

    def run(key: str, call: Callable[[], Any]) -> None:
        try:
            results[key] = call()
        except BaseException as error:  # reported by the test thread
            errors.append(error)

    def place_hold() -> None:
        hold(engine, table, "litigation 2026-17")
        results["there when hold returned"] = exists(engine, expired)

    with engine.connect() as writer:
        writer.execute(table.insert().values(id=2, balance=5))  # in flight: holds its lock
        retention = threading.Thread(
            target=run, args=("maintain", lambda: maintain(engine, table, at=later))
        )
        retention.start()
        waiting(engine, "relation", lambda: bool(errors))  # the DETACH waits for the writer
        holder = threading.Thread(target=run, args=("hold", place_hold))
        holder.start()
        waiting(engine, "advisory", lambda: not holder.is_alive())
        writer.commit()
    retention.join()
    holder.join()
    if errors:
        raise errors[0]
    (done,) = results["maintain"]
    # Whatever hold() saw there when it returned is held: retention did not drop it after.
    if results["there when hold returned"]:
        assert exists(engine, expired) and done.dropped == ()
    assert expired in done.dropped or done.held == "litigation 2026-17"
    with engine.connect() as connection:
        reason = connection.execute(sa.text(f"SELECT reason FROM {HOLDS_TABLE}")).scalar_one()
    assert reason == "litigation 2026-17"


def test_a_hold_pauses_purge_audit_history_too(engine: sa.Engine) -> None:
    table = sa.Table(
        "accounts",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": True, "append_only": True}},
    )
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=10))
    hold(engine, table, "litigation 2026-17")
    hold(engine, table, "investigation 3")

    def purge() -> int:
        with engine.begin() as connection:
            bound = connection.execute(sa.select(sa.func.now())).scalar_one()
            return purge_audit_history(connection, table, before=bound)

    held = r"held \(litigation 2026-17; investigation 3\).*release"
    with pytest.raises(AuditError, match=held):
        purge()
    with engine.connect() as connection:
        ids = connection.execute(sa.text("SELECT id FROM accounts_audit")).scalars()
        assert list(ids) == [1]
    release(engine, table, "litigation 2026-17")
    release(engine, table, "investigation 3")
    assert purge() == 1


def test_purge_audit_history_refuses_a_connection_above_read_committed(
    engine: sa.Engine,
) -> None:
    table = accounts()
    table.metadata.create_all(engine)
    isolated = sa.create_engine(engine.url, isolation_level="REPEATABLE READ")
    try:
        with isolated.connect() as connection, pytest.raises(AuditError, match="REPEATABLE READ"):
            purge_audit_history(connection, table, before=NOW)
    finally:
        isolated.dispose()


def test_holds_as_a_role_without_rights_name_the_role_and_what_it_needs(
    engine: sa.Engine, database_url: sa.URL, make_role: Callable[[str], str]
) -> None:
    auditor = make_role("auditor")
    table = accounts()
    table.metadata.create_all(engine)
    hold(engine, table, "litigation 2026-17")
    owner = engine.url.username
    other = sa.create_engine(database_url.set(username=auditor))
    try:
        with pytest.raises(AuditError, match=rf"holds_of: role '{auditor}' .*SELECT.*'{owner}'"):
            holds_of(other, table)
        for call in (hold, release):
            with pytest.raises(AuditError, match=rf"role '{auditor}' .*run it as '{owner}'"):
                call(other, table, "litigation 2026-17")
    finally:
        other.dispose()
    assert [h.reason for h in holds_of(engine, table)] == ["litigation 2026-17"]


@pytest.mark.parametrize("at", [datetime.date(2026, 3, 4), "2026-03-04", NOW.replace(tzinfo=None)])
def test_maintain_refuses_an_at_without_a_moment_or_a_time_zone(
    engine: sa.Engine, at: object
) -> None:
    table = accounts()
    table.metadata.create_all(engine)
    with pytest.raises(AuditError, match=r"maintain: at.*(a datetime with a time zone|naive)"):
        maintain(engine, table, at=at)  # type: ignore[arg-type]
