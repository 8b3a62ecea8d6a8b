"""Audited whenever and however a table was defined: import order, late ``info``, reflection,
copies, subsets.  Every test writes to a real server and counts what was recorded."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.declarative import DeferredReflection
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sqlalchemy_postgresql_audit import (
    AUDIT_TABLE_KEY,
    SPEC_KEY,
    AuditConfigurationError,
    audit,
    install_audit_triggers,
    is_audit_table,
)

AUDITED = {"audit.options": {"enabled": True}}


def ledger(metadata: sa.MetaData, **kw: Any) -> sa.Table:
    return sa.Table(
        "ledger",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("note", sa.Text),
        **kw,
    )


def count(engine: sa.Engine, qualified_table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {qualified_table}")).scalar())


def write(engine: sa.Engine, table: sa.Table, row_id: int, note: str = "n") -> None:
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=row_id, note=note))


def plain_ledger(engine: sa.Engine, *, audited: bool = False) -> None:
    """Create ``ledger`` (and with ``audited`` its audit table and triggers) in the database,
    from a MetaData the test then forgets, as another application would."""
    ledger(sa.MetaData(), **({"info": AUDITED} if audited else {})).metadata.create_all(engine)


# --- import order, from a fresh interpreter ----------------------------------------------------

ORDER_PROGRAM = """
import sys
import sqlalchemy as sa
metadata = sa.MetaData()
ledger = sa.Table(
    "ledger", metadata, sa.Column("id", sa.Integer, primary_key=True),
    info={{"audit.options": {{"enabled": True}}}},
)
{enable}
engine = sa.create_engine(sys.argv[1]{engine_kwargs})
metadata.create_all(engine)
with engine.begin() as connection:
    connection.execute(ledger.insert().values(id=1))
with engine.connect() as connection:
    print(connection.execute(sa.text("SELECT count(*) FROM ledger_audit")).scalar())
"""


@pytest.mark.parametrize(
    ("enable", "engine_kwargs"),
    [
        ("import sqlalchemy_postgresql_audit as a; a.enable()", ""),
        ("import sqlalchemy_postgresql_audit.event_listeners.sqlalchemy", ""),
        ("", ", plugins=['audit']"),
        ("import sqlalchemy_postgresql_audit", ""),
    ],
    ids=["enable", "legacy-import", "plugin", "import-only"],
)
def test_enabling_after_the_models_are_declared_still_audits(
    database_url: URL, enable: str, engine_kwargs: str
) -> None:
    program = ORDER_PROGRAM.format(enable=enable, engine_kwargs=engine_kwargs)
    result = subprocess.run(
        [sys.executable, "-c", program, database_url.render_as_string(hide_password=False)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_plugin_query_parameter_after_the_models_are_declared(database_url: URL) -> None:
    url = database_url.update_query_dict({"plugin": "audit"})
    program = ORDER_PROGRAM.format(enable="", engine_kwargs="")
    result = subprocess.run(
        [sys.executable, "-c", program, url.render_as_string(hide_password=False)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


# --- info set late ----------------------------------------------------------------------------


def test_info_set_after_the_table_is_defined(engine: sa.Engine) -> None:
    table = ledger(sa.MetaData())
    table.info["audit.options"] = {"enabled": True}
    table.metadata.create_all(engine)
    write(engine, table, 1)
    assert count(engine, "ledger_audit") == 1


def test_history_of_a_table_declared_before_the_listeners_reads_it(engine: sa.Engine) -> None:
    """The models were imported before ``enable()`` in this process (here: options set after
    the table joined its MetaData), and the trail was installed by another process: ``history``
    and ``changes`` declare the table themselves, as install does."""
    from sqlalchemy_postgresql_audit import changes, history

    plain_ledger(engine, audited=True)
    write(engine, ledger(sa.MetaData()), 1, "first")  # another process's write
    table = ledger(sa.MetaData())
    table.info["audit.options"] = {"enabled": True}
    assert SPEC_KEY not in table.info
    with engine.connect() as connection:
        rows = connection.execute(history(table, 1)).all()
        changed = connection.execute(changes(table, 1)).all()
    assert [row.note for row in rows] == ["first"]
    assert [(c.column, c.after) for c in changed] == [("id", 1), ("note", "first")]


def test_info_set_by_an_orm_mixin_after_the_class_is_mapped(engine: sa.Engine) -> None:
    class Base(DeclarativeBase):
        pass

    class Audited:
        def __init_subclass__(cls, **kw: Any) -> None:
            super().__init_subclass__(**kw)
            cls.__table__.info["audit.options"] = {"enabled": True}  # type: ignore[attr-defined]

    class Invoice(Audited, Base):
        __tablename__ = "invoice"
        id: Mapped[int] = mapped_column(primary_key=True)

    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        session.add(Invoice(id=1))
    assert count(engine, "invoice_audit") == 1


def test_reflected_table_with_info_set_then_create_all(engine: sa.Engine) -> None:
    plain_ledger(engine)
    metadata = sa.MetaData()
    metadata.reflect(engine)
    table = metadata.tables["ledger"]
    table.info["audit.options"] = {"enabled": True}
    with pytest.raises(AuditConfigurationError, match=r"'ledger'.*ledger_audit does not exist"):
        install_audit_triggers(metadata, engine)  # a clear error, not silence
    metadata.create_all(engine)  # the table exists; its audit table is created and installed
    write(engine, table, 1)
    assert count(engine, "ledger_audit") == 1


# --- copies and subsets -----------------------------------------------------------------------


def test_to_metadata_copy_is_audited_as_itself(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE SCHEMA tenant1"))
    original = ledger(sa.MetaData(), info=AUDITED)
    copy = original.to_metadata(sa.MetaData(), schema="tenant1")
    copy.metadata.create_all(engine)
    assert copy.info[SPEC_KEY].schema == "tenant1"
    assert copy.info[AUDIT_TABLE_KEY] is copy.metadata.tables["tenant1.ledger_audit"]
    assert original.info[SPEC_KEY].schema is None
    write(engine, copy, 1)
    assert count(engine, "tenant1.ledger_audit") == 1
    assert not sa.inspect(engine).has_table("ledger")  # the original was never touched


def test_copy_into_the_same_metadata_and_another_schema(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE SCHEMA tenant2"))
    original = ledger(sa.MetaData(), info=AUDITED)
    copy = original.to_metadata(original.metadata, schema="tenant2")
    original.metadata.create_all(engine)
    write(engine, original, 1)
    write(engine, copy, 1)
    write(engine, copy, 2)
    assert (count(engine, "ledger_audit"), count(engine, "tenant2.ledger_audit")) == (1, 2)


def test_copying_every_table_into_a_tenant_schema(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE SCHEMA tenant3"))
    original = ledger(sa.MetaData(), info=AUDITED)
    tenant = sa.MetaData()
    for table in original.metadata.sorted_tables:  # the audit table is copied too
        table.to_metadata(tenant, schema="tenant3")
    tenant.create_all(engine)
    copy = tenant.tables["tenant3.ledger"]
    assert copy.info[AUDIT_TABLE_KEY] is tenant.tables["tenant3.ledger_audit"]
    write(engine, copy, 1)
    assert count(engine, "tenant3.ledger_audit") == 1


def test_create_all_of_only_the_source_creates_its_audit_table(engine: sa.Engine) -> None:
    table = ledger(sa.MetaData(), info=AUDITED)
    table.metadata.create_all(engine, tables=[table])
    write(engine, table, 1)
    assert count(engine, "ledger_audit") == 1


# --- reflection -------------------------------------------------------------------------------


def test_deferred_reflection_with_skip_unchanged(engine: sa.Engine) -> None:
    plain_ledger(engine)

    class Base(DeclarativeBase):
        pass

    class Reflected(DeferredReflection):
        __abstract__ = True

    class Ledger(Reflected, Base):
        __tablename__ = "ledger"
        __table_args__ = {"info": {"audit.options": {"enabled": True, "skip_unchanged": True}}}

    Reflected.prepare(engine)
    Base.metadata.create_all(engine)
    table = Ledger.__table__
    assert isinstance(table, sa.Table)
    assert table.info[SPEC_KEY].key_columns == ("id",)
    write(engine, table, 1, "a")
    with engine.begin() as connection:
        connection.execute(table.update().values(note="a"))  # unchanged: not recorded
        connection.execute(table.update().values(note="b"))
    assert count(engine, "ledger_audit") == 2


def test_deferred_reflection_never_prepared_is_an_error_at_install(engine: sa.Engine) -> None:
    class Base(DeclarativeBase):
        pass

    class Reflected(DeferredReflection):
        __abstract__ = True

    class Ledger(Reflected, Base):
        __tablename__ = "ledger"
        __table_args__ = {"info": AUDITED}

    with pytest.raises(AuditConfigurationError, match=r"'ledger'.*no columns"):
        install_audit_triggers(Base.metadata, engine)


def _customers_and_orders(engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    sa.Table("customer", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.ForeignKey("customer.id")),
    )
    metadata.create_all(engine)


def test_reflected_fk_target_audited_with_extend_existing_or_audit(engine: sa.Engine) -> None:
    _customers_and_orders(engine)
    metadata = sa.MetaData()
    orders = sa.Table("orders", metadata, autoload_with=engine, info=AUDITED)
    customer = metadata.tables["customer"]  # pulled in as the foreign key's target
    again = sa.Table("customer", metadata, autoload_with=engine, extend_existing=True, info=AUDITED)
    assert again is customer
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(customer.insert().values(id=1))
        connection.execute(orders.insert().values(id=1, customer_id=1))
    assert (count(engine, "customer_audit"), count(engine, "orders_audit")) == (1, 1)


def test_audit_a_table_you_do_not_own(engine: sa.Engine) -> None:
    shared_info: dict[str, Any] = {"owner": "vendor"}
    vendor = ledger(sa.MetaData(), info=shared_info)
    audit_table = audit(vendor, session_settings=[sa.Column("username", sa.String)])
    assert audit_table is vendor.info[AUDIT_TABLE_KEY]
    assert shared_info == {"owner": "vendor"}
    assert "audit_username" in audit_table.c
    vendor.metadata.create_all(engine)
    write(engine, vendor, 1)
    assert count(engine, "ledger_audit") == 1
    with pytest.raises(AuditConfigurationError, match=r"'ledger'.*'enabled' is False"):
        audit(vendor, enabled=False)


def test_rerunning_setup_over_every_reflected_table(engine: sa.Engine) -> None:
    plain_ledger(engine, audited=True)
    metadata = sa.MetaData()
    metadata.reflect(engine)
    assert sorted(metadata.tables) == ["ledger", "ledger_audit"]
    assert [is_audit_table(t) for t in metadata.sorted_tables] == [False, True]
    audit(metadata.tables["ledger"])
    with pytest.raises(AuditConfigurationError, match=r"'ledger_audit'.*audit table"):
        audit(metadata.tables["ledger_audit"])
    metadata = sa.MetaData()
    metadata.reflect(engine)
    for table in metadata.sorted_tables:
        if not is_audit_table(table):
            audit(table)
    install_audit_triggers(metadata, engine)
    write(engine, metadata.tables["ledger"], 1)
    assert count(engine, "ledger_audit") == 1


def test_column_added_outside_the_models_fails_at_install(engine: sa.Engine) -> None:
    plain_ledger(engine, audited=True)
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE ledger ADD COLUMN extra text"))
    metadata = sa.MetaData()
    metadata.reflect(engine)
    audit(metadata.tables["ledger"])
    metadata.create_all(engine)  # nothing to create
    with pytest.raises(
        AuditConfigurationError, match=r"'ledger'.*'extra' is not a column of audit table"
    ):
        install_audit_triggers(metadata, engine)
    write(engine, metadata.tables["ledger"], 1)  # the installed function still works
    assert count(engine, "ledger_audit") == 1


def test_declared_audit_table_is_recognised(engine: sa.Engine) -> None:
    table = ledger(sa.MetaData(), info=AUDITED)
    assert is_audit_table(table.info[AUDIT_TABLE_KEY]) and not is_audit_table(table)
    with pytest.raises(AuditConfigurationError, match=r"'ledger_audit'.*audit table"):
        audit(table.info[AUDIT_TABLE_KEY])


# --- width ------------------------------------------------------------------------------------


def _wide(metadata: sa.MetaData, width: int) -> sa.Table:
    columns = [sa.Column(f"c{i}", sa.SmallInteger) for i in range(width - 1)]
    return sa.Table(
        "wide", metadata, sa.Column("id", sa.Integer, primary_key=True), *columns, info=AUDITED
    )


def test_a_table_too_wide_for_its_audit_table_fails_at_declaration(engine: sa.Engine) -> None:
    with pytest.raises(AuditConfigurationError, match=r"'wide'.*1601 columns.*1600"):
        _wide(sa.MetaData(), 1597)
    table = _wide(sa.MetaData(), 1596)  # the audit table has exactly 1,600 columns
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1))
    assert count(engine, "wide_audit") == 1
