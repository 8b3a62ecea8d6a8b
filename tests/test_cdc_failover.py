"""Failover slots (PostgreSQL 17+): ``{"audit.slot_failover": True}`` in the naming convention
makes the CDC slot one that standbys synchronizing slots keep, so the trail survives a
switchover; a server before 17 refuses it naming its version; ``cdc status`` shows it."""

from __future__ import annotations

import re
import uuid

import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from sqlalchemy_postgresql_audit import AuditConfigurationError
from sqlalchemy_postgresql_audit.cdc import Consumer
from sqlalchemy_postgresql_audit.cdc.status import cdc_status
from sqlalchemy_postgresql_audit.declare.declaration import _DECLARED
from sqlalchemy_postgresql_audit.render.cdc import create_slot

FAILOVER = 170000


def _models(**conventions: object) -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData(
        naming_convention={"audit.slot": f"fo_{uuid.uuid4().hex[:12]}", **conventions}
    )
    account = sa.Table(
        "account",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.Text),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )
    return metadata, account


def _slot_failover(engine: sa.Engine, slot: str) -> object:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT failover FROM pg_replication_slots WHERE slot_name = :s"), {"s": slot}
        ).scalar_one()


def _version(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        return str(connection.exec_driver_sql("SHOW server_version").scalar_one())


def _slots(engine: sa.Engine, slot: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.text("SELECT count(*) FROM pg_replication_slots WHERE slot_name = :s"),
                {"s": slot},
            ).scalar_one()
        )


def test_install_makes_a_failover_slot_and_status_shows_it(
    source: sa.Engine, server_version: int
) -> None:
    if server_version < FAILOVER:
        pytest.skip("failover slots need PostgreSQL 17+ (the refusal is tested below)")
    metadata, _ = _models(**{"audit.slot_failover": True})
    metadata.create_all(source)
    slot = metadata.naming_convention["audit.slot"]
    assert _slot_failover(source, slot) is True
    status = cdc_status(source, metadata)
    assert (status.failover_wanted, status.failover) == (True, True)
    # The primary does not wait for any standby: said, since the trail could get ahead of one.
    assert status.synchronized_standby_slots == ""
    assert any("synchronized_standby_slots" in p for p in status.problems)


def test_a_failover_slot_is_refused_before_17_naming_the_version(
    source: sa.Engine, server_version: int
) -> None:
    if server_version >= FAILOVER:
        pytest.skip("this server makes failover slots (tested above)")
    metadata, _ = _models(**{"audit.slot_failover": True})
    with pytest.raises(AuditConfigurationError) as raised:
        metadata.create_all(source)
    assert raised.value.key == "audit.slot_failover"
    assert f"runs PostgreSQL {_version(source)}" in str(raised.value)
    assert _slots(source, metadata.naming_convention["audit.slot"]) == 0


def test_by_default_the_slot_is_no_failover_slot(source: sa.Engine, server_version: int) -> None:
    metadata, _ = _models()
    metadata.create_all(source)
    status = cdc_status(source, metadata)
    assert status.failover_wanted is False and status.problems == ()
    if server_version >= FAILOVER:
        assert _slot_failover(source, metadata.naming_convention["audit.slot"]) is False
        assert status.failover is False
    else:
        assert status.failover is None


def test_an_existing_slot_that_is_no_failover_slot_is_reported_once_asked_for(
    source: sa.Engine, server_version: int
) -> None:
    metadata, _ = _models()
    metadata.create_all(source)
    asking, _ = _models(**{"audit.slot_failover": True})
    asking.naming_convention["audit.slot"] = metadata.naming_convention["audit.slot"]
    problems = cdc_status(source, asking).problems
    if server_version >= FAILOVER:
        assert any("is not a failover slot" in p for p in problems), problems
    else:
        assert any(f"this server runs {_version(source)}" in p for p in problems), problems


def test_a_subscription_keeps_the_slot_a_failover_slot(
    source: sa.Engine, second_database_url: URL, server_version: int
) -> None:
    """A subscriber of 17+ sets the slot's failover property to its own when it is created:
    design 1 must ask for ``failover = true`` or the failover slot would stop being one."""
    if server_version < FAILOVER:
        pytest.skip("failover slots need PostgreSQL 17+")
    target = sa.create_engine(second_database_url)
    metadata, account = _models(**{"audit.slot_failover": True})
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=120)
    try:
        with source.begin() as connection:
            connection.execute(account.insert().values(id=1, owner="a"))
        assert consumer.run_once() == 1
        assert _slot_failover(source, metadata.naming_convention["audit.slot"]) is True
        status = cdc_status(source, metadata, target)
        assert (status.failover, status.subscription_failover) == (True, True)
    finally:
        consumer.drop()
        target.dispose()


def test_the_install_script_makes_a_failover_slot_or_refuses_naming_the_version(
    source: sa.Engine, server_version: int
) -> None:
    slot = f"fo_{uuid.uuid4().hex[:12]}"
    script = create_slot(slot, failover=True)
    with source.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        raw.autocommit = True
        if server_version >= FAILOVER:
            raw.cursor().execute(script)
            raw.cursor().execute(script)  # idempotent
            assert _slot_failover(source, slot) is True
            raw.cursor().execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        else:
            with pytest.raises(
                psycopg2.Error, match=re.escape(f"runs PostgreSQL {_version(source)}")
            ):
                raw.cursor().execute(script)
            assert _slots(source, slot) == 0


def test_the_setting_must_be_true_or_false(source: sa.Engine) -> None:
    metadata, _ = _models(**{"audit.slot_failover": "yes"})
    try:
        with pytest.raises(AuditConfigurationError, match="must be True or False") as raised:
            metadata.create_all(source)
        assert raised.value.key == "audit.slot_failover"
    finally:
        # Its tables are declared (the convention is read at install): forgotten, so later
        # tests that install every declared table do not meet the bad setting again.
        for table in metadata.tables.values():
            _DECLARED.discard(table)
