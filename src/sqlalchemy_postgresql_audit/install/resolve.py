"""Where an audited table really lives, and whether its audit table can take the writes.

Both read the catalog of the connection about to install: ``resolve_specs`` turns a declared
spec into the installed form (real schema), ``check_audit_tables`` refuses to install a
function that would write columns its audit table does not have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import ARRAY, Connection, Text, bindparam, text

from ..declare.naming import MAX_IDENTIFIER_BYTES
from ..declare.spec import FIXED_AUDIT_COLUMNS, AuditSpec, capture_column
from ..declare.specify import STATEMENT_MODE_ON_PARTITIONS
from ..errors import AuditConfigurationError


def resolve_specs(bind: Connection | None, specs: Sequence[AuditSpec]) -> list[AuditSpec]:
    """``resolve_spec`` for many specs, with one catalog query.

    The connection's ``schema_translate_map`` applies first, as it does to the table's own DDL;
    a schema still ``None`` is the schema PostgreSQL finds the table in along ``search_path``
    (never the session's temporary schema), or where it would create it.
    """
    if bind is None:
        return list(specs)
    schemas = resolve_schemas(bind, [(spec.schema, spec.table) for spec in specs])
    return [
        spec if spec.schema == schema else replace(spec, schema=schema)
        for spec, (schema, _) in zip(specs, schemas, strict=True)
    ]


def resolve_schemas(
    bind: Connection, names: Sequence[tuple[str | None, str]]
) -> list[tuple[str | None, str]]:
    """Each ``(schema, table)`` with its schema resolved as ``resolve_specs`` resolves a
    spec's (for tables that are not audited, or not by this metadata's specs)."""
    translate = bind.get_execution_options().get("schema_translate_map") or {}
    translated = [(translate.get(schema, schema), table) for schema, table in names]
    unqualified = sorted({table for schema, table in translated if schema is None})
    if not unqualified:
        return translated
    found: dict[str, str] = {
        row[0]: row[1] for row in bind.execute(_SEARCH_PATH_SCHEMAS, {"tables": unqualified})
    }
    fallback = bind.execute(_CREATION_SCHEMA).scalar()
    return [
        (found.get(table, fallback) if schema is None else schema, table)
        for schema, table in translated
    ]


# For each table name: the first schema of search_path holding a table of that name.
_SEARCH_PATH_SCHEMAS = text(
    """
    SELECT DISTINCT ON (c.relname) c.relname, n.nspname
    FROM unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS s(name, position)
    JOIN pg_catalog.pg_namespace n ON n.nspname = s.name
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid
    WHERE c.relname = ANY(:tables) AND c.relkind IN ('r', 'p')
      AND n.oid <> pg_catalog.pg_my_temp_schema()
    ORDER BY c.relname, s.position
    """
).bindparams(bindparam("tables", type_=ARRAY(Text())))

# Where CREATE TABLE without a schema puts a table: the first existing schema of search_path.
_CREATION_SCHEMA = text(
    """
    SELECT n.nspname
    FROM unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS s(name, position)
    JOIN pg_catalog.pg_namespace n ON n.nspname = s.name
    WHERE n.oid <> pg_catalog.pg_my_temp_schema()
    ORDER BY s.position
    LIMIT 1
    """
)

# The audit table's columns, and whether it is the installer's to adopt: owned by the
# installing role or a role it is explicitly a member of (a superuser counts as a member of
# every role, so ``pg_has_role`` would adopt anything), or by the owner of the installed trigger
# function (a re-install after the grant step handed both to a dedicated owner).
_AUDIT_TABLE_COLUMNS = text(
    """
    WITH RECURSIVE installer(oid) AS (
        SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user
      UNION
        SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN installer i ON m.member = i.oid
    )
    SELECT n.nspname, c.relname, array_agg(a.attname::text),
           c.relowner::pg_catalog.regrole::text AS owner,
           c.relowner IN (SELECT oid FROM installer)
             OR c.relowner IN (SELECT p.proowner FROM pg_catalog.pg_proc p
                               WHERE p.pronamespace = n.oid AND p.proname = wanted.function
                                 AND p.pronargs = 0) AS ours
    FROM unnest(:schemas, :tables, :functions) AS wanted(schema, name, function)
    JOIN pg_catalog.pg_namespace n ON n.nspname = wanted.schema
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = wanted.name
    JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    GROUP BY n.nspname, c.relname, c.relowner, n.oid, wanted.function
    """
).bindparams(
    bindparam("schemas", type_=ARRAY(Text())),
    bindparam("tables", type_=ARRAY(Text())),
    bindparam("functions", type_=ARRAY(Text())),
)


# Inheritance children of plain tables (not partitions): row triggers on the parent never fire
# for their rows, even when a statement names the parent.
_INHERITANCE_CHILDREN = text(
    """
    SELECT n.nspname, c.relname,
           array_agg(i.inhrelid::pg_catalog.regclass::text ORDER BY i.inhrelid)
    FROM unnest(:schemas, :tables) AS wanted(schema, name)
    JOIN pg_catalog.pg_namespace n ON n.nspname = wanted.schema
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = wanted.name
    JOIN pg_catalog.pg_inherits i ON i.inhparent = c.oid
    WHERE c.relkind = 'r'
    GROUP BY n.nspname, c.relname
    """
).bindparams(bindparam("schemas", type_=ARRAY(Text())), bindparam("tables", type_=ARRAY(Text())))


# Tables whose rows statement triggers cannot all see: partitioned tables (rows written to a
# partition directly), partitions and inheritance children (rows changed through the parent).
_PARTITIONED = text(
    """
    SELECT n.nspname, c.relname
    FROM unnest(:schemas, :tables) AS wanted(schema, name)
    JOIN pg_catalog.pg_namespace n ON n.nspname = wanted.schema
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = wanted.name
    WHERE c.relkind = 'p' OR c.relispartition
       OR EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid)
    """
).bindparams(bindparam("schemas", type_=ARRAY(Text())), bindparam("tables", type_=ARRAY(Text())))


def _as_stored(name: str) -> str:
    """``name`` as PostgreSQL stores it: cut to 63 bytes on a character boundary (it truncates
    longer identifiers, with a notice, everywhere, the function body included)."""
    encoded = name.encode("utf-8")
    if len(encoded) <= MAX_IDENTIFIER_BYTES:
        return name
    return encoded[:MAX_IDENTIFIER_BYTES].decode("utf-8", errors="ignore")


def check_audit_tables(connection: Connection, specs: Sequence[AuditSpec]) -> None:
    """Raise unless each (resolved) spec's audit table exists with every column it writes, is
    owned by the installing role, a role it is a member of or the trigger function's owner (a
    table another role made first is never adopted: its owner could rewrite the history written
    into it), no partitioned table would be audited in statement mode, and no table with
    inheritance children (not partitions) in row mode.

    The installed function would otherwise fail on the first write, far from the cause (a
    column added to the source outside the models, an audit table not migrated); statement
    triggers on a partitioned table (one reflected without its ``postgresql_partition_by``, say)
    would silently miss writes addressed to its partitions.
    """
    if not specs:
        return
    statement = [spec for spec in specs if spec.mode == "statement"]
    if statement:
        rows = connection.execute(
            _PARTITIONED,
            {"schemas": [s.schema for s in statement], "tables": [s.table for s in statement]},
        )
        partitioned = {(schema, table) for schema, table in rows}
        for spec in statement:
            if (spec.schema, spec.table) in partitioned:
                raise AuditConfigurationError(spec.table, "mode", STATEMENT_MODE_ON_PARTITIONS)
    row = [spec for spec in specs if spec.mode == "row"]
    if row:
        rows = connection.execute(
            _INHERITANCE_CHILDREN,
            {"schemas": [s.schema for s in row], "tables": [s.table for s in row]},
        )
        children = {(schema, table): names for schema, table, names in rows}
        for spec in row:
            found_children = children.get((spec.schema, spec.table))
            if found_children:
                raise AuditConfigurationError(
                    spec.table,
                    "mode",
                    f"is 'row' on a table with inheritance children ({', '.join(found_children)}):"
                    " row triggers on a parent never fire for its children's rows, so UPDATE and "
                    "DELETE of them through the parent would go unaudited; use mode='statement' "
                    "or detach the children (ALTER TABLE ... NO INHERIT)",
                )
    rows = connection.execute(
        _AUDIT_TABLE_COLUMNS,
        {
            "schemas": [spec.schema for spec in specs],
            "tables": [spec.audit_table for spec in specs],
            "functions": [_as_stored(spec.function) for spec in specs],
        },
    )
    present = {(row[0], row[1]): row for row in rows}
    for spec in specs:
        target = f"{spec.schema}.{spec.audit_table}"
        found = present.get((spec.schema, spec.audit_table))
        if found is None:
            raise AuditConfigurationError(
                spec.table,
                "audit.table",
                f"cannot be installed: its audit table {target} does not exist (create it "
                "with create_all or a migration first)",
            )
        if not found.ours:
            raise AuditConfigurationError(
                spec.table,
                "audit.table",
                f"cannot be installed: its audit table {target} is owned by {found.owner}, "
                "neither the installing role, a role it is a member of, nor the owner of the "
                "trigger function; whoever owns the audit table "
                "can rewrite history, so it is not adopted (drop it, or ALTER TABLE ... OWNER "
                "TO the migrator or the audit owner, after checking its rows)",
            )
        columns = set(found[2])
        needed = [
            *FIXED_AUDIT_COLUMNS,
            *(capture_column(capture) for capture in spec.captures),
            *(setting.column for setting in spec.settings),
            *spec.columns,
        ]
        missing = [name for name in needed if _as_stored(name) not in columns]
        if missing:
            raise AuditConfigurationError(
                spec.table,
                missing[0],
                f"is not a column of audit table {target} in the database, so auditing "
                "cannot be installed (add the column to the audit table, e.g. with an Alembic "
                "migration, then install again)",
            )
