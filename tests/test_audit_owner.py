"""A dedicated, non-superuser audit owner holds exactly what the trigger function needs.

The trigger function is SECURITY DEFINER: it runs as the audit owner.  Row mode looks a moved
key's old row up in the audited table, and ``truncate_rows`` copies the rows a TRUNCATE removes,
reading every partition and inheritance child: both read as the owner, so the grant step gives
the owner SELECT on the audited table and on all its descendants, at any depth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY
from sqlalchemy_postgresql_audit.grants import grant_least_privilege


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


def test_row_mode_key_change_is_audited_with_a_dedicated_owner(
    admin: sa.Engine, database_url: URL, roles: dict[str, str]
) -> None:
    table = sa.Table(
        "keyed",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v", sa.Text),
        info={"audit.options": {"enabled": True, "mode": "row"}},
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
