"""``check`` against design 1's target: the replica's capture is what the consumer installs
there, so a healthy target is ``ok`` (and says it is a CDC target), not "missing" and "extra";
a capture trigger that no longer fires for the subscription's changes is drift."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

import cdc_mixed_models
import cdc_models
from cdc_decoder_setup import drop_slot
from cli_run import run, url_text
from sqlalchemy_postgresql_audit.cdc import Consumer

MODELS = "cdc_models:metadata"
MIXED = "cdc_mixed_models:metadata"


@pytest.fixture
def source(logical_database_url: URL) -> Iterator[sa.Engine]:
    engine = sa.create_engine(logical_database_url)
    yield engine
    drop_slot(engine, cdc_models.metadata)
    engine.dispose()


def _check(engine: sa.Engine) -> tuple[int, dict[str, object]]:
    done = run("check", MODELS, "--url", url_text(engine.url), "--json")
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_check_on_design_1s_target_reports_its_capture_and_says_it_is_a_target(
    source: sa.Engine, target: sa.Engine
) -> None:
    cdc_models.metadata.create_all(source)
    consumer = Consumer(source, target, metadata=cdc_models.metadata, timeout=120)
    try:
        with source.begin() as connection:
            connection.execute(cdc_models.ledger.insert().values(id=1, amount=5))
        assert consumer.run_once() == 1
        code, report = _check(target)
        assert code == 0, report
        [state] = report["tables"]  # type: ignore[misc]
        assert state["status"] == "ok"
        assert "CDC target: subscription 'cdc_cli_models'" in state["details"][0]
        assert _check(source)[0] == 0  # the source is checked as before

        with target.begin() as connection:
            connection.exec_driver_sql(
                "ALTER TABLE ledger ENABLE TRIGGER public_ledger_audit_update"
            )
        code, report = _check(target)
        [state] = report["tables"]  # type: ignore[misc]
        assert (code, state["status"]) == (1, "outdated")
        assert any(
            "trigger public_ledger_audit_update fires only for local writes, not ALWAYS" in d
            for d in state["details"]
        )
    finally:
        consumer.drop()


def test_history_on_the_source_of_design_1_says_where_the_trail_is(
    source: sa.Engine, target: sa.Engine
) -> None:
    cdc_models.metadata.create_all(source)
    consumer = Consumer(source, target, metadata=cdc_models.metadata, timeout=120)
    try:
        with source.begin() as connection:
            connection.execute(cdc_models.ledger.insert().values(id=1, amount=5))
        assert consumer.run_once() == 1
        here = run("history", MODELS, "ledger", "1", "--url", url_text(source.url))
        assert here.returncode == 0, here.stderr
        assert "no version of public.ledger id=1 is recorded" in here.stdout
        assert "public.ledger is captured by CDC" in here.stderr
        assert "its trail may be on the consumer's target (see cdc status)" in here.stderr
        as_json = run("history", MODELS, "ledger", "1", "--url", url_text(source.url), "--json")
        assert "captured by CDC" in json.loads(as_json.stdout)["note"]
        activity = run("activity", MODELS, "--url", url_text(source.url))
        assert activity.returncode == 0, activity.stderr
        assert "public.ledger is captured by CDC" in activity.stdout + activity.stderr

        there = run("history", MODELS, "ledger", "1", "--url", url_text(target.url))
        assert there.returncode == 0, there.stderr
        assert "1 version" in there.stdout
        assert "captured by CDC" not in there.stdout + there.stderr
    finally:
        consumer.drop()


def test_check_on_the_target_reports_a_table_the_subscription_does_not_apply(
    source: sa.Engine, target: sa.Engine
) -> None:
    """The replica is there and its triggers fire ALWAYS, but the subscription does not know
    the table (as for one that joined the publication after it): its changes are skipped."""
    cdc_models.metadata.create_all(source)
    consumer = Consumer(source, target, metadata=cdc_models.metadata, timeout=120)
    try:
        consumer.run_once()
        with source.begin() as connection:
            connection.exec_driver_sql("ALTER PUBLICATION audit_cdc DROP TABLE ledger")
        with target.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(
                "ALTER SUBSCRIPTION cdc_cli_models REFRESH PUBLICATION WITH (copy_data = false)"
            )
        code, report = _check(target)
        [state] = report["tables"]  # type: ignore[misc]
        assert (code, state["status"]) == (1, "outdated")
        assert not any("applies this table's changes" in d for d in state["details"])
        assert any("does not apply this table's changes" in d for d in state["details"])
    finally:
        consumer.drop()


def test_check_on_design_1s_target_says_trigger_mode_tables_are_audited_on_the_source(
    logical_database_url: URL, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """Only CDC tables are copied to the target: the metadata's trigger-mode tables are not
    there by design, which is not drift; on the source they are checked as before."""
    source = sa.create_engine(logical_database_url)
    try:
        cdc_mixed_models.metadata.create_all(source)
        consumer = Consumer(source, target, metadata=cdc_mixed_models.metadata, timeout=120)
        consumers.append(consumer)
        with source.begin() as connection:
            connection.execute(cdc_mixed_models.ledger.insert().values(id=1, amount=5))
            connection.execute(cdc_mixed_models.items.insert().values(id=1))
        assert consumer.run_once() == 1
        done = run("check", MIXED, "--url", url_text(target.url), "--json")
        assert done.returncode == 0, done.stdout
        states = {s["table"]: s for s in json.loads(done.stdout)["tables"]}
        assert states["ledger"]["status"] == "ok"
        assert states["items"]["status"] == "on-source"
        assert "not on this target: trigger mode, audited on the source" in (
            states["items"]["details"][0]
        )
        text = run("check", MIXED, "--url", url_text(target.url))
        assert text.returncode == 0 and "2 tables: 1 ok, 1 on-source" in text.stdout, text.stdout
        assert run("check", MIXED, "--url", url_text(source.url)).returncode == 0

        with source.begin() as connection:  # a trigger-mode table gone from the source is
            connection.exec_driver_sql("DROP TABLE items")  # still missing there
        on_source = run("check", MIXED, "--url", url_text(source.url), "--json")
        states = {s["table"]: s for s in json.loads(on_source.stdout)["tables"]}
        assert (on_source.returncode, states["items"]["status"]) == (1, "missing")
    finally:
        source.dispose()
