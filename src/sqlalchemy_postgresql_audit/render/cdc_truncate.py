"""The guard that refuses a TRUNCATE of one partition of a partitioned CDC table.

The CDC publication publishes partitions as their root (``publish_via_partition_root``), and
then PostgreSQL's ``pgoutput`` does not send a TRUNCATE addressed to a partition at all: its
rows would vanish from the source with nothing in the trail.  So each partition (at any depth)
gets a ``BEFORE TRUNCATE`` statement trigger that raises, naming the table, unless the same
statement truncates the root, which is published.

PostgreSQL fires the ``BEFORE TRUNCATE`` triggers of a statement in the order of its relations:
the tables named first, then the partitions it reaches through them.  So the root carries two
triggers of the same function: one ``BEFORE`` that notes the root in a transaction-local
setting, read by the partitions' guards that fire after it, and one ``AFTER`` that clears it
(an error in between rolls the setting back with the statement's transaction or savepoint).
A partition detached since is no partition: its guard lets the TRUNCATE through.

A partition created or attached after installing has no guard until the next install; ``check``
reports it (``GUARDS``).
"""

from __future__ import annotations

from .partitions import descendants_query, for_each_child
from .sql import SEARCH_PATH, dollar_quote, literal, qualified, quote, regclass

#: The function, one per schema holding partitioned CDC tables, and its triggers.
GUARD_FUNCTION = "audit_cdc_truncate_guard"
ROOT_BEGIN = "audit_cdc_truncate_begin"
ROOT_END = "audit_cdc_truncate_end"
PARTITION_GUARD = "audit_cdc_partition_truncate"
#: The transaction-local setting: ``,``-separated oids of the roots being truncated.
TRUNCATING = "audit.cdc_truncating"

_EQ = "OPERATOR(pg_catalog.=)"
_CAT = "OPERATOR(pg_catalog.||)"


def guard_function(schema: str | None) -> str:
    """``CREATE OR REPLACE`` the guard function in ``schema``."""
    setting = literal(TRUNCATING)
    body = (
        "\nDECLARE\n"
        f"  roots text := COALESCE(pg_catalog.current_setting({setting}, true), '');\n"
        "BEGIN\n"
        f"  IF TG_ARGV[0] {_EQ} 'begin' THEN\n"
        f"    PERFORM pg_catalog.set_config({setting}, roots {_CAT} ',' {_CAT} "
        "TG_RELID::pg_catalog.text, true);\n"
        "    RETURN NULL;\n"
        f"  ELSIF TG_ARGV[0] {_EQ} 'end' THEN\n"
        f"    PERFORM pg_catalog.set_config({setting}, '', true);\n"
        "    RETURN NULL;\n"
        "  END IF;\n"
        "  IF NOT (SELECT c.relispartition FROM pg_catalog.pg_class c "
        f"WHERE c.oid {_EQ} TG_RELID)\n"
        "     OR EXISTS (SELECT FROM pg_catalog.pg_partition_ancestors(TG_RELID) a\n"
        f"       WHERE a.relid::pg_catalog.oid::pg_catalog.text {_EQ}\n"
        "         ANY (pg_catalog.string_to_array(roots, ','))) THEN\n"
        "    RETURN NULL;\n"
        "  END IF;\n"
        "  RAISE EXCEPTION 'TRUNCATE of partition % of change-data-capture table % is not "
        "captured: PostgreSQL does not publish a TRUNCATE of one partition when the "
        "publication publishes partitions as their root', TG_RELID::pg_catalog.regclass,\n"
        "    pg_catalog.pg_partition_root(TG_RELID)\n"
        "    USING ERRCODE = 'feature_not_supported',\n"
        "      HINT = 'TRUNCATE the table itself, or DELETE the partition''s rows.';\n"
        "END\n"
    )
    return (
        f"CREATE OR REPLACE FUNCTION {qualified(schema, GUARD_FUNCTION)}() RETURNS trigger\n"
        f"LANGUAGE plpgsql\nSET search_path TO {SEARCH_PATH}\nAS {dollar_quote(body)}"
    )


def install_guard(schema: str | None, table: str) -> str:
    """On a partitioned table: the root's two triggers and every partition's guard (replaced,
    so a disabled one is enabled again).  Nothing on a table that is not partitioned."""
    root = regclass(schema, table)
    function = qualified(schema, GUARD_FUNCTION)
    on = qualified(schema, table)
    create = literal(f"CREATE OR REPLACE TRIGGER {quote(PARTITION_GUARD)} BEFORE TRUNCATE ON ")
    execute = literal(f" FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
    body = (
        "\nDECLARE\n  child pg_catalog.oid;\nBEGIN\n"
        f"  IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid {_EQ} {root}) "
        f"OPERATOR(pg_catalog.<>) 'p' THEN\n    RETURN;\n  END IF;\n"
        f"  CREATE OR REPLACE TRIGGER {quote(ROOT_BEGIN)} BEFORE TRUNCATE ON {on}\n"
        f"    FOR EACH STATEMENT EXECUTE FUNCTION {function}('begin');\n"
        f"  CREATE OR REPLACE TRIGGER {quote(ROOT_END)} AFTER TRUNCATE ON {on}\n"
        f"    FOR EACH STATEMENT EXECUTE FUNCTION {function}('end');\n"
        f"{for_each_child(descendants_query(root), create, execute)}"
        "END;\n"
    )
    return f"DO {dollar_quote(body)}"


def drop_guard(schema: str | None, table: str) -> str:
    """Remove the guard's triggers from the table and its partitions (a table leaving CDC)."""
    root = regclass(schema, table)
    on = qualified(schema, table)
    drop = literal(f"DROP TRIGGER IF EXISTS {quote(PARTITION_GUARD)} ON ")
    body = (
        "\nDECLARE\n  child pg_catalog.oid;\nBEGIN\n"
        f"  IF pg_catalog.to_regclass({literal(on)}) IS NULL THEN\n    RETURN;\n  END IF;\n"
        f"  DROP TRIGGER IF EXISTS {quote(ROOT_BEGIN)} ON {on};\n"
        f"  DROP TRIGGER IF EXISTS {quote(ROOT_END)} ON {on};\n"
        f"{for_each_child(descendants_query(root), drop, literal(''))}"
        "END;\n"
    )
    return f"DO {dollar_quote(body)}"


#: Bound: ``table`` (regclass text), ``function`` (regprocedure text).  For a partitioned
#: table, the table and each partition with the guard triggers it carries enabled, as
#: installed (the right timing, statement level, calling the guard function).
GUARDS = (
    "WITH root(oid) AS (SELECT pg_catalog.to_regclass(:table)::pg_catalog.oid)\n"
    "SELECT r.oid::pg_catalog.regclass::pg_catalog.text AS relation,\n"
    "  r.oid = (SELECT oid FROM root) AS root,\n"
    "  ARRAY(SELECT t.tgname::pg_catalog.text FROM pg_catalog.pg_trigger t\n"
    "    WHERE t.tgrelid = r.oid AND NOT t.tgisinternal AND t.tgenabled IN ('O', 'A')\n"
    "      AND t.tgfoid = pg_catalog.to_regprocedure(:function)\n"
    f"      AND ((t.tgname IN ({literal(ROOT_BEGIN)}, {literal(PARTITION_GUARD)})\n"
    "            AND t.tgtype::integer & 35 = 34)\n"
    f"        OR (t.tgname = {literal(ROOT_END)} AND t.tgtype::integer & 35 = 32))\n"
    "    ORDER BY 1) AS guards\n"
    "FROM (SELECT oid FROM root UNION ALL ("
    + descendants_query("(SELECT oid FROM root)").replace("\n", " ")
    + ")) AS r(oid)\n"
    "WHERE (SELECT c.relkind FROM pg_catalog.pg_class c, root "
    "WHERE c.oid = root.oid) = 'p'\n"
    "ORDER BY r.oid = (SELECT oid FROM root) DESC, 1"
)
