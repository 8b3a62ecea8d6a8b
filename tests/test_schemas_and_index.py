"""Where auditing is installed (search_path, temporary tables, schema_translate_map), the
history index, and domains in the mirrored columns, on a real server."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL

from sqlalchemy_postgresql_audit import (
    AUDIT_TABLE_KEY,
    SPEC_KEY,
    AuditConfigurationError,
    audit,
    install_audit_triggers,
)
from sqlalchemy_postgresql_audit.install.ddl import resolve_spec


def ledger(metadata: sa.MetaData, *, pk: bool = True, **options: Any) -> sa.Table:
    return sa.Table(
        "ledger",
        metadata,
        sa.Column("id", sa.Integer, primary_key=pk),
        sa.Column("note", sa.Text),
        info={"audit.options": {"enabled": True, **options}},
    )


def scalar(engine: sa.Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(sa.text(sql), params).scalar()


def run(engine: sa.Engine, *statements: str) -> None:
    with engine.begin() as connection:
        for sql in statements:
            connection.execute(sa.text(sql))


# --- resolve_spec -----------------------------------------------------------------------------


def test_resolve_spec_follows_search_path_and_ignores_temporary_tables(
    database_url: URL,
) -> None:
    engine = sa.create_engine(database_url, connect_args={"options": "-csearch_path=app,public"})
    try:
        run(engine, "CREATE SCHEMA app")
        table = ledger(sa.MetaData())
        table.metadata.create_all(engine)
        assert scalar(engine, "SELECT count(*) FROM app.ledger_audit") == 0
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TEMPORARY TABLE ledger (id int) ON COMMIT DROP"))
            connection.execute(sa.text("SET LOCAL search_path = pg_temp, public, app"))
            assert resolve_spec(connection, table.info[SPEC_KEY]).schema == "app"
        with engine.begin() as connection:
            connection.execute(table.insert().values(id=1))
        assert scalar(engine, "SELECT count(*) FROM app.ledger_audit") == 1
        assert resolve_spec(None, table.info[SPEC_KEY]).schema is None
    finally:
        engine.dispose()


def test_schema_translate_map_audits_each_tenant_into_its_own_audit_table(
    engine: sa.Engine,
) -> None:
    run(engine, "CREATE SCHEMA tenant_a", "CREATE SCHEMA tenant_b")
    table = ledger(sa.MetaData())
    tenants = {
        name: engine.execution_options(schema_translate_map={None: name})
        for name in ("tenant_a", "tenant_b")
    }
    for tenant in tenants.values():
        table.metadata.create_all(tenant)
    for row_id, tenant in enumerate(tenants.values()):
        for n in range(row_id + 1):
            with tenant.begin() as connection:
                connection.execute(table.insert().values(id=n))
    assert scalar(engine, "SELECT count(*) FROM tenant_a.ledger_audit") == 1
    assert scalar(engine, "SELECT count(*) FROM tenant_b.ledger_audit") == 2
    assert not sa.inspect(engine).has_table("ledger")
    with tenants["tenant_a"].connect() as connection:
        assert resolve_spec(connection, table.info[SPEC_KEY]).schema == "tenant_a"
    table.metadata.drop_all(tenants["tenant_a"])
    # tenant_b's four audit triggers and its key trigger
    assert scalar(engine, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%ledger%'") == 5


def test_install_through_schema_translate_map(engine: sa.Engine) -> None:
    run(engine, "CREATE SCHEMA tenant_a")
    table = ledger(sa.MetaData())
    tenant = engine.execution_options(schema_translate_map={None: "tenant_a"})
    table.metadata.create_all(tenant)
    run(engine, "DROP FUNCTION tenant_a.public_ledger_audit() CASCADE")
    install_audit_triggers(table.metadata, tenant)
    with tenant.begin() as connection:
        connection.execute(table.insert().values(id=1))
    assert scalar(engine, "SELECT count(*) FROM tenant_a.ledger_audit") == 1


# --- the history index ------------------------------------------------------------------------

INDEXES = (
    "SELECT string_agg(indexdef, ';') FROM pg_indexes WHERE tablename = :table AND "
    "schemaname = 'public'"
)


def test_history_index_by_default(engine: sa.Engine) -> None:
    table = ledger(sa.MetaData())
    table.metadata.create_all(engine)
    assert scalar(engine, INDEXES, table="ledger_audit") == (
        "CREATE INDEX ledger_audit_history ON public.ledger_audit USING btree (id, audit_id)"
    )
    audit_table = table.info[AUDIT_TABLE_KEY]
    assert [index.name for index in audit_table.indexes] == ["ledger_audit_history"]


@pytest.mark.parametrize(
    ("pk", "options"), [(True, {"history_index": False}), (False, {})], ids=["opt-out", "no-pk"]
)
def test_no_history_index(engine: sa.Engine, pk: bool, options: dict[str, Any]) -> None:
    table = ledger(sa.MetaData(), pk=pk, **options)
    table.metadata.create_all(engine)
    assert scalar(engine, INDEXES, table="ledger_audit") is None
    assert not table.info[AUDIT_TABLE_KEY].indexes


def test_history_index_name_from_the_convention_and_fitted(engine: sa.Engine) -> None:
    metadata = sa.MetaData(
        naming_convention={"ix": "ix_%(column_0_label)s", "audit.index": "hist_%(table_name)s"}
    )
    table = ledger(metadata)
    long_name = "x" * 63
    long = sa.Table(
        long_name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        info={"audit.options": {"enabled": True}},
    )
    metadata.create_all(engine)
    assert "hist_ledger ON" in scalar(engine, INDEXES, table="ledger_audit")
    [index] = long.info[AUDIT_TABLE_KEY].indexes
    assert len(str(index.name).encode()) == 63
    assert str(index.name) == scalar(
        engine, "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'hist_x%'"
    )
    assert table.info[AUDIT_TABLE_KEY] is not None


def test_history_index_must_be_a_bool() -> None:
    with pytest.raises(AuditConfigurationError, match=r"'ledger'.*'history_index'"):
        ledger(sa.MetaData(), history_index="no")


# --- domains ----------------------------------------------------------------------------------


def test_not_null_domain_is_mirrored_as_its_nullable_base_type(engine: sa.Engine) -> None:
    run(engine, "CREATE DOMAIN code AS varchar(8) NOT NULL CHECK (VALUE <> '')")
    code = postgresql.DOMAIN("code", sa.String(8), not_null=True, create_type=False)
    mood = postgresql.ENUM("happy", "sad", name="mood")
    table = sa.Table(
        "item",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", code, nullable=False),
        sa.Column("codes", postgresql.ARRAY(code)),
        sa.Column("mood", mood),
        info={"audit.options": {"enabled": True}},
    )
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, code="a", codes=["b"], mood="sad"))
        connection.execute(sa.text("TRUNCATE item"))
    types = (
        "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' "
        "ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'item_audit'::regclass "
        "AND attname IN ('code', 'codes', 'mood')"
    )
    assert scalar(engine, types) == (
        "code character varying(8), codes character varying(8)[], mood mood"
    )
    assert scalar(engine, "SELECT string_agg(audit_operation, '') FROM item_audit") == "IT"


def test_reflected_domain_column_added_to_an_audit_table_with_rows(engine: sa.Engine) -> None:
    run(
        engine,
        "CREATE DOMAIN positive AS integer NOT NULL CHECK (VALUE > 0)",
        "CREATE TABLE stock (id integer PRIMARY KEY)",
    )
    metadata = sa.MetaData()
    metadata.reflect(engine)
    audit(metadata.tables["stock"])
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO stock VALUES (1)"))
        connection.execute(sa.text("ALTER TABLE stock ADD COLUMN qty positive DEFAULT 1"))
    metadata = sa.MetaData()
    metadata.reflect(engine)
    stock = metadata.tables["stock"]
    assert isinstance(stock.c.qty.type, postgresql.DOMAIN)
    audit_table = audit(stock)
    assert isinstance(audit_table.c.qty.type, sa.Integer)
    with engine.begin() as connection:  # the migration autogenerate writes for the audit table
        migration = Operations(MigrationContext.configure(connection))
        migration.add_column("stock_audit", sa.Column("qty", audit_table.c.qty.type))
    install_audit_triggers(metadata, engine)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE stock SET qty = 2"))
        connection.execute(sa.text("TRUNCATE stock"))
    assert (
        scalar(
            engine,
            "SELECT string_agg(coalesce(qty, 0)::text, ',' ORDER BY audit_id) FROM stock_audit",
        )
        == "0,2,0"
    )
