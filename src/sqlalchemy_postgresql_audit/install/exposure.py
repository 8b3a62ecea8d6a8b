"""Read what could let history be rewritten or changes go unrecorded without touching the
trigger or the function: who owns the audit table and its sequences, rules and row-level
security on the audit table, source columns the declaration does not know about,
inheritance children of a row-mode table, and writers that may switch every trigger off
(``replica_setters``).

Only reads; ``.watch.exposure_states`` judges what is read (pure, like ``.compare``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

from ..declare.spec import AuditSpec
from ..render.sql import name_text


@dataclass(frozen=True, slots=True, kw_only=True)
class Exposure:
    """What the catalog says about one audited table's audit table and source columns."""

    #: The owner of the installed trigger function (it writes as this role), if installed.
    function_owner: str | None
    #: (object, owner) for the audit table and each sequence it owns.
    owners: tuple[tuple[str, str], ...]
    #: Rules on the audit table, beside the implicit ``_RETURN`` of a view.
    rules: tuple[str, ...]
    #: Whether row-level security is enabled on the audit table.
    row_security: bool
    #: The source table's columns, as PostgreSQL has them.
    source_columns: tuple[str, ...]
    #: Inheritance children of the source (not partitions), whose rows its row triggers miss.
    inheritance_children: tuple[str, ...] = ()


_OWNERS = text(
    """
    SELECT c.oid::pg_catalog.regclass::text, c.relowner::pg_catalog.regrole::text
    FROM pg_catalog.pg_class c
    WHERE c.oid = pg_catalog.to_regclass(:audit)
    UNION ALL
    SELECT d.objid::pg_catalog.regclass::text, s.relowner::pg_catalog.regrole::text
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.refobjid = pg_catalog.to_regclass(:audit) AND d.deptype IN ('a', 'i')
    """
)

_FUNCTION_OWNER = text(
    """
    SELECT p.proowner::pg_catalog.regrole::text FROM pg_catalog.pg_proc p
    WHERE p.oid = pg_catalog.to_regprocedure(:function)
    """
)

_RULES = text(
    """
    SELECT r.rulename FROM pg_catalog.pg_rewrite r
    WHERE r.ev_class = pg_catalog.to_regclass(:audit) AND r.rulename <> '_RETURN'
    ORDER BY r.rulename
    """
)

_ROW_SECURITY = text(
    "SELECT c.relrowsecurity FROM pg_catalog.pg_class c"
    " WHERE c.oid = pg_catalog.to_regclass(:audit)"
)

_COLUMNS = text(
    """
    SELECT a.attname FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = pg_catalog.to_regclass(:source) AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum
    """
)


_INHERITANCE_CHILDREN = text(
    """
    SELECT i.inhrelid::pg_catalog.regclass::text
    FROM pg_catalog.pg_inherits i
    JOIN pg_catalog.pg_class c ON c.oid = i.inhparent AND c.relkind = 'r'
    WHERE i.inhparent = pg_catalog.to_regclass(:source)
    ORDER BY i.inhrelid
    """
)


def exposure(connection: Connection, spec: AuditSpec) -> Exposure:
    """Read ``spec``'s (resolved, schema set) exposure from the catalog."""
    audit = name_text(spec.schema, spec.audit_table)
    names = {
        "audit": audit,
        "source": name_text(spec.schema, spec.table),
        "function": name_text(spec.schema, spec.function) + "()",
    }
    return Exposure(
        function_owner=connection.execute(_FUNCTION_OWNER, names).scalar(),
        owners=tuple((str(r[0]), str(r[1])) for r in connection.execute(_OWNERS, names)),
        rules=tuple(str(r) for r in connection.execute(_RULES, names).scalars()),
        row_security=bool(connection.execute(_ROW_SECURITY, names).scalar()),
        source_columns=tuple(str(c) for c in connection.execute(_COLUMNS, names).scalars()),
        inheritance_children=tuple(
            str(c) for c in connection.execute(_INHERITANCE_CHILDREN, names).scalars()
        ),
    )


#: PostgreSQL 15 lets a superuser grant SET on ``session_replication_role`` to any role.
_REPLICA_SETTERS = text(
    """
    SELECT w.name FROM unnest(CAST(:roles AS text[]), CAST(:quoted AS text[])) AS w(name, quoted)
    JOIN pg_catalog.pg_roles r ON r.oid = pg_catalog.to_regrole(w.quoted)
    WHERE r.rolsuper
       OR pg_catalog.has_parameter_privilege(r.oid, 'session_replication_role', 'SET')
    """
)

_SUPERUSERS = text(
    """
    SELECT w.name FROM unnest(CAST(:roles AS text[]), CAST(:quoted AS text[])) AS w(name, quoted)
    JOIN pg_catalog.pg_roles r ON r.oid = pg_catalog.to_regrole(w.quoted)
    WHERE r.rolsuper
    """
)


def replica_setters(connection: Connection, roles: Sequence[str]) -> tuple[str, ...]:
    """Those of ``roles`` that may ``SET session_replication_role``, which switches every
    trigger off: superusers, and from PostgreSQL 15 on roles granted SET on it (directly or
    through a group)."""
    version = connection.dialect.server_version_info or (0,)
    query = _REPLICA_SETTERS if version >= (15,) else _SUPERUSERS
    quoted = [name_text(None, role) for role in roles]
    return tuple(
        str(r)
        for r in connection.execute(query, {"roles": list(roles), "quoted": quoted}).scalars()
    )
