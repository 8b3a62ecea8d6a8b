"""Design 1: one slot feeds one target.  PostgreSQL does not refuse a second subscription on a
slot: it waits while the first streams and takes the slot whenever the first is down, and each
trail then silently lacks what the other got.  A target that never held the source's trail is
refused a slot something else reads or has read.  Two real servers: the source and the
target's server, with two target databases."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from cdc_decoder_setup import drop_slot
from cdc_replica_setup import cdc_metadata, cdc_table, rows, trail
from sqlalchemy_postgresql_audit import AuditConfigurationError, install_audit_triggers
from sqlalchemy_postgresql_audit.cdc import CdcError, Consumer, create_slot
from sqlalchemy_postgresql_audit.declare.cdc import cdc_names

#: ``pg_subscription`` is shared by the server's databases.
_SUBSCRIPTIONS_HERE = (
    "SELECT subname FROM pg_subscription "
    "WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def test_a_second_target_on_a_slot_another_target_reads_is_refused(
    source: sa.Engine, target: sa.Engine, other_target: sa.Engine, consumers: list[Consumer]
) -> None:
    metadata = cdc_metadata()
    account = cdc_table(metadata, "account")
    metadata.create_all(source)
    first = Consumer(source, target, metadata=metadata, timeout=60)
    consumers.append(first)
    with source.begin() as connection:
        connection.execute(account.insert().values(id=1, value=1))
    assert first.run_once() == 1
    second = Consumer(source, other_target, metadata=metadata, timeout=30)
    consumers.append(second)
    with pytest.raises(CdcError, match="two readers of one slot split the trail") as refused:
        second.run_once()
    assert repr(cdc_names(metadata).slot) in str(refused.value)
    assert rows(other_target, _SUBSCRIPTIONS_HERE) == []
    assert rows(other_target, "SELECT to_regclass('account')") == [(None,)]
    with source.begin() as connection:
        connection.execute(account.update().values(value=2))
    assert first.run_once() == 1
    assert trail(target, "account") == [("I", 1, 1), ("U", 1, 2)]

    # Moving the trail, as the refusal says: the old subscription and the slot go first.
    first.drop()
    drop_slot(source, metadata)
    create_slot(source, metadata)
    second.run_once()
    with source.begin() as connection:
        connection.execute(account.update().values(value=3))
    assert second.run_once() == 1
    assert trail(other_target, "account") == [("B", 1, 2), ("U", 1, 3)]

    # The old target, run again by an old deploy, no longer reads the slot: refused.
    again = Consumer(source, target, metadata=metadata, timeout=30)
    consumers.append(again)
    with pytest.raises(CdcError, match="two readers of one slot split the trail"):
        again.run_once()
    with source.begin() as connection:
        connection.execute(account.update().values(value=4))
    assert second.run_once() == 1
    assert trail(other_target, "account")[-1] == ("U", 1, 4)



def test_installing_the_models_on_the_target_is_refused_once_it_holds_the_trail(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """It would make a slot there that nothing reads, keeping the target's WAL for ever."""
    metadata = cdc_metadata()
    account = cdc_table(metadata, "account")
    metadata.create_all(source)
    consumer = Consumer(source, target, metadata=metadata, timeout=60)
    consumers.append(consumer)
    consumer.run_once()
    with pytest.raises(AuditConfigurationError, match="is the target of its trail") as refused:
        install_audit_triggers(metadata, target)
    assert "'account'" in str(refused.value) and "install the models on the source" in str(
        refused.value
    )
    slot = cdc_names(metadata).slot
    assert rows(target, f"SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}'") == []
    with source.begin() as connection:
        connection.execute(account.insert().values(id=1, value=1))
    assert consumer.run_once() == 1
