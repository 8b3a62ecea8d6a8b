"""A dedicated, non-superuser audit owner holds exactly what the trigger function needs.

The trigger function is SECURITY DEFINER: it runs as the audit owner.  Row mode (and the key
trigger in statement mode) looks a moved key's old row up in the audited table, and ``truncate_rows`` copies the rows a TRUNCATE removes,
reading every partition and inheritance child: both read as the owner, so the grant step gives
the owner SELECT on the audited table and on all its descendants, at any depth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from sqlalchemy_postgresql_audit import (
    AUDIT_TABLE_KEY,
    SPEC_KEY,
    AuditConfigurationError,
    install_audit_triggers,
)
from sqlalchemy_postgresql_audit.cli.check import table_states
from sqlalchemy_postgresql_audit.install.grants import grant_least_privilege


def run(engine: sa.Engine, *statements: str) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement))


def operations(admin: sa.Engine, table: sa.Table) -> list[tuple[Any, ...]]:
    audit = table.info[AUDIT_TABLE_KEY]
    with admin.connect() as connection:
        rows = connection.execute(
            sa.select(audit.c.audit_operation, audit.c.id).order_by(audit.c.audit_id)
        )
        return [tuple(row) for row in rows]


@pytest.fixture
def roles(make_role: Callable[[str], str]) -> dict[str, str]:
    return {kind: make_role(f"audit_{kind}") for kind in ("owner", "writer")}


@pytest.fixture
def admin(database_url: URL) -> Iterator[sa.Engine]:
    engine = sa.create_engine(database_url)
    yield engine
    engine.dispose()


def deploy(
    admin: sa.Engine, database_url: URL, roles: dict[str, str], table: sa.Table, *setup: str
) -> sa.Engine:
    table.metadata.create_all(admin)
    run(admin, *setup)
    grant_least_privilege(admin, table.metadata, writers=[roles["writer"]], owner=roles["owner"])
    return sa.create_engine(database_url.set(username=roles["writer"]))


@pytest.mark.parametrize("mode", ["row", "statement"])
def test_a_key_change_is_audited_with_a_dedicated_owner(
    admin: sa.Engine, database_url: URL, roles: dict[str, str], mode: str
) -> None:
    """Statement mode: the key trigger's call looks the old key up in the table as the owner."""
    table = sa.Table(
        "keyed",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Text),
        info={"audit.options": {"enabled": True, "mode": mode}},
    )
    writer = deploy(admin, database_url, roles, table)
    try:
        run(writer, "INSERT INTO keyed VALUES (1, 'a')", "UPDATE keyed SET id = 2 WHERE id = 1")
    finally:
        writer.dispose()
    # the old key is recorded as moved away ('K'), the new one as updated
    assert operations(admin, table) == [("I", 1), ("K", 1), ("U", 2)]


def test_truncate_of_nested_partitions_is_copied_with_a_dedicated_owner(
    admin: sa.Engine, database_url: URL, roles: dict[str, str]
) -> None:
    table = sa.Table(
        "parted",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Text),
        postgresql_partition_by="RANGE (id)",
        info={"audit.options": {"enabled": True, "mode": "row", "truncate_rows": True}},
    )
    writer = deploy(
        admin,
        database_url,
        roles,
        table,
        "CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (10)",
        "CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (10) TO (100)"
        " PARTITION BY RANGE (id)",
        "CREATE TABLE parted_top PARTITION OF parted_high FOR VALUES FROM (10) TO (100)",
    )
    try:
        run(writer, "INSERT INTO parted VALUES (1, 'a'), (50, 'b')", "TRUNCATE parted")
    finally:
        writer.dispose()
    truncated = sorted(key for op, key in operations(admin, table) if op == "T")
    assert truncated == [1, 50]


def test_truncate_rows_of_an_inheritance_child_is_copied_with_a_dedicated_owner(
    admin: sa.Engine, database_url: URL, roles: dict[str, str]
) -> None:
    table = sa.Table(
        "base",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Text),
        info={"audit.options": {"enabled": True, "truncate_rows": True}},
    )
    writer = deploy(
        admin,
        database_url,
        roles,
        table,
        "CREATE TABLE base_child () INHERITS (base)",
        "CREATE TABLE base_grandchild () INHERITS (base_child)",
    )
    try:
        run(admin, f'GRANT INSERT ON base_grandchild TO "{roles["writer"]}"')
        run(writer, "INSERT INTO base VALUES (1, 'a')")
        run(writer, "INSERT INTO base_grandchild VALUES (7, 'g')")
        run(writer, "TRUNCATE base")
    finally:
        writer.dispose()
    truncated = sorted(key for op, key in operations(admin, table) if op == "T")
    assert truncated == [1, 7]


def test_an_audit_table_another_role_made_first_is_not_adopted(
    admin: sa.Engine, database_url: URL, roles: dict[str, str]
) -> None:
    table = sa.Table(
        "orders",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={"audit.options": {"enabled": True}},
    )
    audit = table.info[AUDIT_TABLE_KEY]
    run(admin, f'GRANT CREATE ON SCHEMA public TO "{roles["writer"]}"')
    writer = sa.create_engine(database_url.set(username=roles["writer"]))
    try:
        audit.create(writer)  # the right columns and the history index, owned by the writer
        run(writer, "GRANT ALL ON orders_audit TO PUBLIC")
    finally:
        writer.dispose()
    with pytest.raises(AuditConfigurationError, match="orders_audit is owned by") as caught:
        table.metadata.create_all(admin)
    assert roles["writer"] in str(caught.value)
    with admin.connect() as connection:
        functions = connection.execute(
            sa.text("SELECT count(*) FROM pg_proc WHERE proname LIKE '%orders_audit%'")
        ).scalar_one()
    assert functions == 0


def orders() -> sa.Table:
    return sa.Table(
        "orders",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("note", sa.Text),
        info={"audit.options": {"enabled": True, "exclude_columns": ["note"]}},
    )


def check_reasons(admin: sa.Engine, table: sa.Table) -> tuple[str, list[str]]:
    with admin.connect() as connection:
        (state,) = table_states(connection, [(table, table.info[SPEC_KEY])])
    return state.status, [reason for item in state.objects for reason in item.reasons]


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("ALTER TABLE orders_audit OWNER TO {writer}", "orders_audit is owned by {writer}"),
        (
            "CREATE RULE quiet AS ON INSERT TO orders_audit DO INSTEAD NOTHING",
            "rule quiet on orders_audit",
        ),
        (
            "ALTER TABLE orders_audit ENABLE ROW LEVEL SECURITY",
            "row-level security is enabled on orders_audit",
        ),
        (
            "ALTER TABLE orders ADD COLUMN secret text",
            "column secret of orders is neither mirrored nor excluded",
        ),
    ],
)
def test_check_reports_what_rewrites_history_or_leaves_changes_unrecorded(
    admin: sa.Engine, roles: dict[str, str], tamper: str, reason: str
) -> None:
    table = orders()
    table.metadata.create_all(admin)
    assert check_reasons(admin, table) == ("ok", [])
    writer = f'"{roles["writer"]}"'
    run(admin, tamper.format(writer=writer))
    status, reasons = check_reasons(admin, table)
    assert status == "outdated"
    assert any(reason.format(writer=roles["writer"]) in r for r in reasons), reasons


def test_a_writer_that_may_set_session_replication_role_is_refused_by_name(
    admin: sa.Engine, make_role: Callable[[str], str], roles: dict[str, str]
) -> None:
    with admin.connect() as connection:
        if connection.dialect.server_version_info < (15,):
            pytest.skip("SET on a parameter is granted from PostgreSQL 15 on")
    group = make_role("replicators")
    run(
        admin,
        f'GRANT SET ON PARAMETER session_replication_role TO "{group}"',
        f'GRANT "{group}" TO "{roles["writer"]}"',
    )
    table = orders()
    table.metadata.create_all(admin)
    with pytest.raises(sa.exc.DBAPIError, match="session_replication_role") as caught:
        grant_least_privilege(admin, table.metadata, writers=[roles["writer"]])
    assert f"role {roles['writer']} cannot be made a writer" in str(caught.value)


def test_row_mode_is_refused_on_a_table_with_inheritance_children(admin: sa.Engine) -> None:
    """Row triggers on a parent never fire for its children's rows: UPDATE and DELETE through
    the parent would go unaudited, so row mode is refused, naming the table and its children."""
    table = sa.Table(
        "ledger",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={"audit.options": {"enabled": True, "mode": "row"}},
    )
    table.metadata.create_all(admin)
    run(admin, "CREATE TABLE ledger_2025 () INHERITS (ledger)")
    with pytest.raises(AuditConfigurationError, match="inheritance children") as caught:
        install_audit_triggers(table.metadata, admin)
    assert "ledger_2025" in str(caught.value)
    assert "ledger" in str(caught.value).split(":")[0]


def test_check_reports_an_inheritance_child_attached_to_a_row_mode_table_later(
    admin: sa.Engine,
) -> None:
    table = sa.Table(
        "ledger",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        info={"audit.options": {"enabled": True, "mode": "row"}},
    )
    table.metadata.create_all(admin)
    assert check_reasons(admin, table) == ("ok", [])
    run(admin, "CREATE TABLE ledger_2025 () INHERITS (ledger)")
    status, reasons = check_reasons(admin, table)
    assert status == "outdated"
    assert any("inheritance child ledger_2025" in r for r in reasons), reasons


def test_check_reports_a_writer_granted_set_on_session_replication_role_after_the_grant_step(
    admin: sa.Engine, make_role: Callable[[str], str], roles: dict[str, str]
) -> None:
    with admin.connect() as connection:
        if connection.dialect.server_version_info < (15,):
            pytest.skip("SET on a parameter is granted from PostgreSQL 15 on")
    table = orders()
    table.metadata.create_all(admin)
    grant_least_privilege(admin, table.metadata, writers=[roles["writer"]])
    assert check_reasons(admin, table) == ("ok", [])
    group = make_role("replicators")
    run(
        admin,
        f'GRANT SET ON PARAMETER session_replication_role TO "{group}"',
        f'GRANT "{group}" TO "{roles["writer"]}"',
    )
    status, reasons = check_reasons(admin, table)
    assert status == "outdated"
    assert f"{roles['writer']} may SET session_replication_role" in " ".join(reasons)


def test_the_owner_reads_the_audited_table_only_where_the_function_does(
    admin: sa.Engine, roles: dict[str, str]
) -> None:
    """Statement mode without ``truncate_rows`` and without a key trigger (no UPDATE recorded)
    reads only transition tables: no SELECT."""
    table = orders()
    table.info["audit.options"]["operations"] = ["INSERT", "DELETE"]
    table.metadata.create_all(admin)
    grant_least_privilege(admin, table.metadata, writers=[roles["writer"]], owner=roles["owner"])
    with admin.connect() as connection:
        reads = connection.execute(
            sa.text("SELECT has_table_privilege(:owner, 'orders', 'SELECT')"),
            {"owner": roles["owner"]},
        ).scalar_one()
    assert reads is False
