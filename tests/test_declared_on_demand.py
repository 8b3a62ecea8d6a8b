"""The per-table lifecycle APIs (holds, seals, maintenance, conversion, purge) declare a table
whose ``audit.options`` came after it was defined (a model imported before ``enable()``), as
the entry points and the history API do, instead of calling it "not audited"."""

from __future__ import annotations

import datetime

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import AuditError, hold, holds_of, maintain, release, seal
from sqlalchemy_postgresql_audit.lifecycle.conversion import partition_audit_table

UTC = datetime.timezone.utc


def accounts(options: dict[str, object] | None = None) -> sa.Table:
    """``accounts`` in a MetaData of its own, its options set after the table was made (so the
    listeners never declared it) unless ``options`` is None."""
    table = sa.Table(
        "accounts",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.Integer),
    )
    if options is not None:
        table.info["audit.options"] = options
    return table


@pytest.fixture
def installed(engine: sa.Engine) -> sa.Engine:
    """``accounts`` audited in the database, with one change in its trail."""
    table = accounts({"enabled": True})
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, balance=10))
    return engine


def test_hold_and_release_declare_a_table_whose_options_came_late(installed: sa.Engine) -> None:
    late = accounts({"enabled": True})
    hold(installed, late, "litigation 42")
    assert [h.reason for h in holds_of(installed, late)] == ["litigation 42"]
    release(installed, late, "litigation 42")
    assert holds_of(installed, accounts({"enabled": True})) == ()


def test_seal_declares_a_table_whose_options_came_late(installed: sa.Engine) -> None:
    (sealed,) = seal(installed, accounts({"enabled": True}))
    assert sealed.rows == 1


def test_maintain_declares_a_table_whose_options_came_late(engine: sa.Engine) -> None:
    options = {"enabled": True, "partition": "week"}
    accounts(options).metadata.create_all(engine)
    (maintained,) = maintain(engine, accounts(options))
    assert maintained.audit_table.endswith("accounts_audit")


@pytest.mark.parametrize(
    "call",
    [
        lambda bind, table: hold(bind, table, "why"),
        lambda bind, table: seal(bind, table),
        lambda bind, table: maintain(bind, table),
        lambda bind, table: partition_audit_table(bind, table),
    ],
    ids=["hold", "seal", "maintain", "partition_audit_table"],
)
def test_a_table_without_options_is_named_as_not_audited(
    installed: sa.Engine, call: object
) -> None:
    with pytest.raises(AuditError, match=r"'accounts' is not audited \(no 'audit.options'"):
        call(installed, accounts())  # type: ignore[operator]
