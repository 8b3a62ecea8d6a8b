"""Which tables a publication publishes, and whole: PostgreSQL 15+ can publish part of a table
(a row filter, a column list), whose other rows or columns then never reach a consumer.  For
the CDC publication and the context publication alike."""

from __future__ import annotations

from .sql import literal, qualified, quote, regclass

#: Of a ``pg_publication_rel`` row ``r``: the table is published whole, with neither a row
#: filter nor a column list.  Read through ``to_jsonb`` so the columns need not exist (14).
WHOLE = (
    "((pg_catalog.to_jsonb(r) OPERATOR(pg_catalog.->>) 'prqual') IS NULL "
    "AND (pg_catalog.to_jsonb(r) OPERATOR(pg_catalog.->>) 'prattrs') IS NULL)"
)


def member(publication: str, schema: str | None, table: str, *, narrowed: bool = False) -> str:
    """Whether the table is in the publication (``narrowed``: only in part)."""
    return (
        "EXISTS (SELECT FROM pg_catalog.pg_publication_rel r "
        "JOIN pg_catalog.pg_publication p ON p.oid OPERATOR(pg_catalog.=) r.prpubid "
        f"WHERE p.pubname OPERATOR(pg_catalog.=) {literal(publication)} "
        f"AND r.prrelid OPERATOR(pg_catalog.=) {regclass(schema, table)}"
        + (f" AND NOT {WHOLE}" if narrowed else "")
        + ")"
    )


def publish_whole(publication: str, schema: str | None, table: str) -> str:
    """PL/pgSQL statements that publish the table whole: one published in part by hand leaves
    and comes back (in the caller's transaction)."""
    return (
        f"  IF {member(publication, schema, table, narrowed=True)} THEN\n"
        f"    ALTER PUBLICATION {quote(publication)} DROP TABLE {qualified(schema, table)};\n"
        "  END IF;\n"
        f"  IF NOT {member(publication, schema, table)} THEN\n"
        f"    ALTER PUBLICATION {quote(publication)} ADD TABLE {qualified(schema, table)};\n"
        "  END IF;\n"
    )
