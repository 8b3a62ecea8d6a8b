"""The SQL of design 1's seed from the install's baseline (``cdc.install_rows``): the ``B``
versions the transaction that published a table wrote into the source's audit table, found by
that transaction's id, and their copy into a new subscription's replica and trail.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..declare.spec import AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP
from .baseline import BASELINE_CODE
from .sql import literal, qualified, quote

#: The id of the transaction that added the table to the publication (its row of
#: ``pg_publication_rel``), when the slot has not passed it: the slot still keeps the catalog
#: of before it (``catalog_xmin``), so its stream starts before that transaction's commit
#: (``age``: the larger, the older); and the consumer's role may read the audit table.  NULL
#: otherwise.
INSTALL_TRANSACTION = (
    "SELECT CAST(CAST(r.xmin AS text) AS bigint) FROM pg_catalog.pg_publication_rel AS r "
    "JOIN pg_catalog.pg_publication AS p ON p.oid OPERATOR(pg_catalog.=) r.prpubid "
    "JOIN pg_catalog.pg_replication_slots AS s ON s.slot_name OPERATOR(pg_catalog.=) :slot "
    "WHERE p.pubname OPERATOR(pg_catalog.=) :publication "
    "AND r.prrelid OPERATOR(pg_catalog.=) CAST(:table AS regclass) "
    "AND s.catalog_xmin IS NOT NULL "
    "AND pg_catalog.age(s.catalog_xmin) OPERATOR(pg_catalog.>=) pg_catalog.age(r.xmin) "
    "AND pg_catalog.has_table_privilege(pg_catalog.to_regclass(:audit), 'SELECT')"
)

#: Bound: ``publication``, ``table`` (regclass text).  The id of the transaction that added the
#: table to the publication (its row of ``pg_publication_rel``), whatever the slot's position.
PUBLISHED_BY = (
    "SELECT CAST(CAST(r.xmin AS text) AS bigint) FROM pg_catalog.pg_publication_rel AS r "
    "JOIN pg_catalog.pg_publication AS p ON p.oid OPERATOR(pg_catalog.=) r.prpubid "
    "WHERE p.pubname OPERATOR(pg_catalog.=) :publication "
    "AND r.prrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(:table)"
)


def other_versions(schema: str | None, audit_table: str) -> str:
    """Whether the source's audit table holds a row another transaction wrote (the trigger's
    trail before a switch to CDC, a purge's marker, a later baseline): then the install's
    baseline skipped rows that had a version, or is not the only state to start from."""
    return (
        f"SELECT EXISTS (SELECT FROM {qualified(schema, audit_table)} AS a "
        "WHERE CAST(CAST(a.xmin AS text) AS bigint) OPERATOR(pg_catalog.<>) :xid)"
    )


def copy_install_rows(
    schema: str | None, audit_table: str, columns: Sequence[str], joins: str | None
) -> str:
    """The install's ``B`` versions (``columns`` of the audit table, ``audit_id`` first).

    Bound: ``xid``, and with ``joins`` (the qualified joins table) ``table`` (regclass text).
    Found by the transaction that wrote them (``xmin``) or, where a joins row names it, by
    that transaction's timestamp (the versions' ``now()`` is the joins row's ``joined_at``): a
    drain of the DEFAULT partition by ``maintain``, or a conversion to a partitioned audit
    table, moves them into other rows with another ``xmin`` but the same values."""
    names = ", ".join(quote(c) for c in columns)
    written = "CAST(CAST(a.xmin AS text) AS bigint) = %(xid)s"
    if joins is not None:
        joined_at = (
            f"(SELECT j.joined_at FROM {joins} AS j WHERE j.xact = %(xid)s "
            "AND pg_catalog.to_regclass(j.table_name) = pg_catalog.to_regclass(%(table)s))"
        )
        written = f"({written} OR a.{quote(AUDIT_TIMESTAMP)} = {joined_at})"
    return (
        f"COPY (SELECT {names} FROM {qualified(schema, audit_table)} AS a "
        f"WHERE a.{quote(AUDIT_OPERATION)} = {literal(BASELINE_CODE)} AND {written} "
        f"ORDER BY a.{quote(AUDIT_ID)}) TO STDOUT"
    )


#: The temporary table the install's versions are copied into on the target.
INSTALL_ROWS = "audit_cdc_install_rows"
#: Dropped after each table: the next one's rows have other columns.
DROP_INSTALL_ROWS = f"DROP TABLE {quote(INSTALL_ROWS)}"


def install_rows_table(
    schema: str | None, audit_table: str, columns: Sequence[str]
) -> tuple[str, str]:
    """A temporary table shaped like the audit table's ``columns``, and the COPY filling it."""
    names = ", ".join(quote(c) for c in columns)
    return (
        f"CREATE TEMPORARY TABLE {quote(INSTALL_ROWS)} ON COMMIT DROP AS "
        f"SELECT {names} FROM {qualified(schema, audit_table)} WITH NO DATA",
        f"COPY {quote(INSTALL_ROWS)} ({names}) FROM STDIN",
    )


def insert_install_rows(
    schema: str | None,
    table: str,
    audit_schema: str | None,
    audit_table: str,
    replica_columns: Sequence[str],
    audit_columns: Sequence[str],
) -> str:
    """Each install version as a replica row and as the same ``B`` version in the target's
    trail, in the source's ``audit_id`` order; returns how many."""
    rows = quote(INSTALL_ROWS)
    order = f" ORDER BY {quote(AUDIT_ID)}"
    replica_names = ", ".join(quote(c) for c in replica_columns)
    audit_names = ", ".join(quote(c) for c in audit_columns)
    return (
        f"WITH added AS (INSERT INTO {qualified(schema, table)} ({replica_names}) "
        f"SELECT {replica_names} FROM {rows} RETURNING 1), "
        f"baseline AS (INSERT INTO {qualified(audit_schema, audit_table)} ({audit_names}) "
        f"SELECT {audit_names} FROM {rows}{order} RETURNING 1) "
        "SELECT (SELECT count(*) FROM added), (SELECT count(*) FROM baseline)"
    )


def clear_rows(schema: str | None, table: str) -> str:
    """Target side, before the versions of a table's join go in: the replica's rows of an
    earlier life of the table (published before, left or dropped, published again): the
    join's versions are its whole state, and DROP TABLE or leaving the publication never
    reached the replica."""
    return f"DELETE FROM {qualified(schema, table)}"
