"""SQL text of the archive server: a publication of the audit tables on the primary, a
subscription on the archive (``lifecycle.archive`` says why each option is what it is)."""

from __future__ import annotations

from collections.abc import Sequence

from ..declare.spec import AUDIT_OPERATION
from .guard import PURGE_OPERATION_CODE
from .partitioning import RETENTION_OPERATION_CODE
from .sql import literal, qualified, quote

#: INSERT and UPDATE only: retention's DETACH and DROP are not replicated anyway, and a purge's
#: DELETE must not reach the archive either; an erasure's UPDATE does.
PUBLISH = "insert, update"


def _tables(tables: Sequence[tuple[str | None, str]], row_filter: bool) -> str:
    """The published tables; with ``row_filter`` (PostgreSQL 15+) without the markers that
    say history was removed here (retention ``X``, purge ``P``): the archive keeps it."""
    operation = quote(AUDIT_OPERATION)
    where = (  # NOT IN over a varchar is refused in a row filter (it casts to text)
        f" WHERE ({operation} <> {literal(RETENTION_OPERATION_CODE)} "
        f"AND {operation} <> {literal(PURGE_OPERATION_CODE)})"
        if row_filter
        else ""
    )
    return ", ".join(f"{qualified(schema, name)}{where}" for schema, name in tables)


def create_publication(
    name: str, tables: Sequence[tuple[str | None, str]], row_filter: bool
) -> str:
    return (
        f"CREATE PUBLICATION {quote(name)} FOR TABLE {_tables(tables, row_filter)} "
        f"WITH (publish = {literal(PUBLISH)}, publish_via_partition_root = true)"
    )


def set_publication_tables(
    name: str, tables: Sequence[tuple[str | None, str]], row_filter: bool
) -> str:
    return f"ALTER PUBLICATION {quote(name)} SET TABLE {_tables(tables, row_filter)}"


def set_publication_options(name: str) -> str:
    return (
        f"ALTER PUBLICATION {quote(name)} SET "
        f"(publish = {literal(PUBLISH)}, publish_via_partition_root = true)"
    )


def create_subscription(
    name: str, conninfo: str, publication: str, create_slot: bool, slot_name: str
) -> str:
    return (
        f"CREATE SUBSCRIPTION {quote(name)} CONNECTION {literal(conninfo)} "
        f"PUBLICATION {quote(publication)} WITH (create_slot = {str(create_slot).lower()}, "
        f"slot_name = {literal(slot_name)}, copy_data = true)"
    )


def drop_subscription(name: str) -> str:
    return f"DROP SUBSCRIPTION IF EXISTS {quote(name)}"


def conninfo(parts: dict[str, str]) -> str:
    """A libpq ``key=value`` connection string: every value single-quoted, with ``\\`` and
    ``'`` escaped as libpq reads them."""

    def value(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{key}={value(text)}" for key, text in parts.items())


#: Bound: ``name``.  On the archive: the subscription's tables whose initial copy has not
#: finished (``r`` ready and ``s`` synchronized have their rows), and the subscription's
#: existence (no row at all: it is gone).
UNSYNCED = (
    "SELECT s.oid IS NOT NULL AS subscribed, pg_catalog.count(r.srrelid) FILTER "
    "(WHERE r.srsubstate OPERATOR(pg_catalog.<>) ALL ('{r,s}'::pg_catalog.\"char\"[])) "
    "AS copying FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_subscription AS s "
    "ON s.subname OPERATOR(pg_catalog.=) :name "
    "AND s.subdbid OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database AS d "
    "WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()) "
    "LEFT JOIN pg_catalog.pg_subscription_rel AS r ON r.srsubid OPERATOR(pg_catalog.=) s.oid "
    "GROUP BY s.oid"
)
