"""The SQL of design 1's joins: a table published for the first time holds the subscription at
the transaction that published it until the consumer has seeded the table's replica.

Source side: the joins table (``joins_table``: named after the context table, so two slots with
context tables of their own never share one), next to the context table and in the context
publication (so its rows are replicated in commit order with every change), gets one row per
table published
for the first time, written by the installing transaction beside the ``B`` version of each of
the table's rows.  Writers have no right on it.

Target side: the replica of that table gets a trigger (``ENABLE ALWAYS``: the apply worker fires
it) that raises unless the target recorded the join as seeded (``audit_cdc_seeded_joins``).  The
apply worker then retries the installing transaction until the consumer has copied that
transaction's ``B`` rows into the replica: no later change of the table is applied to a
replica that lacks its rows.
"""

from __future__ import annotations

from ..declare.naming import fit_identifier
from .publication_members import publish_whole
from .sql import SEARCH_PATH, dollar_quote, literal, qualified, quote

#: Appended to the context table's name: one row per table published for the first time, on the
#: source (replicated to the target).
JOINS_SUFFIX = "_joins"
#: The joins whose tables the consumer seeded, on the target.
SEEDED_JOINS_TABLE = "audit_cdc_seeded_joins"
#: The target's trigger holding the apply worker at a join not seeded yet.
JOIN_TRIGGER = "audit_cdc_join_apply"


def joins_table(context_table: str) -> str:
    """The joins table of the context table ``context_table`` (``audit_cdc_context_joins``)."""
    return fit_identifier(context_table + JOINS_SUFFIX)


def create_joins_table(schema: str | None, context_table: str, comment: str) -> str:
    """``table_name``: the table's qualified name as text (``regclass`` input); ``xact``: the id
    of the transaction that published it and wrote its ``B`` rows, as the 32 bits a row's
    ``xmin`` and ``pg_publication_rel.xmin`` hold (the full id carries the epoch in its high bits
    on a server past 2^32 transactions, and would never equal them)."""
    name = qualified(schema, joins_table(context_table))
    return (
        f"CREATE TABLE IF NOT EXISTS {name} (\n"
        "  table_name pg_catalog.text NOT NULL,\n"
        "  xact bigint NOT NULL\n"
        "    DEFAULT CAST(CAST(pg_catalog.pg_current_xact_id() AS text) AS bigint)"
        " OPERATOR(pg_catalog.%) 4294967296,\n"
        "  joined_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
        "  PRIMARY KEY (table_name, xact)\n"
        f");\nCOMMENT ON TABLE {name} IS {literal(comment)}"
    )


def publish_joins_table(publication: str, schema: str | None, context_table: str) -> str:
    """Add the joins table, whole, to the context publication (insert-only)."""
    body = publish_whole(publication, schema, joins_table(context_table))
    return f"DO $audit$\nBEGIN\n{body}END\n$audit$"


def record_join(schema: str | None, context_table: str, table_name: str) -> str:
    """In the transaction publishing ``table_name`` (regclass text) and writing its ``B`` rows."""
    return (
        f"INSERT INTO {qualified(schema, joins_table(context_table))} (table_name) "
        f"VALUES ({literal(table_name)}) ON CONFLICT DO NOTHING"
    )


def create_seeded_joins_table(schema: str | None) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(schema, SEEDED_JOINS_TABLE)} (\n"
        "  table_name pg_catalog.text NOT NULL,\n  xact bigint NOT NULL,\n"
        "  seeded_rows bigint NOT NULL,\n"
        "  seeded_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
        "  PRIMARY KEY (table_name, xact)\n)"
    )


def join_trigger(schema: str | None, context_table: str) -> tuple[str, ...]:
    """Target side: the replicated join row passes only once the consumer seeded its table."""
    function = qualified(schema, JOIN_TRIGGER)
    # The seeded joins are next to the joins table (the function's search_path is pg_catalog).
    seeded = (
        "'SELECT EXISTS (SELECT FROM %I.%I AS s WHERE s.table_name = $1 AND s.xact = $2)', "
        f"TG_TABLE_SCHEMA, {literal(SEEDED_JOINS_TABLE)}"
    )
    body = (
        "\nDECLARE\n  seeded pg_catalog.bool;\nBEGIN\n"
        f"  EXECUTE pg_catalog.format({seeded})\n"
        "    INTO seeded USING NEW.table_name, NEW.xact;\n"
        "  IF NOT seeded THEN\n"
        "    RAISE EXCEPTION 'table % joined change-data-capture in source transaction %, and "
        "the replica here lacks its rows: its changes (and every later one) wait until the "
        "consumer seeds it; run the consumer (sqlalchemy-postgresql-audit cdc run) with models "
        "that declare it', NEW.table_name, NEW.xact\n"
        "      USING ERRCODE = 'object_not_in_prerequisite_state';\n"
        "  END IF;\n  RETURN NEW;\nEND\n"
    )
    joins = joins_table(context_table)
    on = qualified(schema, joins)
    return (
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger\nLANGUAGE plpgsql\n"
        f"SET search_path TO {SEARCH_PATH}\nAS {dollar_quote(body)}",
        f"DROP TRIGGER IF EXISTS {quote(JOIN_TRIGGER)} ON {on}",
        f"CREATE TRIGGER {quote(JOIN_TRIGGER)} BEFORE INSERT ON {on}\n"
        f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        f"ALTER TABLE {on} ENABLE ALWAYS TRIGGER {quote(JOIN_TRIGGER)}",
    )


def joins_of(schema: str | None, context_table: str) -> str:
    """Bound: ``table`` (regclass text).  The source's joins of that table, oldest first."""
    return (
        f"SELECT j.table_name, j.xact FROM {qualified(schema, joins_table(context_table))} AS j "
        "WHERE pg_catalog.to_regclass(j.table_name) OPERATOR(pg_catalog.=) "
        "pg_catalog.to_regclass(:table) ORDER BY j.xact"
    )


def all_joins(schema: str | None, context_table: str) -> str:
    joins = qualified(schema, joins_table(context_table))
    return f"SELECT j.table_name, j.xact FROM {joins} AS j"


def seeded_joins(schema: str | None) -> str:
    return f"SELECT s.table_name, s.xact FROM {qualified(schema, SEEDED_JOINS_TABLE)} AS s"


def record_seeded(schema: str | None) -> str:
    """Bound: ``table_name``, ``xact``, ``seeded_rows``."""
    return (
        f"INSERT INTO {qualified(schema, SEEDED_JOINS_TABLE)} (table_name, xact, seeded_rows) "
        "VALUES (:table_name, :xact, :seeded_rows) ON CONFLICT DO NOTHING"
    )


#: Bound: ``subscription``, ``table`` (regclass text).  Whether the subscription applies the
#: table's changes (it is in ``pg_subscription_rel``: refreshed since the table joined).
SUBSCRIBES = (
    "SELECT EXISTS (SELECT FROM pg_catalog.pg_subscription_rel AS r "
    "JOIN pg_catalog.pg_subscription AS s ON s.oid OPERATOR(pg_catalog.=) r.srsubid "
    "WHERE s.subname OPERATOR(pg_catalog.=) :subscription "
    "AND r.srrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(:table))"
)
#: Bound: ``audit`` (regclass text).  Whether the consumer's role may read the audit table.
MAY_READ = "SELECT pg_catalog.has_table_privilege(pg_catalog.to_regclass(:audit), 'SELECT')"
