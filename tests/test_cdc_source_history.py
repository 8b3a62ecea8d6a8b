"""Reading history on design 1's source: install made the audit table there and recorded a
baseline, and nothing writes it since (the trail is on the target).  ``history``, ``as-of``
and ``activity`` show what it holds and say that it stopped where CDC began, whatever it holds;
on the target, and on a database whose decoder writes its trail (design 2), they say nothing
more than before.  One server (the target another database of it) and two."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

import cdc_models
from cdc_decoder_setup import drop_slot
from cli_run import run, url_text
from sqlalchemy_postgresql_audit import AuditError, history, record_baseline, restore
from sqlalchemy_postgresql_audit.cdc import Consumer

MODELS = "cdc_models:metadata"
STALE = "no consumer writes its trail in this database"
CDC = "captured by CDC"


@pytest.fixture(autouse=True)
def _slot_dropped(source: sa.Engine) -> Iterator[None]:
    yield
    drop_slot(source, cdc_models.metadata)


@contextlib.contextmanager
def _database_beside(server: URL) -> Iterator[sa.Engine]:
    """Another database of ``server``: design 1's target on the source's own server."""
    name = f"audit_target_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = sa.create_engine(server.set(database=name))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _ledger_with_a_row_then_cdc(source: sa.Engine) -> None:
    """The table held a row before it was audited: install records its baseline here."""
    with source.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE ledger (id integer PRIMARY KEY, amount integer)")
        connection.exec_driver_sql("INSERT INTO ledger VALUES (1, 1)")
    cdc_models.metadata.create_all(source)


def _update(source: sa.Engine) -> None:
    with source.begin() as connection:
        connection.execute(
            cdc_models.ledger.update().where(cdc_models.ledger.c.id == 1).values(amount=5)
        )


def _history(engine: sa.Engine, *extra: str) -> tuple[str, str]:
    done = run("history", MODELS, "ledger", "1", "--url", url_text(engine.url), *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


def _says_stale_here_and_nothing_on_the_target(source: sa.Engine, target: sa.Engine) -> None:
    out, err = _history(source)
    assert "public.ledger id=1: 1 version" in out  # the baseline, amount 1: stale
    assert f"public.ledger is {CDC} and {STALE}" in err
    assert "its trail is on the consumer's target (see cdc status)" in err
    note = json.loads(_history(source, "--json")[0])
    assert [v["values"]["amount"] for v in note["versions"]] == [1]
    assert STALE in note["note"]
    as_of = run("as-of", MODELS, "ledger", "2100-01-01T00:00:00Z", "--url", url_text(source.url))
    assert as_of.returncode == 0, as_of.stderr
    assert STALE in as_of.stderr
    activity = run("activity", MODELS, "--url", url_text(source.url))
    assert activity.returncode == 0, activity.stderr
    assert STALE in activity.stdout + activity.stderr

    out, err = _history(target)
    assert "public.ledger id=1: 2 versions" in out
    assert CDC not in out + err
    activity = run("activity", MODELS, "--url", url_text(target.url), "--json")
    assert "notes" not in json.loads(activity.stdout)


def test_history_on_design_1s_source_says_its_baseline_stopped_where_cdc_began(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    _ledger_with_a_row_then_cdc(source)
    consumer = Consumer(source, target, metadata=cdc_models.metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    _update(source)
    assert consumer.run_once() == 1
    _says_stale_here_and_nothing_on_the_target(source, target)


def test_history_on_design_1s_source_says_so_with_the_target_on_the_same_server(
    source: sa.Engine, server_url: URL
) -> None:
    _ledger_with_a_row_then_cdc(source)
    with _database_beside(server_url) as target:
        consumer = Consumer(source, target, metadata=cdc_models.metadata, timeout=120)
        try:
            consumer.run_once()
            _update(source)
            assert consumer.run_once() == 1
            _says_stale_here_and_nothing_on_the_target(source, target)
        finally:
            consumer.drop()


def test_history_where_the_decoder_writes_the_trail_says_nothing_more(
    source: sa.Engine,
) -> None:
    """Design 2: the trail is this database's own; before the decoder's first run it is not
    written yet, and history says so."""
    _ledger_with_a_row_then_cdc(source)
    assert STALE in _history(source)[1]
    consumer = Consumer(source, metadata=cdc_models.metadata, timeout=120)
    consumer.run_once()
    _update(source)
    assert consumer.run_once() == 1
    out, err = _history(source)
    assert "public.ledger id=1: 2 versions" in out
    assert CDC not in out + err


def test_a_role_that_may_not_read_the_progress_table_is_told_it_cannot_know(
    source: sa.Engine, make_role: Callable[[str], str]
) -> None:
    _ledger_with_a_row_then_cdc(source)
    consumer = Consumer(source, metadata=cdc_models.metadata, timeout=120)
    consumer.run_once()
    reader = make_role("reader")
    with source.begin() as connection:
        connection.exec_driver_sql(f"GRANT SELECT ON ledger, ledger_audit TO {reader}")
    done = run(
        "history",
        MODELS,
        "ledger",
        "1",
        "--url",
        url_text(source.url.set(username=reader)),
    )
    assert done.returncode == 0, done.stderr
    assert "1 version" in done.stdout
    assert "this role may not read the consumer's progress table" in done.stderr


def _restore_first_version(engine: sa.Engine) -> object:
    """``restore`` of ledger row 1 to the first version its trail here holds."""
    with engine.begin() as connection:
        first = connection.execute(history(cdc_models.ledger, 1)).first()
        assert first is not None
        return restore(connection, cdc_models.ledger, 1, version=first.audit_id)


def _amount(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(cdc_models.ledger.c.amount)).scalar_one())


def test_restore_is_refused_on_both_sides_of_design_1(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """On the source the trail stopped at the baseline (restoring from it would write that old
    value back without a word); on the target the table is the subscription's replica."""
    _ledger_with_a_row_then_cdc(source)
    consumer = Consumer(source, target, metadata=cdc_models.metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    _update(source)
    assert consumer.run_once() == 1
    with pytest.raises(AuditError, match="no consumer writes its trail in this database"):
        _restore_first_version(source)
    with pytest.raises(AuditError, match="this database is the target of its subscription"):
        _restore_first_version(target)
    assert (_amount(source), _amount(target)) == (5, 5)


def test_record_baseline_is_refused_on_design_1s_source_and_recorded_on_its_target(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """On the source the versions would go into an audit table nothing reads, the count
    telling of versions the trail never gets; on the target, where the trail is, it runs."""
    _ledger_with_a_row_then_cdc(source)
    consumer = Consumer(source, target, metadata=cdc_models.metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    _update(source)
    consumer.run_once()
    audit = "SELECT audit_operation, amount FROM ledger_audit ORDER BY audit_id"
    with source.connect() as connection:
        before = [tuple(r) for r in connection.exec_driver_sql(audit)]
    with source.begin() as connection, pytest.raises(AuditError) as refused:
        record_baseline(connection, cdc_models.ledger)
    message = str(refused.value)
    slot = cdc_models.metadata.naming_convention["audit.slot"]
    assert message.startswith(
        """record_baseline of CDC table '"ledger"': no consumer writes its trail in this """
        f"database: its slot {slot!r} is read from elsewhere"
    )
    assert "Record it on the consumer's target" in message
    with source.connect() as connection:
        assert [tuple(r) for r in connection.exec_driver_sql(audit)] == before == [("B", 1)]
    with target.begin() as connection:  # the trail explains every row: nothing to record
        assert record_baseline(connection, cdc_models.ledger) == 0


def test_restore_where_the_decoder_writes_the_trail_writes_the_row(source: sa.Engine) -> None:
    _ledger_with_a_row_then_cdc(source)
    consumer = Consumer(source, metadata=cdc_models.metadata, timeout=120)
    with pytest.raises(AuditError, match="no consumer writes its trail in this database"):
        _restore_first_version(source)  # before the decoder's first run: not written yet
    consumer.run_once()
    _update(source)
    assert consumer.run_once() == 1
    assert _restore_first_version(source) == "updated"
    assert _amount(source) == 1


def test_activity_on_design_1s_target_skips_the_trigger_mode_tables_saying_where_they_are(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """The target holds the CDC tables' trails only: a trigger-mode table of the same models
    has no audit table there, and is named with where its trail is, not a crash."""
    import cdc_mixed_models

    mixed = "cdc_mixed_models:metadata"
    cdc_mixed_models.metadata.create_all(source)
    consumer = Consumer(source, target, metadata=cdc_mixed_models.metadata, timeout=120)
    consumers.append(consumer)
    consumer.run_once()
    with source.begin() as connection:
        connection.execute(cdc_mixed_models.ledger.insert().values(id=1, amount=2))
        connection.execute(cdc_mixed_models.items.insert().values(id=1))
    assert consumer.run_once() == 1
    done = run("activity", mixed, "--url", url_text(target.url), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [c["table"] for c in report["changes"]] == ["public.ledger"]
    assert report["notes"] == [
        "public.items is captured by triggers: its trail is in the source database, not on "
        "this CDC target; read it there with --url SOURCE"
    ]
    only = run("activity", mixed, "--table", "items", "--url", url_text(target.url))
    assert only.returncode != 0
    assert "public.items is captured by triggers" in only.stderr
    here = run("activity", mixed, "--url", url_text(source.url), "--json")
    assert here.returncode == 0, here.stderr
    assert "public.items" in [c["table"] for c in json.loads(here.stdout)["changes"]]
