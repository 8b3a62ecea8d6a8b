"""The append-only guard and the least-privilege GRANTs (not part of a template version)."""

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
    regclass,
    regprocedure,
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
    audit = always_qualified(spec.schema, spec.audit_table)
    function = qualified(spec.schema, guard_function(spec))
    stamp = always_quote(AUDIT_TIMESTAMP)
    marker_columns = ", ".join(
        always_quote(c) for c in (AUDIT_OPERATION, AUDIT_TIMESTAMP, AUDIT_CURRENT_USER)
    )
    message = f"audit table {audit} is append-only: "
    hint = (
        "Recorded history is never updated; remove old history with "
        "sqlalchemy_postgresql_audit.retention.purge_audit_history()."
    )
    body = (
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
    on = qualified(spec.schema, spec.audit_table)
    install = (
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger\n"
        f"LANGUAGE plpgsql\nSET search_path TO pg_catalog, pg_temp\nAS {dollar_quote(body)}",
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




#: PostgreSQL's pseudo-roles: a GRANT to one of these names reaches everyone or nobody.
_RESERVED_ROLES = frozenset({"public", "none"})


def _role(name: str) -> str:
    if not name or name.lower() in _RESERVED_ROLES or name.lower().startswith("pg_"):
        raise ValueError(f"{name!r} is not a role the audit grants may name")
    return quote(name)


def _revoke_from_everyone_but_the_owner(spec: AuditSpec, functions: list[str]) -> str:
    """Revoke every right on the audit table and the functions from every role but their owner.

    Default privileges (``ALTER DEFAULT PRIVILEGES ... GRANT ... TO app_group``) hand rights on
    new tables and functions to roles this script does not name; a writer inheriting them could
    edit history.  The roles are read from the objects' ACLs when the script runs.
    """
    table = regclass(spec.schema, spec.audit_table)
    loops = [
        "  FOR grantee IN SELECT DISTINCT a.grantee::pg_catalog.regrole\n"
        "    FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) AS a\n"
        f"    WHERE c.oid = {table} AND a.grantee <> c.relowner AND a.grantee <> 0 LOOP\n"
        "    EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM %s', "
        f"{table}, grantee);\n"
        "  END LOOP;\n"
    ]
    for function in functions:
        procedure = regprocedure(spec.schema, function)
        loops.append(
            "  FOR grantee IN SELECT DISTINCT a.grantee::pg_catalog.regrole\n"
            "    FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) AS a\n"
            f"    WHERE p.oid = {procedure} AND a.grantee <> p.proowner AND a.grantee <> 0 LOOP\n"
            "    EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %s', "
            f"{procedure}, grantee);\n"
            "  END LOOP;\n"
        )
    body = "\nDECLARE\n  grantee pg_catalog.regrole;\nBEGIN\n" + "".join(loops) + "END\n"
    return f"DO {dollar_quote(body)}"


def render_grants(
    spec: AuditSpec,
    *,
    writers: tuple[str, ...],
    readers: tuple[str, ...] = (),
    owner: str | None = None,
    sequences: tuple[tuple[str, str], ...] = (),
) -> tuple[str, ...]:
    """The least-privilege GRANTs of one audited table (see SECURITY.md).

    ``owner`` becomes the owner of the audit table and of the library's functions, so that the
    SECURITY DEFINER trigger function writes as that role; ``writers`` get DML on the source
    table (TRUNCATE only when TRUNCATE is audited) and USAGE on its ``sequences``
    ((schema, name) pairs of serial columns), and lose every right on the audit table;
    ``readers`` get SELECT on the audit table.  Revokes come before grants, so a role that is
    both a writer and a reader can read the history and still not write it.
    """
    source = qualified(spec.schema, spec.table)
    audit = qualified(spec.schema, spec.audit_table)
    functions = [qualified(spec.schema, spec.function)]
    if spec.append_only:
        functions.append(qualified(spec.schema, guard_function(spec)))
    schema = [f"GRANT USAGE ON SCHEMA {quote(spec.schema)} TO "] if spec.schema else []
    statements: list[str] = [f"REVOKE ALL ON FUNCTION {f}() FROM PUBLIC" for f in functions]
    if owner is not None:
        role = _role(owner)
        statements += [f"ALTER TABLE {audit} OWNER TO {role}"]
        statements += [f"ALTER FUNCTION {f}() OWNER TO {role}" for f in functions]
        statements += [prefix + role for prefix in schema]
        if spec.truncate_rows:  # the BEFORE TRUNCATE copy reads the source table as the owner
            statements.append(f"GRANT SELECT ON {source} TO {role}")
    statements.append(
        _revoke_from_everyone_but_the_owner(
            spec, [spec.function, *([guard_function(spec)] if spec.append_only else [])]
        )
    )
    dml = "SELECT, INSERT, UPDATE, DELETE"
    if any(t.operation == "TRUNCATE" for t in spec.triggers):
        dml += ", TRUNCATE"
    for writer in writers:
        role = _role(writer)
        statements += [f"REVOKE ALL ON {audit} FROM {role}"]
        statements += [f"REVOKE ALL ON FUNCTION {f}() FROM {role}" for f in functions]
        statements += [prefix + role for prefix in schema]
        statements.append(f"GRANT {dml} ON {source} TO {role}")
        statements += [f"GRANT USAGE ON SEQUENCE {qualified(s, n)} TO {role}" for s, n in sequences]
    for reader in readers:
        role = _role(reader)
        statements += [prefix + role for prefix in schema]
        statements.append(f"GRANT SELECT ON {audit} TO {role}")
    return tuple(statements)


