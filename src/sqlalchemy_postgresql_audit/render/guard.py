"""The append-only guard of an audit table (not part of a template version)."""

from __future__ import annotations

from ..spec import (
    AUDIT_CURRENT_USER,
    AUDIT_OPERATION,
    AUDIT_TIMESTAMP,
    AuditSpec,
)
from .sql import (
    OLD_ROWS,
    always_qualified,
    always_quote,
    dollar_quote,
    literal,
    qualified,
    quote,
)

#: The transaction-local setting through which ``retention.purge_audit_history`` lets the guard
#: accept deletes of rows older than its value.  Outside the ``audit.`` prefix, so that no
#: session setting can be named like it.
PURGE_BEFORE_SETTING = "sqlalchemy_postgresql_audit.purge_before"

#: ``audit_operation`` of the row the guard writes after every delete it let through.
PURGE_OPERATION_CODE = "P"

GUARD_TRIGGER = "audit_append_only"
GUARD_TRUNCATE_TRIGGER = "audit_append_only_truncate"
PURGE_MARKER_TRIGGER = "audit_purge_marker"


def guard_function(spec: AuditSpec) -> str:
    """The append-only guard's function name, next to the audit table."""
    from ..naming import fit_identifier

    return fit_identifier(f"{spec.audit_table}_append_only")


def render_append_only_guard(spec: AuditSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(install, uninstall)`` statements of the append-only guard of ``spec``'s audit table.

    Row-level BEFORE UPDATE OR DELETE and a BEFORE TRUNCATE trigger refuse every change to
    recorded history, whoever runs it (the owner included).  The one exception is a DELETE of
    rows older than the transaction-local ``PURGE_BEFORE_SETTING``, and every statement that
    deletes through it gets a ``P`` marker row (who, when) from an AFTER DELETE trigger, so a
    purge is itself part of the trail.  Triggers are not a wall against the owner, who can
    disable them; see SECURITY.md.
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
    )
    # CASCADE drops exactly the guard's own triggers, the only objects that use its function,
    # and works whether or not the audit table still exists.
    return install, (f"DROP FUNCTION IF EXISTS {function}() CASCADE",)


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
    return (
        "\nBEGIN\n"
        "  IF TG_WHEN = 'AFTER' THEN\n"
        f"    INSERT INTO {audit} ({marker_columns})\n"
        f"    SELECT {literal(PURGE_OPERATION_CODE)}, pg_catalog.now(), current_user\n"
        f"    WHERE EXISTS (SELECT FROM {OLD_ROWS});\n"
        "    RETURN NULL;\n"
        "  END IF;\n"
        "  IF TG_OP = 'DELETE' THEN\n"
        f"    IF OLD.{stamp} < NULLIF(pg_catalog.current_setting("
        f"{literal(PURGE_BEFORE_SETTING)}, true), '')::timestamptz THEN\n"
        "      RETURN OLD;\n"
        "    END IF;\n"
        "  END IF;\n"
        f"  RAISE EXCEPTION USING MESSAGE = {literal(message)} || TG_OP || ' is refused',\n"
        f"    ERRCODE = 'insufficient_privilege', HINT = {literal(hint)};\n"
        "END;\n"
    )
