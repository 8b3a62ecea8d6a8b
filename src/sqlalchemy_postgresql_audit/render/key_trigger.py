"""The key trigger of a statement-mode table (``AuditSpec.key_trigger``): moved keys off the
statement trigger's path.

Looking for moved keys in the statement trigger is an anti-join of the transition tables, an
executor run that cost every single-row UPDATE about 4-5 µs (``bench/breakdown.py``) although
keys rarely move.  The key trigger is ``AFTER UPDATE ... FOR EACH ROW WHEN (OLD.k IS DISTINCT
FROM NEW.k OR ...)`` calling the same function: PostgreSQL evaluates the condition itself
without calling anything, and its operators are bound when the trigger is created (no search
path at run time).  It has no ``UPDATE OF`` column list, which would miss a key changed by a
``BEFORE`` trigger.  AFTER ROW events fire at the end of the statement, before the AFTER
STATEMENT trigger, so the ``K`` rows still get lower ``audit_id`` values than the ``U`` rows.

Row triggers of an inheritance parent do not fire for its children's rows (the statement
trigger's transition tables do hold them), so every inheritance child gets the trigger too, by
``.partitions`` like the TRUNCATE triggers.  Partitions get PostgreSQL's clones.

The condition makes the trigger depend on the key columns: PostgreSQL refuses ``ALTER COLUMN
... TYPE`` of a key until the trigger is dropped (``alembic.key_retype`` does that around the
alter).  A hand edit of the condition would not show in the trigger's timing, level or events,
so installing records a digest of PostgreSQL's stored condition (``pg_trigger.tgqual``) in the
trigger's comment, and the catalog reads an edited one as drift.
"""

from __future__ import annotations

from ..declare.spec import AuditSpec, TriggerSpec, key_trigger_name
from .sql import (
    FALLBACK_SCHEMA,
    always_quote,
    dollar_quote,
    drop_trigger,
    function_signature,
    literal,
    name_text,
    qualified,
    quote,
)

#: How the function's UPDATE branch starts where it writes the key trigger's ``K`` rows: a
#: function holding it leaves moved keys to the key trigger (``install.runtime_check`` asks).
ROW_BRANCH = "IF TG_LEVEL = 'ROW' THEN"

#: The comment of a key trigger: this prefix and the hex SHA-256 of its stored condition.
KEY_TRIGGER_COMMENT = "sqlalchemy-postgresql-audit key trigger, condition "


def condition_digest(qual: str) -> str:
    """The SQL expression of the comment a key trigger whose ``tgqual`` is ``qual`` carries."""
    return (
        f"{literal(KEY_TRIGGER_COMMENT)} OPERATOR(pg_catalog.||) pg_catalog.encode("
        f"pg_catalog.sha256(pg_catalog.convert_to({qual}::pg_catalog.text, 'UTF8')), 'hex')"
    )


def key_condition(spec: AuditSpec) -> str:
    """``OLD.k IS DISTINCT FROM NEW.k OR ...`` over the key columns."""
    return " OR ".join(
        f"OLD.{always_quote(k)} IS DISTINCT FROM NEW.{always_quote(k)}" for k in spec.key_columns
    )


def key_trigger_clause(spec: AuditSpec) -> str:
    """What follows ``CREATE OR REPLACE TRIGGER <name>`` but the table: ``AFTER UPDATE ON``."""
    return (
        f"FOR EACH ROW\nWHEN ({key_condition(spec)})\nEXECUTE FUNCTION {function_signature(spec)}"
    )


def create_key_trigger(spec: AuditSpec, trigger: TriggerSpec) -> str:
    return (
        f"CREATE OR REPLACE TRIGGER {quote(trigger.name)}\n"
        f"AFTER UPDATE ON {qualified(spec.schema, spec.table)}\n{key_trigger_clause(spec)}"
    )


def install_key_trigger(spec: AuditSpec) -> tuple[str, ...]:
    """The key trigger on the table; its comments come after ``.partitions`` put it on the
    inheritance children (``comment_key_triggers``)."""
    trigger = spec.key_trigger
    return () if trigger is None else (create_key_trigger(spec, trigger),)


def comment_key_triggers(spec: AuditSpec) -> tuple[str, ...]:
    """Record the digest of each installed key trigger's condition in its comment: the table's
    and its inheritance children's (not partitions' clones, which cannot be edited alone)."""
    trigger = spec.key_trigger
    if trigger is None:
        return ()
    function = literal(name_text(spec.schema or FALLBACK_SCHEMA, spec.function) + "()")
    body = (
        "\nDECLARE\n  k record;\nBEGIN\n"
        "  FOR k IN SELECT t.tgname, t.tgrelid, t.tgqual FROM pg_catalog.pg_trigger t\n"
        f"    WHERE t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure({function})"
        "::pg_catalog.oid\n"
        f"      AND t.tgname OPERATOR(pg_catalog.=) {literal(trigger.name)}"
        " AND t.tgparentid OPERATOR(pg_catalog.=) 0\n"
        "  LOOP\n"
        "    EXECUTE 'COMMENT ON TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(k.tgname)"
        "\n      OPERATOR(pg_catalog.||) ' ON ' OPERATOR(pg_catalog.||) "
        "k.tgrelid::pg_catalog.regclass::pg_catalog.text\n"
        "      OPERATOR(pg_catalog.||) ' IS ' OPERATOR(pg_catalog.||) "
        f"pg_catalog.quote_literal({condition_digest('k.tgqual')});\n"
        "  END LOOP;\nEND;\n"
    )
    return (f"DO {dollar_quote(body)}",)


def drop_key_trigger(spec: AuditSpec) -> tuple[str, ...]:
    """Drop the table's key trigger (its name follows the UPDATE trigger's, whatever the mode:
    an installation in statement mode may be removed by a spec now in row mode)."""
    update = spec.update_trigger
    if update is None or spec.template < 2:
        return ()
    return (drop_trigger(spec.schema, spec.table, key_trigger_name(update.name)),)
