"""Design 1: models that type a CDC table more strictly than the source are refused at the
consumer's start, naming the table and column, before anything is made on the target; models
laxer than the source run.  Without the check the apply worker fails at the first row that does
not fit and retries for ever (every CDC table's trail stops), or the trail holds changed values.
Two real servers: the source and the target."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from cdc_replica_setup import cdc_metadata, column_type, rows, run_ddl
from sqlalchemy_postgresql_audit.cdc import CdcError, Consumer


def _item(metadata: sa.MetaData, value: Any, *, nullable: bool = True) -> sa.Table:
    return sa.Table(
        "item",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", value, nullable=nullable),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
    )


def _consumer(
    source: sa.Engine,
    target: sa.Engine,
    consumers: list[Consumer],
    source_type: Any,
    model_type: Any,
    *,
    model_nullable: bool = True,
) -> tuple[sa.Table, Consumer]:
    """``item (id, value)`` made on the source with ``source_type``, and a consumer whose models
    type ``value`` as ``model_type``; returns the source's table and the consumer."""
    made = cdc_metadata()
    table = _item(made, source_type)
    made.create_all(source)
    models = sa.MetaData(naming_convention=dict(made.naming_convention))
    _item(models, model_type, nullable=model_nullable)
    consumer = Consumer(source, target, metadata=models, timeout=60)
    consumers.append(consumer)
    return table, consumer


def _nothing_made(target: sa.Engine) -> bool:
    return rows(
        target,
        "SELECT (SELECT count(*) FROM pg_subscription), to_regclass('item'), "
        "to_regclass('item_audit')",
    ) == [(0, None, None)]


def test_a_shorter_string_over_a_text_column_is_refused_and_nothing_is_made(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """``String(5)`` on ``text``: the first longer value would stop the trail for good."""
    _, consumer = _consumer(source, target, consumers, sa.Text, sa.String(5))
    with pytest.raises(CdcError, match=r'"item"\.value is character varying\(5\) where'):
        consumer.run_once()
    assert _nothing_made(target)


def test_a_not_null_model_over_a_nullable_source_column_is_refused(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    _, consumer = _consumer(source, target, consumers, sa.Text, sa.Text, model_nullable=False)
    with pytest.raises(CdcError, match=r'"item"\.value is text NOT NULL where .* allows NULL'):
        consumer.run_once()
    assert _nothing_made(target)


def test_a_timestamp_model_over_a_timestamptz_column_is_refused(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """The zone would be lost without a word."""
    _, consumer = _consumer(source, target, consumers, sa.DateTime(timezone=True), sa.DateTime)
    with pytest.raises(
        CdcError,
        match=r'"item"\.value is timestamp without time zone where the source\'s "item"\.value '
        r"is timestamp with time zone",
    ):
        consumer.run_once()
    assert _nothing_made(target)


def test_an_enum_model_missing_a_label_of_the_source_is_refused(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    _, consumer = _consumer(
        source,
        target,
        consumers,
        sa.Enum("low", "mid", "high", name="level"),
        sa.Enum("low", "high", name="level"),
    )
    with pytest.raises(CdcError, match=r"\"item\"\.value is level .*the target's enum lacks 'mid'"):
        consumer.run_once()
    assert _nothing_made(target)
    assert rows(target, "SELECT to_regtype('level')") == [(None,)]


def test_a_domain_with_a_check_over_the_source_type_is_refused(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """A domain without constraints holds every value of its base; one with a CHECK does not."""
    run_ddl(target, "CREATE SCHEMA app", "CREATE DOMAIN app.pos AS integer CHECK (VALUE > 0)")
    _, consumer = _consumer(source, target, consumers, sa.Integer, column_type("app.pos"))
    with pytest.raises(CdcError, match=r'"item"\.value is app\.pos where the source\'s'):
        consumer.run_once()
    assert _nothing_made(target)


def test_a_replica_made_earlier_is_compared_as_the_target_holds_it(
    source: sa.Engine, target: sa.Engine, consumers: list[Consumer]
) -> None:
    """The models match the source, but the target's replica (made by older models) does not:
    the consumer keeps an existing table, so its catalog decides."""
    run_ddl(target, "CREATE TABLE item (id integer PRIMARY KEY, value varchar(5))")
    _, consumer = _consumer(source, target, consumers, sa.Text, sa.Text)
    with pytest.raises(CdcError, match=r'"item"\.value is character varying\(5\) where'):
        consumer.run_once()
    assert rows(target, "SELECT to_regclass('item_audit'), count(*) FROM pg_subscription") == [
        (None, 0)
    ]


@pytest.mark.parametrize(
    ("source_type", "model_type", "value"),
    [
        (sa.String(10), sa.String(20), "ten chars!"),
        (sa.String(10), sa.Text, "ten chars!"),
        (sa.Numeric(10, 2), sa.Numeric, "12345678.91"),
        (sa.Numeric(12, 4), sa.Numeric(14, 4), "12345678.9123"),
        (sa.Integer, sa.BigInteger, 2147483647),
        (sa.SmallInteger, sa.Integer, 32767),
    ],
    ids=[
        "longer-varchar",
        "text-over-varchar",
        "unconstrained-numeric",
        "more-precise-numeric",
        "bigint-over-integer",
        "integer-over-smallint",
    ],
)
def test_models_laxer_than_the_source_run_and_record_the_row(
    source: sa.Engine,
    target: sa.Engine,
    consumers: list[Consumer],
    source_type: Any,
    model_type: Any,
    value: object,
) -> None:
    table, consumer = _consumer(source, target, consumers, source_type, model_type)
    with source.begin() as connection:
        connection.execute(table.insert().values(id=1, value=value))
    assert consumer.run_once() == 1
    got = rows(target, "SELECT audit_operation, id, CAST(value AS text) FROM item_audit")
    assert got == [("I", 1, str(value))]


@pytest.mark.parametrize(
    ("source_type", "model_type"),
    [(sa.Numeric(12, 4), sa.Numeric(14, 2)), (sa.BigInteger, sa.Integer)],
    ids=["fewer-decimals", "narrower-integer"],
)
def test_a_numeric_model_that_would_round_or_overflow_is_refused(
    source: sa.Engine,
    target: sa.Engine,
    consumers: list[Consumer],
    source_type: Any,
    model_type: Any,
) -> None:
    _, consumer = _consumer(source, target, consumers, source_type, model_type)
    with pytest.raises(CdcError, match=r'"item"\.value is '):
        consumer.run_once()
