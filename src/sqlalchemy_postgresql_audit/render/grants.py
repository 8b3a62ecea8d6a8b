"""The least-privilege GRANT script of one audited table (see SECURITY.md and ``..install.grants``).

Plain GRANTs give writers and readers what they need.  What they must not have is taken away by
one ``DO`` block that reads the ACLs when it runs, because rights reach a role in ways no script
names in advance: default privileges (to PUBLIC, to a group), column grants (``attacl``), grants
made by a role holding a grant option, rights on sequences and partitions.  The block revokes

- on the library's objects (the audit table, its partitions, its columns and sequences, the
  trigger function and the append-only guard): every right of every role but the owner,
  PUBLIC included;
- on the application's objects (the audited table, its columns, partitions and sequences):
  every right a writer must not hold, from PUBLIC and from every role a writer is a member of.

Both with CASCADE, so grants made onwards through a grant option go too.  A writer that is a
superuser, a member of an owner, or of ``pg_write_all_data`` / ``pg_read_all_data`` /
``pg_maintain`` would hold rights no REVOKE can take, and one that may SET
``session_replication_role`` switches every trigger off: the block refuses it by name.
"""

from __future__ import annotations

import json

from ..declare.spec import AUDIT_ID, AuditSpec
from .guard import guard_function
from .redaction import key_table_grants
from .sql import dollar_quote, literal, name_text, qualified, quote, regclass, regprocedure

#: What the grant step records on the audit table's ``audit_id`` sequence: which roles it made
#: writers and readers, so that ``check`` knows whose privileges to watch.
GRANTS_MARKER = "sqlalchemy-postgresql-audit grants:"

#: What a writer holds on the audited table; TRUNCATE is added where TRUNCATE is audited.
WRITER_DML = ("SELECT", "INSERT", "UPDATE", "DELETE")

#: PostgreSQL's pseudo-roles: a GRANT to one of these names reaches everyone or nobody.
_RESERVED_ROLES = frozenset({"public", "none"})

#: Predefined roles whose members hold rights on every table, which no REVOKE on a table removes.
_ALL_TABLE_ROLES = ("pg_write_all_data", "pg_read_all_data", "pg_maintain")

_REFUSE_WRITERS = f"""\
  SELECT pg_catalog.format('role %s cannot be made a writer: %s', w, why.reason)
  INTO problem
  FROM pg_catalog.unnest(writers) AS w, LATERAL (
      SELECT 'it is a superuser' FROM pg_catalog.pg_roles r WHERE r.oid = w AND r.rolsuper
    UNION ALL
      SELECT pg_catalog.format('it is a member of %s, which holds rights on every table', r.rolname)
      FROM pg_catalog.pg_roles r
      WHERE r.rolname IN ({", ".join(literal(r) for r in _ALL_TABLE_ROLES)})
        AND pg_catalog.pg_has_role(w, r.oid, 'MEMBER')
    UNION ALL
      SELECT pg_catalog.format('it is a member of %s, the owner of %s', o.owner::pg_catalog.regrole,
                               o.name)
      FROM (SELECT c.relowner, c.oid::pg_catalog.regclass::text FROM pg_catalog.pg_class c
              WHERE c.oid IN (source, audit)
            UNION ALL
            SELECT p.proowner, p.oid::pg_catalog.regprocedure::text FROM pg_catalog.pg_proc p
              WHERE p.oid = ANY (functions)) AS o(owner, name)
      WHERE pg_catalog.pg_has_role(w, o.owner, 'MEMBER')
  ) AS why(reason)
  LIMIT 1;
  IF problem IS NOT NULL THEN
    RAISE EXCEPTION USING MESSAGE = problem, ERRCODE = 'invalid_grant_operation';
  END IF;
"""

#: PostgreSQL 15 lets a superuser grant SET on a superuser-only parameter to any role; a writer
#: that may ``SET session_replication_role = replica`` switches every trigger off (PostgreSQL 14
#: has no such grant, and ``has_parameter_privilege``; the query runs only where it exists).
_REFUSE_REPLICA_WRITERS = """\
  IF pg_catalog.current_setting('server_version_num')::int >= 150000 THEN
    EXECUTE 'SELECT pg_catalog.format(''role %s cannot be made a writer: it may SET '
            'session_replication_role, which switches every trigger off (REVOKE SET ON '
            'PARAMETER session_replication_role from it and its groups)'', w) '
            'FROM pg_catalog.unnest($1) AS w '
            'WHERE pg_catalog.has_parameter_privilege(w, ''session_replication_role'', ''SET'') '
            'LIMIT 1'
      INTO problem USING writers;
    IF problem IS NOT NULL THEN
      RAISE EXCEPTION USING MESSAGE = problem, ERRCODE = 'invalid_grant_operation';
    END IF;
  END IF;
"""

_REVOKES = """\
  FOR revoke_sql IN
    WITH RECURSIVE partitions(oid) AS (
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = source
      UNION
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN partitions p ON i.inhparent = p.oid
    ),
    -- a partitioned audit table's partitions are the library's like the audit table itself
    audit_partitions(oid) AS (
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = audit
    ),
    -- (relation, belongs to the library, what a writer may hold on it)
    relations(oid, library, allowed) AS (
        SELECT audit::pg_catalog.oid, true, '{}'::text[]
      UNION ALL
        SELECT source::pg_catalog.oid, false, writer_rights
      UNION ALL
        SELECT oid, false, '{}'::text[] FROM partitions
      UNION ALL
        SELECT oid, true, '{}'::text[] FROM audit_partitions
      UNION ALL
        SELECT d.objid, d.refobjid = audit,
               CASE WHEN d.refobjid = source AND d.deptype = 'a' THEN '{USAGE}'::text[]
                    ELSE '{}'::text[] END
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.refobjid IN (source, audit) AND d.deptype IN ('a', 'i')
    ),
    rights(kind, object, column_name, owner, grantee, privilege, library, allowed) AS (
        SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
               c.oid::pg_catalog.regclass::text, NULL::name, c.relowner, a.grantee,
               a.privilege_type, r.library, r.allowed
        FROM relations r JOIN pg_catalog.pg_class c ON c.oid = r.oid,
             pg_catalog.aclexplode(c.relacl) a
      UNION ALL
        SELECT 'TABLE', c.oid::pg_catalog.regclass::text, t.attname, c.relowner, a.grantee,
               a.privilege_type, r.library, r.allowed
        FROM relations r JOIN pg_catalog.pg_class c ON c.oid = r.oid
        JOIN pg_catalog.pg_attribute t
          ON t.attrelid = c.oid AND t.attnum > 0 AND NOT t.attisdropped,
             pg_catalog.aclexplode(t.attacl) a
      UNION ALL
        SELECT 'FUNCTION', p.oid::pg_catalog.regprocedure::text, NULL, p.proowner, a.grantee,
               a.privilege_type, true, '{}'::text[]
        FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
        WHERE p.oid = ANY (functions)
    )
    SELECT DISTINCT CASE
        WHEN library THEN pg_catalog.format('REVOKE ALL ON %s %s FROM %s CASCADE',
                                            kind, object, role)
        WHEN column_name IS NULL THEN pg_catalog.format('REVOKE %s ON %s %s FROM %s CASCADE',
                                                        privilege, kind, object, role)
        ELSE pg_catalog.format('REVOKE %s (%I) ON TABLE %s FROM %s CASCADE',
                               privilege, column_name, object, role)
      END
    FROM rights, LATERAL (
      SELECT CASE grantee WHEN 0 THEN 'PUBLIC' ELSE grantee::pg_catalog.regrole::text END
    ) AS g(role)
    WHERE grantee <> owner
      AND (library OR (privilege <> ALL (allowed) AND (grantee = 0 OR EXISTS (
        SELECT FROM pg_catalog.unnest(writers) AS w
        WHERE pg_catalog.pg_has_role(w, grantee, 'MEMBER')))))
  LOOP
    EXECUTE revoke_sql;
  END LOOP;
  -- Serial columns take their default from a sequence: writers need USAGE on it.
  FOR revoke_sql IN
    SELECT pg_catalog.format('GRANT USAGE ON SEQUENCE %s TO %s',
                             d.objid::pg_catalog.regclass, w)
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S',
         pg_catalog.unnest(writers) AS w
    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.refobjid = source AND d.deptype = 'a'
  LOOP
    EXECUTE revoke_sql;
  END LOOP;
"""

_RECORD = """\
  sequence_name := pg_catalog.pg_get_serial_sequence(audit::text, {column});
  IF sequence_name IS NOT NULL THEN
    EXECUTE pg_catalog.format('COMMENT ON SEQUENCE %s IS %L', sequence_name, note);
  END IF;
"""


_OWNER_READS = """\
  FOR grant_sql IN
    WITH RECURSIVE descendants(oid) AS (
        SELECT source::pg_catalog.oid
      UNION
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN descendants d ON i.inhparent = d.oid
    )
    SELECT pg_catalog.format('GRANT SELECT ON TABLE %s TO %s', oid::pg_catalog.regclass, owner)
    FROM descendants
  LOOP
    EXECUTE grant_sql;
  END LOOP;
"""


def reads_source(spec: AuditSpec) -> bool:
    """Whether the function reads the audited table (its owner then needs SELECT on it): to
    find a moved key's old row (row mode, and the key trigger's calls in statement mode) and to
    copy the rows a TRUNCATE removes (``truncate_rows``)."""
    return spec.mode == "row" or spec.truncate_rows or spec.key_trigger is not None


def _owner_reads(spec: AuditSpec, role: str) -> str:
    """The owner's SELECT on the audited table and every descendant, at any depth: the trigger
    function runs as the owner, and reads them to find a moved key's old row (row mode, the
    key trigger) and to copy the rows a TRUNCATE removes (``truncate_rows``, which reaches every
    partition and inheritance child); statement mode without either reads only transition
    tables and gets nothing.  Read from ``pg_inherits`` when it runs, so partitions made after the
    declaration are covered by running the step again."""
    declare = (
        f"  source CONSTANT pg_catalog.regclass := {regclass(spec.schema, spec.table)};\n"
        f"  owner CONSTANT text := {literal(role)};\n"
        "  grant_sql text;\n"
    )
    body = f"\nDECLARE\n{declare}BEGIN\n{_OWNER_READS}END\n"
    return f"DO {dollar_quote(body)}"


def _role(name: str) -> str:
    if not name or name.lower() in _RESERVED_ROLES or name.lower().startswith("pg_"):
        raise ValueError(f"{name!r} is not a role the audit grants may name")
    return quote(name)


def _regroles(names: tuple[str, ...]) -> str:
    roles = ", ".join(literal(name_text(None, name)) for name in names)
    return f"ARRAY[{roles}]::pg_catalog.regrole[]" if names else "'{}'::pg_catalog.regrole[]"


def grants_record(writers: tuple[str, ...], readers: tuple[str, ...]) -> str:
    """The comment the grant step leaves on the audit table's ``audit_id`` sequence."""
    return GRANTS_MARKER + json.dumps({"writers": list(writers), "readers": list(readers)})


def writer_rights(spec: AuditSpec) -> tuple[str, ...]:
    """What a writer holds on ``spec``'s audited table: TRUNCATE only where it is audited."""
    truncate = any(t.operation == "TRUNCATE" for t in spec.triggers)
    return (*WRITER_DML, *(("TRUNCATE",) if truncate else ()))


def _exact_rights(
    spec: AuditSpec, functions: list[str], writers: tuple[str, ...], readers: tuple[str, ...]
) -> str:
    rights = ", ".join(literal(r) for r in writer_rights(spec))
    procedures = ", ".join(regprocedure(spec.schema, f) for f in functions)
    declare = (
        f"  source CONSTANT pg_catalog.regclass := {regclass(spec.schema, spec.table)};\n"
        f"  audit CONSTANT pg_catalog.regclass := {regclass(spec.schema, spec.audit_table)};\n"
        f"  functions CONSTANT pg_catalog.oid[] := ARRAY[{procedures}]::pg_catalog.oid[];\n"
        f"  writers CONSTANT pg_catalog.regrole[] := {_regroles(writers)};\n"
        f"  writer_rights CONSTANT text[] := ARRAY[{rights}];\n"
        f"  note CONSTANT text := {literal(grants_record(writers, readers))};\n"
        "  problem text;\n  revoke_sql text;\n  sequence_name text;\n"
    )
    body = (
        f"\nDECLARE\n{declare}BEGIN\n{_REFUSE_WRITERS}{_REFUSE_REPLICA_WRITERS}{_REVOKES}"
        f"{_RECORD.format(column=literal(AUDIT_ID))}END\n"
    )
    return f"DO {dollar_quote(body)}"


def _partitions_to(spec: AuditSpec, role: str) -> str:
    """Hand every partition of the audit table to ``role`` too: ALTER TABLE ... OWNER TO does
    not reach partitions, and ``maintain`` run as the owner must drain the default partition
    and detach or drop the old ones (partitions ``maintain`` creates later are the owner's)."""
    body = f"""
DECLARE
  part pg_catalog.regclass;
BEGIN
  FOR part IN
    WITH RECURSIVE parts(oid) AS (
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        WHERE i.inhparent = {regclass(spec.schema, spec.audit_table)}
      UNION
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN parts p ON i.inhparent = p.oid
    )
    SELECT oid::pg_catalog.regclass FROM parts ORDER BY oid
  LOOP
    EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO %s', part, {literal(role)});
  END LOOP;
END
"""
    return f"DO {dollar_quote(body)}"


def render_grants(
    spec: AuditSpec,
    *,
    writers: tuple[str, ...],
    readers: tuple[str, ...] = (),
    owner: str | None = None,
) -> tuple[str, ...]:
    """The least-privilege script of one audited table (see SECURITY.md).

    ``owner`` becomes the owner of the audit table and of the library's functions, so that the
    SECURITY DEFINER trigger function writes as that role; ``writers`` get DML on the audited
    table (TRUNCATE only when TRUNCATE is audited), USAGE on its serial sequences and nothing
    else on any object of it or of the library; ``readers`` get SELECT on the audit table.  The
    revokes come before the readers' grant, so a role that is both a writer and a reader can
    read the history and still not write it.
    """
    source = qualified(spec.schema, spec.table)
    audit = qualified(spec.schema, spec.audit_table)
    # A CDC table's source has no function, guard or key table (the consumer's side has them).
    names = (
        [] if spec.cdc else [spec.function, *([guard_function(spec)] if spec.append_only else [])]
    )
    functions = [qualified(spec.schema, f) for f in names]
    schema = [f"GRANT USAGE ON SCHEMA {quote(spec.schema)} TO "] if spec.schema else []
    statements: list[str] = [f"REVOKE ALL ON FUNCTION {f}() FROM PUBLIC" for f in functions]
    if owner is not None:
        role = _role(owner)
        statements += [f"ALTER TABLE {audit} OWNER TO {role}", _partitions_to(spec, role)]
        statements += [f"ALTER FUNCTION {f}() OWNER TO {role}" for f in functions]
        statements += [prefix + role for prefix in schema]
        if reads_source(spec) and not spec.cdc:
            statements.append(_owner_reads(spec, role))
    for writer in writers:
        role = _role(writer)
        # Also done by the block below for every role; said here so the script reads plainly.
        statements += [f"REVOKE ALL ON {audit} FROM {role}"]
        statements += [f"REVOKE ALL ON FUNCTION {f}() FROM {role}" for f in functions]
        statements += [prefix + role for prefix in schema]
        statements.append(f"GRANT {', '.join(writer_rights(spec))} ON {source} TO {role}")
    statements.append(_exact_rights(spec, names, writers, readers))
    # the redaction key: the owner's alone, readers included get nothing
    if spec.hashes and not spec.cdc:
        statements += key_table_grants(spec.schema, owner, spec.function)
    for reader in readers:
        role = _role(reader)
        statements += [prefix + role for prefix in schema]
        statements.append(f"GRANT SELECT ON {audit} TO {role}")
    return tuple(statements)
