"""The TRUNCATE triggers template 2 puts on the partitions (and inheritance children) of an
audited table, and the key triggers it puts on the inheritance children (``.key_trigger``).

PostgreSQL fires a table's TRUNCATE trigger only for the relations a TRUNCATE reaches: a
TRUNCATE addressed to one partition never fires the parent's.  So each descendant of the
audited table gets a ``BEFORE TRUNCATE`` trigger calling the same audit function, named like
the table's own TRUNCATE trigger (a name that already fits 63 bytes; PostgreSQL names the row
triggers it clones onto partitions the same way).  The descendants are only known to the
database, and change when partitions are attached, so the statements here are ``DO`` blocks that
read ``pg_inherits`` when they run; relation names come from ``regclass`` output, which the
server quotes.
"""

from __future__ import annotations

from ..declare.spec import AuditSpec, TriggerSpec
from .key_trigger import key_trigger_clause
from .sql import (
    FALLBACK_SCHEMA,
    dollar_quote,
    function_signature,
    literal,
    name_text,
    quote,
    regclass,
)

_EQ = "OPERATOR(pg_catalog.=)"
_NE = "OPERATOR(pg_catalog.<>)"


def truncate_trigger(spec: AuditSpec) -> TriggerSpec | None:
    """The table's TRUNCATE trigger, whose name its descendants' triggers take."""
    return next((t for t in spec.triggers if t.operation == "TRUNCATE"), None)


def _function(spec: AuditSpec) -> str:
    """The audit function's oid, or NULL when it does not exist (an uninstall after a drop)."""
    text = literal(name_text(spec.schema or FALLBACK_SCHEMA, spec.function) + "()")
    return f"pg_catalog.to_regprocedure({text})::pg_catalog.oid"


def descendants_query(root: str, *, inheritance_only: bool = False) -> str:
    """Every table inheriting from ``root`` (a regclass expression), at any depth: partitions,
    sub-partitions and inheritance children; foreign tables and views cannot have TRUNCATE
    triggers.  ``inheritance_only``: no partitions, which PostgreSQL gives clones of the
    table's row triggers."""
    partitions = "" if not inheritance_only else " AND NOT c.relispartition"
    return (
        "WITH RECURSIVE tree(relation) AS (\n"
        f"      SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent {_EQ} {root}\n"
        "      UNION\n"
        "      SELECT i.inhrelid FROM pg_catalog.pg_inherits i\n"
        f"        JOIN tree ON i.inhparent {_EQ} tree.relation)\n"
        "    SELECT tree.relation FROM tree\n"
        f"      JOIN pg_catalog.pg_class c ON c.oid {_EQ} tree.relation\n"
        "      WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::\"char\"[])"
        f"{partitions}"
    )


def _drop_others(spec: AuditSpec, keep: str) -> str:
    """Drop the function's triggers on other tables than the audited one, except ``keep``
    (a condition on ``t``): a partition detached since, a TRUNCATE no longer audited."""
    name = literal(name_text(spec.schema or FALLBACK_SCHEMA, spec.table))
    table = f"pg_catalog.to_regclass({name})"
    return (
        "  FOR stale IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t\n"
        f"    WHERE t.tgfoid {_EQ} {_function(spec)} AND t.tgrelid {_NE} {table}\n"
        f"      AND t.tgparentid {_EQ} 0 AND NOT t.tgisinternal AND NOT ({keep})\n"
        "  LOOP\n"
        "    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(stale.tgname)"
        " OPERATOR(pg_catalog.||) ' ON '\n"
        "      OPERATOR(pg_catalog.||) stale.tgrelid::pg_catalog.regclass::pg_catalog.text;\n"
        "  END LOOP;\n"
    )


def install_partition_triggers(spec: AuditSpec) -> str:
    """Put the TRUNCATE trigger on every descendant of the table and the key trigger
    (``.key_trigger``) on every inheritance child, and remove the function's triggers that are
    no longer wanted, in the installing transaction."""
    table = regclass(spec.schema, spec.table)
    truncate = truncate_trigger(spec)
    key = spec.key_trigger
    if truncate is None and key is None:
        return drop_partition_triggers(spec)
    function = function_signature(spec)
    keep, loops = [], ""
    if truncate is not None:
        keep.append(
            f"t.tgname {_EQ} {literal(truncate.name)} AND t.tgrelid {_EQ} ANY (ARRAY(\n"
            f"        {descendants_query(table)}))"
        )
        create = literal(f"CREATE OR REPLACE TRIGGER {quote(truncate.name)} BEFORE TRUNCATE ON ")
        execute = literal(f" FOR EACH STATEMENT EXECUTE FUNCTION {function}")
        loops += for_each_child(descendants_query(table), create, execute)
    if key is not None:
        children = descendants_query(table, inheritance_only=True)
        keep.append(
            f"t.tgname {_EQ} {literal(key.name)} AND t.tgrelid {_EQ} ANY (ARRAY(\n"
            f"        {children}))"
        )
        create = literal(f"CREATE OR REPLACE TRIGGER {quote(key.name)} AFTER UPDATE ON ")
        loops += for_each_child(children, create, literal(f" {key_trigger_clause(spec)}"))
    body = (
        "\nDECLARE\n  stale record;\n  child pg_catalog.oid;\nBEGIN\n"
        f"{_drop_others(spec, ' OR '.join(f'({k})' for k in keep))}{loops}END;\n"
    )
    return f"DO {dollar_quote(body)}"


def for_each_child(children: str, create: str, rest: str) -> str:
    """PL/pgSQL running ``create || <child> || rest`` (SQL literals) for each relation of
    ``children`` (a query), in a block declaring ``child pg_catalog.oid``."""
    return (
        f"  FOR child IN {children}\n"
        "  LOOP\n"
        f"    EXECUTE {create} OPERATOR(pg_catalog.||) child::pg_catalog.regclass::pg_catalog.text"
        f"\n      OPERATOR(pg_catalog.||) {rest};\n"
        "  END LOOP;\n"
    )


def drop_partition_triggers(spec: AuditSpec) -> str:
    """Remove the function's triggers from every other table than the audited one (before the
    function is dropped, which they would otherwise block)."""
    body = f"\nDECLARE\n  stale record;\nBEGIN\n{_drop_others(spec, 'false')}END;\n"
    return f"DO {dollar_quote(body)}"
