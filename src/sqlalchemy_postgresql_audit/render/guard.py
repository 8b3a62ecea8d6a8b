"""The append-only guard of an audit table (not part of a template version)."""

from __future__ import annotations

from ..declare.spec import (
    AUDIT_CURRENT_USER,
    AUDIT_OPERATION,
    AUDIT_TIMESTAMP,
    FIXED_AUDIT_COLUMNS,
    AuditSpec,
)
from .sql import (
    OLD_ROWS,
    always_qualified,
    always_quote,
    dollar_quote,
    literal,
    name_text,
    qualified,
    quote,
)

#: The transaction-local setting through which ``retention.purge_audit_history`` lets the guard
#: accept deletes of rows older than its value.  Outside the ``audit.`` prefix, so that no
#: session setting can be named like it.
PURGE_BEFORE_SETTING = "sqlalchemy_postgresql_audit.purge_before"

#: The transaction-local setting through which ``erase`` lets the guard accept an UPDATE that
#: only sets values to NULL (never the fixed audit columns or the key); ``erase`` writes its
#: ``E`` marker row and records the erasure in the chain of seals.
ERASING_SETTING = "sqlalchemy_postgresql_audit.erasing"

#: ``audit_operation`` of the row the guard writes after every delete it let through.
PURGE_OPERATION_CODE = "P"

GUARD_TRIGGER = "audit_append_only"
GUARD_TRUNCATE_TRIGGER = "audit_append_only_truncate"
PURGE_MARKER_TRIGGER = "audit_purge_marker"


def guard_function(spec: AuditSpec) -> str:
    """The append-only guard's function name, next to the audit table."""
    from ..declare.naming import fit_identifier

    return fit_identifier(f"{spec.audit_table}_append_only")


def render_append_only_guard(spec: AuditSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(install, uninstall)`` statements of the append-only guard of ``spec``'s audit table.

    Row-level BEFORE UPDATE OR DELETE and a BEFORE TRUNCATE trigger refuse every change to
    recorded history, whoever runs it (the owner included).  The one exception is a DELETE of
    rows older than the transaction-local ``PURGE_BEFORE_SETTING``, a bound no later than the
    transaction's start (purging the future is never retention), and only as a whole: the
    AFTER DELETE statement trigger refuses the statement if any row but a marker recorded
    before the bound remains (so no selective deletion of recent rows hides behind a far bound).
    It then writes a ``P`` marker row whose ``audit_operation_timestamp`` is the bound (who,
    and "history before <bound> purged"), so a purge is itself part of the trail.  The other
    exception is ``erase``'s: while ``ERASING_SETTING`` is set, an UPDATE that only sets values
    to NULL, leaving the fixed audit columns and the key as they were.  Triggers are
    not a wall against the owner, who can disable them; see SECURITY.md.
    """
    if not spec.append_only:
        return (), ()
    function = qualified(spec.schema, guard_function(spec))
    on = qualified(spec.schema, spec.audit_table)
    body = dollar_quote(guard_body(spec))
    install = (
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger\n"
        f"LANGUAGE plpgsql\nSET search_path TO pg_catalog, pg_temp\nAS {body}",
        f"REVOKE ALL ON FUNCTION {function}() FROM PUBLIC",
        f"CREATE OR REPLACE TRIGGER {quote(GUARD_TRIGGER)}\n"
        f"BEFORE UPDATE OR DELETE ON {on}\nFOR EACH ROW\nEXECUTE FUNCTION {function}()",
        f"CREATE OR REPLACE TRIGGER {quote(GUARD_TRUNCATE_TRIGGER)}\n"
        f"BEFORE TRUNCATE ON {on}\nFOR EACH STATEMENT\nEXECUTE FUNCTION {function}()",
        f"CREATE OR REPLACE TRIGGER {quote(PURGE_MARKER_TRIGGER)}\n"
        f"AFTER DELETE ON {on}\nREFERENCING OLD TABLE AS {OLD_ROWS}\nFOR EACH STATEMENT\n"
        f"EXECUTE FUNCTION {function}()",
        guard_partitions(spec),
    )
    # CASCADE drops exactly the guard's own triggers, the only objects that use its function,
    # and works whether or not the audit table still exists.
    return install, (f"DROP FUNCTION IF EXISTS {function}() CASCADE",)


def guard_partitions(spec: AuditSpec) -> str:
    """The BEFORE TRUNCATE trigger on every partition the audit table has now (a partitioned
    audit table's DEFAULT partition exists from its creation, and rows wait there until the
    first ``maintain``): a TRUNCATE naming a partition does not fire the parent's trigger.
    ``maintain`` gives the partitions it creates the same trigger.  Partition names come from
    ``regclass`` output, which the server quotes."""
    table = literal(name_text(spec.schema, spec.audit_table))  # regclass input: no U&"..."
    function = literal(
        f" FOR EACH STATEMENT EXECUTE FUNCTION {qualified(spec.schema, guard_function(spec))}()"
    )
    create = literal(
        f"CREATE OR REPLACE TRIGGER {quote(GUARD_TRUNCATE_TRIGGER)} BEFORE TRUNCATE ON "
    )
    body = (
        "\nDECLARE\n  child pg_catalog.oid;\nBEGIN\n"
        "  FOR child IN SELECT i.inhrelid FROM pg_catalog.pg_inherits i\n"
        f"    WHERE i.inhparent OPERATOR(pg_catalog.=) pg_catalog.to_regclass({table})\n"
        "  LOOP\n"
        f"    EXECUTE {create} OPERATOR(pg_catalog.||) child::pg_catalog.regclass::pg_catalog.text"
        f"\n      OPERATOR(pg_catalog.||) {function};\n"
        "  END LOOP;\nEND;\n"
    )
    return f"DO {dollar_quote(body)}"


#: What the guard function runs with (its ``proconfig``).
GUARD_CONFIG = ("search_path=pg_catalog, pg_temp",)


def guard_body(spec: AuditSpec) -> str:
    """The guard function's body, as PostgreSQL stores it (``prosrc``)."""
    audit = always_qualified(spec.schema, spec.audit_table)
    stamp = always_quote(AUDIT_TIMESTAMP)
    marker_columns = ", ".join(
        always_quote(c) for c in (AUDIT_OPERATION, AUDIT_TIMESTAMP, AUDIT_CURRENT_USER)
    )
    message = f"audit table {audit} is append-only: "
    hint = (
        "Recorded history is never updated; remove old history with "
        "sqlalchemy_postgresql_audit.retention.purge_audit_history()."
    )
    operation = always_quote(AUDIT_OPERATION)
    bound = (
        f"NULLIF(pg_catalog.current_setting({literal(PURGE_BEFORE_SETTING)}, true), '')"
        "::timestamptz"
    )
    future = f"purge of {audit} refused: its bound is later than the transaction's start"
    partial = (
        f"purge of {audit} refused: it must delete every row recorded before its bound, "
        "and rows before it remain"
    )
    refuse = f",\n    ERRCODE = 'insufficient_privilege', HINT = {literal(hint)};\n"
    kept = (*FIXED_AUDIT_COLUMNS, *spec.key_columns)
    unchanged = "".join(
        f"\n      AND NEW.{always_quote(c)} IS NOT DISTINCT FROM OLD.{always_quote(c)}"
        for c in kept
    )
    erasing = (
        f"NULLIF(pg_catalog.current_setting({literal(ERASING_SETTING)}, true), '') IS NOT NULL"
    )
    return (
        "\nDECLARE\n"
        f"  bound CONSTANT timestamptz := {bound};\n"
        "BEGIN\n"
        "  IF TG_OP = 'DELETE' AND bound > pg_catalog.now() THEN\n"
        f"    RAISE EXCEPTION USING MESSAGE = {literal(future)}{refuse}"
        "  END IF;\n"
        "  IF TG_WHEN = 'AFTER' THEN\n"
        f"    IF EXISTS (SELECT FROM {audit} WHERE {stamp} < bound\n"
        f"               AND {operation} <> {literal(PURGE_OPERATION_CODE)}) THEN\n"
        f"      RAISE EXCEPTION USING MESSAGE = {literal(partial)}{refuse}"
        "    END IF;\n"
        f"    INSERT INTO {audit} ({marker_columns})\n"
        f"    SELECT {literal(PURGE_OPERATION_CODE)}, COALESCE(bound, pg_catalog.now()),"
        " current_user\n"
        f"    WHERE EXISTS (SELECT FROM {OLD_ROWS});\n"
        "    RETURN NULL;\n"
        "  END IF;\n"
        f"  IF TG_OP = 'DELETE' AND OLD.{stamp} < bound THEN\n"
        "    RETURN OLD;\n"
        "  END IF;\n"
        f"  IF TG_OP = 'UPDATE' AND {erasing}{unchanged}\n"
        "      AND NOT EXISTS (SELECT FROM pg_catalog.jsonb_each(pg_catalog.to_jsonb(NEW)) n\n"
        "        JOIN pg_catalog.jsonb_each(pg_catalog.to_jsonb(OLD)) o ON o.key = n.key\n"
        "        WHERE n.value <> 'null'::jsonb AND n.value <> o.value) THEN\n"
        "    RETURN NEW;\n"
        "  END IF;\n"
        f"  RAISE EXCEPTION USING MESSAGE = {literal(message)} || TG_OP || ' is refused'{refuse}"
        "END;\n"
    )
