"""The declared audit table, names and public entry points (no database needed)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import sqlalchemy_postgresql_audit as audit
from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, SPEC_KEY, AuditConfigurationError


def audit_table_of(table: sa.Table) -> sa.Table:
    result = table.info[AUDIT_TABLE_KEY]
    assert isinstance(result, sa.Table)
    return result


def make_orders(metadata: sa.MetaData, **options: Any) -> sa.Table:
    return sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("code", sa.String(20), nullable=False, unique=True, server_default="x"),
        sa.Column("total", sa.Numeric(10, 2), sa.CheckConstraint("total > 0")),
        sa.Column("doubled", sa.Integer, sa.Computed("id * 2")),
        schema="shop",
        info={"audit.options": {"enabled": True, **options}},
    )


def test_audit_table_mirrors_types_without_constraints() -> None:
    metadata = sa.MetaData()
    settings = [
        sa.Column("username", sa.String(50), nullable=False),
        sa.Column("app_uuid", sa.UUID),
    ]
    orders = make_orders(metadata, session_settings=settings)
    audit_table = audit_table_of(orders)
    assert audit_table.schema == "shop"
    assert metadata.tables["shop.orders_audit"] is audit_table
    assert [c.name for c in audit_table.columns] == [
        "audit_id",
        "audit_operation",
        "audit_operation_timestamp",
        "audit_current_user",
        "audit_username",
        "audit_app_uuid",
        "id",
        "code",
        "total",
        "doubled",
    ]
    for name in ("id", "code", "total", "doubled"):
        mirror, source = audit_table.c[name], orders.c[name]
        assert type(mirror.type) is type(source.type)
        assert mirror.nullable
        assert not mirror.primary_key and not mirror.unique
        assert mirror.server_default is None and mirror.computed is None and mirror.identity is None
        assert not mirror.constraints and not mirror.foreign_keys
    assert audit_table.c.code.type.length == 20  # type: ignore[attr-defined]
    assert not audit_table.primary_key.columns
    assert {type(c) for c in audit_table.constraints} <= {sa.PrimaryKeyConstraint}
    assert audit_table.c.audit_operation.type.length == 1  # type: ignore[attr-defined]
    assert not audit_table.c.audit_operation.nullable
    assert audit_table.c.audit_operation_timestamp.type.timezone is True  # type: ignore[attr-defined]
    assert isinstance(audit_table.c.audit_username.type, sa.String)
    assert audit_table.c.audit_username.type.length == 50
    assert isinstance(audit_table.c.audit_app_uuid.type, sa.UUID)


def test_legacy_timestamp_option_keeps_zone_less_type() -> None:
    audit_table = audit_table_of(make_orders(sa.MetaData(), legacy_timestamp=True))
    assert audit_table.c.audit_operation_timestamp.type.timezone is False  # type: ignore[attr-defined]


def test_default_names_match_the_original_release() -> None:
    spec = make_orders(sa.MetaData()).info[SPEC_KEY]
    assert spec.audit_table == "orders_audit"
    assert spec.function == "shop_orders_audit"
    assert [t.name for t in spec.triggers] == [
        "shop_orders_audit_insert",
        "shop_orders_audit_update",
        "shop_orders_audit_delete",
        "shop_orders_audit_truncate",
    ]
    assert audit.DEFAULT_AUDIT_TABLE_NAMING_CONVENTION == "%(table_name)s_audit"
    assert audit.DEFAULT_AUDIT_TABLE_FUNCTION_NAMING_CONVENTION == "%(schema)s_%(table_name)s_audit"
    assert audit.DEFAULT_AUDIT_TABLE_TRIGGER_CONVENTION == "%(schema)s_%(table_name)s_audit"
    from sqlalchemy_postgresql_audit import dialect

    assert (
        dialect.DEFAULT_AUDIT_TABLE_NAMING_CONVENTION == audit.DEFAULT_AUDIT_TABLE_NAMING_CONVENTION
    )


def test_naming_conventions_from_metadata() -> None:
    metadata = sa.MetaData(
        naming_convention={
            "pk": "pk_%(table_name)s",
            "audit.table": "%(table_name)s_audr",
            "audit.function": "fn_%(schema)s_%(table_name)s",
            "audit.trigger": "tr_%(table_name)s",
            "audit.column": "%(column_name)s",
        }
    )
    orders = make_orders(metadata, session_settings=[sa.Column("username", sa.String)])
    spec = orders.info[SPEC_KEY]
    assert spec.audit_table == "orders_audr"
    assert spec.function == "fn_shop_orders"
    assert spec.triggers[0].name == "tr_orders_insert"
    assert "username" in audit_table_of(orders).c


def test_bad_naming_convention_is_a_clear_error() -> None:
    metadata = sa.MetaData(naming_convention={"audit.table": "%(tablename)s_a"})
    with pytest.raises(ValueError, match=r"audit\.table.*tablename.*table_name"):
        make_orders(metadata)


def test_long_names_are_shortened_deterministically_and_distinctly() -> None:
    long_a = "a" * 60 + "_first"
    long_b = "a" * 60 + "_second"
    metadata = sa.MetaData()
    tables = [
        sa.Table(
            n, metadata, sa.Column("id", sa.Integer), info={"audit.options": {"enabled": True}}
        )
        for n in (long_a, long_b)
    ]
    specs = [t.info[SPEC_KEY] for t in tables]
    names = [s.audit_table for s in specs] + [s.function for s in specs]
    assert all(len(n.encode()) <= 63 for n in names)
    assert len(set(names)) == 4
    again = sa.Table(
        long_a,
        sa.MetaData(),
        sa.Column("id", sa.Integer),
        info={"audit.options": {"enabled": True}},
    )
    assert again.info[SPEC_KEY] == specs[0]


def test_multibyte_names_are_cut_on_character_boundaries() -> None:
    name = "ü" * 40  # 80 bytes
    table = sa.Table(
        name, sa.MetaData(), sa.Column("id", sa.Integer), info={"audit.options": {"enabled": True}}
    )
    spec = table.info[SPEC_KEY]
    assert len(spec.audit_table.encode()) <= 63
    assert spec.audit_table.startswith("ü" * 20)


def test_orm_table_args_and_appended_columns() -> None:
    class Base(DeclarativeBase):
        pass

    class Invoice(Base):
        __tablename__ = "invoice"
        __table_args__ = {"info": {"audit.options": {"enabled": True}}}
        id: Mapped[int] = mapped_column(primary_key=True)
        amount: Mapped[int]

    table = Invoice.__table__
    assert isinstance(table, sa.Table)
    audit_table = audit_table_of(table)
    assert "amount" in audit_table.c
    table.append_column(sa.Column("note", sa.Text))
    assert isinstance(audit_table.c.note.type, sa.Text)
    assert table.info[SPEC_KEY].columns == ("id", "amount", "note")
    assert any("note" in sql for sql in table.info["audit.create_ddl"])


def test_info_carries_create_and_drop_ddl() -> None:
    orders = make_orders(sa.MetaData())
    create, drop = orders.info["audit.create_ddl"], orders.info["audit.drop_ddl"]
    assert create[0].startswith("CREATE OR REPLACE FUNCTION shop.shop_orders_audit()")
    assert any(s.startswith("CREATE OR REPLACE TRIGGER shop_orders_audit_update") for s in create)
    assert drop[-1] == "DROP FUNCTION IF EXISTS shop.shop_orders_audit()"


def test_enable_is_idempotent_and_legacy_import_enables() -> None:
    audit.enable()
    audit.enable()
    importlib.import_module("sqlalchemy_postgresql_audit.event_listeners.sqlalchemy")
    metadata = sa.MetaData()
    make_orders(metadata)
    assert sorted(metadata.tables) == ["shop.orders", "shop.orders_audit"]


PLUGIN_PROGRAM = """
import sqlalchemy as sa
engine = sa.create_engine({url!r}{kwargs})
assert "plugin" not in engine.url.query, engine.url
metadata = sa.MetaData()
sa.Table("t", metadata, sa.Column("id", sa.Integer), info={{"audit.options": {{"enabled": True}}}})
print(sorted(metadata.tables))
"""


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("postgresql+psycopg2://u@localhost/db?plugin=audit", ""),
        ("postgresql+psycopg2://u@localhost/db", ", plugins=['audit']"),
    ],
)
def test_audit_plugin_enables_declaration_in_a_fresh_interpreter(url: str, kwargs: str) -> None:
    program = PLUGIN_PROGRAM.format(url=url, kwargs=kwargs)
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "['t', 't_audit']"


def test_without_enable_nothing_is_declared_in_a_fresh_interpreter() -> None:
    program = PLUGIN_PROGRAM.format(url="postgresql+psycopg2://u@localhost/db", kwargs="")
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "['t']"


def test_late_declaration_is_remembered_and_idempotent() -> None:
    from sqlalchemy_postgresql_audit.declare.declaration import declare_metadata, declared_specs

    table = sa.Table("late", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    assert SPEC_KEY not in table.info
    table.info["audit.options"] = {"enabled": True}
    declare_metadata(table.metadata)
    spec = table.info[SPEC_KEY]
    assert spec in declared_specs()
    first = audit_table_of(table)
    assert audit.audit(table) is first
    declare_metadata(table.metadata)
    assert table.info[SPEC_KEY] is spec
    assert sorted(table.metadata.tables) == ["late", "late_audit"]


def test_history_index_is_an_ordinary_index_of_the_audit_table() -> None:
    audit_table = audit_table_of(make_orders(sa.MetaData()))
    [index] = audit_table.indexes
    assert index.name == "orders_audit_history"
    assert [c.name for c in index.columns] == ["id", "audit_id"]
    assert audit.DEFAULT_AUDIT_INDEX_NAMING_CONVENTION == "%(table_name)s_audit_history"


@pytest.mark.parametrize(
    ("table", "column", "schema", "key"),
    [
        ("item\n", "id", None, "table"),
        ("item", "note\n", None, "note\n"),
        ("item", "id", "s\n", "schema"),
    ],
)
def test_a_name_sqlalchemy_would_leave_unquoted_is_refused(
    table: str, column: str, schema: str | None, key: str
) -> None:
    """SQLAlchemy's quoting check lets ``note\\n`` through unquoted, so PostgreSQL would create
    ``note``: the audit function would then name a column that does not exist (found by the
    identifier fuzz)."""
    with pytest.raises(AuditConfigurationError, match="ends with a newline") as raised:
        sa.Table(
            table,
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            *([sa.Column(column, sa.Text)] if column != "id" else []),
            schema=schema,
            info={"audit.options": {"enabled": True}},
        )
    assert raised.value.key == key
