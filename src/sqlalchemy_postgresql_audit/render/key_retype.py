"""The key triggers taken off and put back around a retype of a key column.

A key trigger's condition (``.key_trigger``) makes it depend on the key columns, and
PostgreSQL refuses ``ALTER COLUMN ... TYPE`` of a column a trigger definition uses.  Dropping
the triggers, retyping, and creating them again in the same transaction leaves no moment in
which an UPDATE is unrecorded: the ``ALTER TABLE`` holds an ACCESS EXCLUSIVE lock until commit.
The retype reaches the table's inheritance children (their columns are the table's), so their
key triggers go and come back too; a partition's clone goes with the table's trigger.
"""

from __future__ import annotations

from ..declare.spec import AuditSpec
from .key_trigger import comment_key_triggers, create_key_trigger, key_trigger_clause
from .partitions import descendants_query, for_each_child
from .sql import FALLBACK_SCHEMA, dollar_quote, literal, name_text, quote, regclass


def drop_key_triggers(spec: AuditSpec) -> tuple[str, ...]:
    """Drop the key trigger from the table and from every other table it is on."""
    trigger = spec.key_trigger
    if trigger is None:
        return ()
    function = literal(name_text(spec.schema or FALLBACK_SCHEMA, spec.function) + "()")
    body = (
        "\nDECLARE\n  k record;\nBEGIN\n"
        "  FOR k IN SELECT t.tgname, t.tgrelid FROM pg_catalog.pg_trigger t\n"
        f"    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure({function})"
        "::pg_catalog.oid\n"
        f"      AND t.tgname OPERATOR(pg_catalog.=) {literal(trigger.name)}"
        " AND t.tgparentid OPERATOR(pg_catalog.=) 0\n"
        "  LOOP\n"
        "    EXECUTE 'DROP TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(k.tgname)"
        " OPERATOR(pg_catalog.||) ' ON '\n"
        "      OPERATOR(pg_catalog.||) k.tgrelid::pg_catalog.regclass::pg_catalog.text;\n"
        "  END LOOP;\nEND;\n"
    )
    return (f"DO {dollar_quote(body)}",)


def create_key_triggers(spec: AuditSpec) -> tuple[str, ...]:
    """Create the key trigger on the table and its inheritance children, comments included."""
    trigger = spec.key_trigger
    if trigger is None:
        return ()
    create = literal(f"CREATE OR REPLACE TRIGGER {quote(trigger.name)} AFTER UPDATE ON ")
    children = descendants_query(regclass(spec.schema, spec.table), inheritance_only=True)
    loop = for_each_child(children, create, literal(f" {key_trigger_clause(spec)}"))
    body = f"\nDECLARE\n  child pg_catalog.oid;\nBEGIN\n{loop}END;\n"
    return (
        create_key_trigger(spec, trigger),
        f"DO {dollar_quote(body)}",
        *comment_key_triggers(spec),
    )
