"""Read what auditing is installed in a database: functions, their specs, and their triggers.

Functions installed by this library carry their ``AuditSpec`` as JSON in their comment; the
function body (``prosrc``) and the triggers that call the function are read as PostgreSQL stores
them, so hand edits show up exactly.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, text

from ..declare.spec import AUDIT_ID, AuditSpec
from ..render import COMMENT_MARKER, GRANTS_MARKER, cdc_truncate, guard_function
from ..render import cdc as cdc_sql
from ..render.key_trigger import KEY_TRIGGER_COMMENT
from ..render.sql import name_text
from .partitions import with_partitions

# pg_trigger.tgtype bits
_ROW, _BEFORE, _INSERT, _DELETE, _UPDATE, _TRUNCATE, _INSTEAD = 1, 2, 4, 8, 16, 32, 64


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerState:
    """The parts of a trigger that decide what it records."""

    name: str
    schema: str
    table: str
    timing: str  # AFTER, BEFORE, INSTEAD OF
    level: str  # ROW or STATEMENT
    events: frozenset[str]
    old_table: str | None
    new_table: str | None
    enabled: bool  # fires in normal operation: not disabled, not replica-only
    conditional: bool  # has a WHEN clause
    column_list: bool  # UPDATE OF <columns>
    #: A WHEN clause that no longer matches the digest installing recorded in the trigger's
    #: comment (``render.key_trigger``): the condition was edited.  Clones are never edited.
    edited: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class InstalledAudit:
    """One function installed by this library and the triggers that call it."""

    schema: str
    function: str
    body: str
    config: tuple[str, ...]  # proconfig: settings the function runs with
    security_definer: bool
    spec: AuditSpec | None  # None when the comment was edited into something unreadable
    triggers: tuple[TriggerState, ...]
    #: The copies PostgreSQL keeps of a row trigger on each partition (``tgparentid``): one can
    #: be disabled on its own, or outlive a change of the parent to statement level.
    clones: tuple[TriggerState, ...] = ()
    #: The function's triggers on other tables than its own: template 2's TRUNCATE triggers on
    #: the table's partitions and inheritance children (``.partitions``).
    partition_triggers: tuple[TriggerState, ...] = ()
    #: Every table inheriting from the audited one, at any depth, as (schema, name).
    partitions: tuple[tuple[str, str], ...] = ()
    #: Those of ``partitions`` that are inheritance children, not partitions: the ones that
    #: need a key trigger of their own (``render.key_trigger``).
    inheritance_children: tuple[tuple[str, str], ...] = ()
    #: The append-only guard of an ``append_only`` spec's audit table; None when its function
    #: is gone (or the installed spec is not append-only).
    guard: InstalledGuard | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InstalledGuard:
    """The append-only guard function and the triggers that call it."""

    function: str
    body: str
    config: tuple[str, ...]
    triggers: tuple[TriggerState, ...]


_FUNCTIONS = text(
    """
    SELECT p.oid, n.nspname, p.proname, p.prosrc, p.proconfig, p.prosecdef, d.description
    FROM pg_catalog.pg_proc p
    JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    JOIN pg_catalog.pg_description d
      ON d.objoid = p.oid AND d.classoid = 'pg_catalog.pg_proc'::regclass AND d.objsubid = 0
    WHERE n.nspname IN :schemas AND starts_with(d.description, :marker)
    ORDER BY n.nspname, p.proname
    """
).bindparams(bindparam("schemas", expanding=True))

#: Functions by name, for the guards (they carry no comment: their name says what they are).
_NAMED_FUNCTIONS = text(
    """
    SELECT p.oid, n.nspname, p.proname, p.prosrc, p.proconfig
    FROM pg_catalog.pg_proc p
    JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname IN :schemas AND p.proname IN :names AND p.pronargs = 0
    """
).bindparams(bindparam("schemas", expanding=True), bindparam("names", expanding=True))

_TRIGGERS = text(
    """
    SELECT t.tgfoid, t.tgname, n.nspname, c.relname, t.tgtype, t.tgenabled::text AS tgenabled,
           t.tgoldtable, t.tgnewtable, t.tgqual IS NOT NULL AS conditional,
           pg_catalog.cardinality(t.tgattr::pg_catalog.int2[]) > 0 AS column_list,
           t.tgparentid <> 0 AS clone,
           t.tgqual IS NOT NULL AND t.tgparentid = 0
             AND pg_catalog.obj_description(t.oid, 'pg_trigger') IS DISTINCT FROM :key_comment
               || pg_catalog.encode(pg_catalog.sha256(
                    pg_catalog.convert_to(t.tgqual::pg_catalog.text, 'UTF8')), 'hex') AS edited
    FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE NOT t.tgisinternal AND t.tgfoid IN :functions
    ORDER BY t.tgname, n.nspname, c.relname
    """
).bindparams(bindparam("functions", expanding=True))


def default_schema(connection: Connection) -> str:
    return str(connection.execute(text("SELECT current_schema()")).scalar_one())


def installed_audits(connection: Connection, schemas: Iterable[str]) -> list[InstalledAudit]:
    """Every audit function in ``schemas`` (real names, not None) with its triggers."""
    schema_list = sorted(set(schemas))
    if not schema_list:
        return []
    functions = connection.execute(
        _FUNCTIONS, {"schemas": schema_list, "marker": COMMENT_MARKER}
    ).all()
    specs = {f.oid: _parse_comment(f.description) for f in functions}
    guards = _guard_functions(connection, [spec for spec in specs.values() if spec is not None])
    triggers: dict[int, list[TriggerState]] = defaultdict(list)
    clones: dict[int, list[TriggerState]] = defaultdict(list)
    oids = [f.oid for f in functions] + [g.oid for g in guards.values()]
    if oids:
        arguments = {"functions": oids, "key_comment": KEY_TRIGGER_COMMENT}
        for row in connection.execute(_TRIGGERS, arguments):
            (clones if row.clone else triggers)[row.tgfoid].append(_trigger_state(row))
    audits = [
        InstalledAudit(
            schema=f.nspname,
            function=f.proname,
            body=f.prosrc,
            config=tuple(f.proconfig or ()),
            security_definer=bool(f.prosecdef),
            spec=specs[f.oid],
            triggers=tuple(triggers[f.oid]),
            clones=tuple(clones[f.oid]),
            guard=_guard(guards, triggers, f.nspname, specs[f.oid]),
        )
        for f in functions
    ]
    return with_partitions(connection, audits)


def _guard_functions(connection: Connection, specs: list[AuditSpec]) -> dict[tuple[str, str], Any]:
    """The guard functions of the append-only ``specs`` that exist, by (schema, name)."""
    wanted = {(spec.schema, guard_function(spec)) for spec in specs if spec.append_only}
    if not wanted:
        return {}
    rows = connection.execute(
        _NAMED_FUNCTIONS,
        {"schemas": sorted({s for s, _ in wanted if s}), "names": sorted({n for _, n in wanted})},
    ).all()
    return {(r.nspname, r.proname): r for r in rows if (r.nspname, r.proname) in wanted}


def _guard(
    guards: dict[tuple[str, str], Any],
    triggers: dict[int, list[TriggerState]],
    schema: str,
    spec: AuditSpec | None,
) -> InstalledGuard | None:
    if spec is None or not spec.append_only:
        return None
    row = guards.get((spec.schema or schema, guard_function(spec)))
    if row is None:
        return None
    return InstalledGuard(
        function=row.proname,
        body=row.prosrc,
        config=tuple(row.proconfig or ()),
        triggers=tuple(triggers[row.oid]),
    )


def _parse_comment(comment: str) -> AuditSpec | None:
    try:
        return AuditSpec.from_json(comment[len(COMMENT_MARKER) :])
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        return None


def _char(value: str | bytes) -> str:
    """A ``"char"`` column's value: asyncpg returns it as bytes (``b'O'``), others as str."""
    return value.decode("ascii") if isinstance(value, bytes) else value


def _trigger_state(row: object) -> TriggerState:
    tgtype: int = row.tgtype  # type: ignore[attr-defined]
    events = {
        name
        for bit, name in (
            (_INSERT, "INSERT"),
            (_DELETE, "DELETE"),
            (_UPDATE, "UPDATE"),
            (_TRUNCATE, "TRUNCATE"),
        )
        if tgtype & bit
    }
    timing = "INSTEAD OF" if tgtype & _INSTEAD else "BEFORE" if tgtype & _BEFORE else "AFTER"
    return TriggerState(
        name=row.tgname,  # type: ignore[attr-defined]
        schema=row.nspname,  # type: ignore[attr-defined]
        table=row.relname,  # type: ignore[attr-defined]
        timing=timing,
        level="ROW" if tgtype & _ROW else "STATEMENT",
        events=frozenset(events),
        old_table=row.tgoldtable,  # type: ignore[attr-defined]
        new_table=row.tgnewtable,  # type: ignore[attr-defined]
        enabled=_char(row.tgenabled) in ("O", "A"),  # type: ignore[attr-defined]
        conditional=bool(row.conditional),  # type: ignore[attr-defined]
        column_list=bool(row.column_list),  # type: ignore[attr-defined]
        edited=bool(row.edited),  # type: ignore[attr-defined]
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexState:
    """An index of an audit table: its columns (None for an expression) and uniqueness."""

    name: str
    columns: tuple[str | None, ...]
    unique: bool
    valid: bool = True


_INDEXES = text(
    """
    SELECT i.relname, ix.indisunique, ix.indisvalid,
           ARRAY(SELECT a.attname
                 FROM pg_catalog.unnest(ix.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(n, o)
                 LEFT JOIN pg_catalog.pg_attribute a
                   ON a.attrelid = ix.indrelid AND a.attnum = k.n
                 ORDER BY k.o) AS columns
    FROM pg_catalog.pg_index ix
    JOIN pg_catalog.pg_class i ON i.oid = ix.indexrelid
    WHERE ix.indrelid = pg_catalog.to_regclass(:table)
    """
)


def table_indexes(connection: Connection, schema: str, table: str) -> dict[str, IndexState]:
    """The indexes of ``schema.table`` by name (empty when the table does not exist)."""
    rows = connection.execute(_INDEXES, {"table": name_text(schema, table)}).all()
    return {
        r.relname: IndexState(
            name=r.relname,
            columns=tuple(r.columns),
            unique=bool(r.indisunique),
            valid=bool(r.indisvalid),
        )
        for r in rows
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantsRecord:
    """Which roles ``grant_least_privilege`` last made writers and readers of a table."""

    writers: tuple[str, ...]
    readers: tuple[str, ...]


_GRANTS_RECORD = text(
    """
    SELECT pg_catalog.obj_description(
             pg_catalog.to_regclass(pg_catalog.pg_get_serial_sequence(:table, :column)),
             'pg_class')
    WHERE pg_catalog.to_regclass(:table) IS NOT NULL
    """
)


def grants_record(connection: Connection, spec: AuditSpec) -> GrantsRecord | None:
    """The roles the grant step noted on the audit table's ``audit_id`` sequence, if it ran."""
    table = name_text(spec.schema, spec.audit_table)
    comment = connection.execute(_GRANTS_RECORD, {"table": table, "column": AUDIT_ID}).scalar()
    if not comment or not str(comment).startswith(GRANTS_MARKER):
        return None
    try:
        data = json.loads(str(comment)[len(GRANTS_MARKER) :])
        return GrantsRecord(
            writers=tuple(str(r) for r in data["writers"]),
            readers=tuple(str(r) for r in data["readers"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class Privilege:
    """Whether a role holds one privilege on one object of an audited table."""

    kind: str  # table, column, partition, partition column, serial sequence, ...
    object: str  # the relation or function
    column: str | None
    privilege: str
    held: bool


_PRIVILEGES = text(
    """
    WITH RECURSIVE partitions(oid) AS (
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        WHERE i.inhparent = pg_catalog.to_regclass(:source)
      UNION
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN partitions p ON i.inhparent = p.oid
    ),
    relations(oid, kind) AS (
        SELECT pg_catalog.to_regclass(:source)::pg_catalog.oid, 'table'
      UNION ALL
        SELECT oid, 'partition' FROM partitions
      UNION ALL
        SELECT pg_catalog.to_regclass(:audit)::pg_catalog.oid, 'audit table'
    ),
    sequences(oid, kind) AS (
        SELECT d.objid, CASE WHEN d.refobjid = pg_catalog.to_regclass(:audit) THEN 'audit sequence'
                             WHEN d.deptype = 'a' THEN 'serial sequence'
                             ELSE 'identity sequence' END
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN relations r ON r.oid = d.refobjid AND r.kind <> 'partition'
        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
          AND d.deptype IN ('a', 'i')
    ),
    table_privileges(p) AS (
        SELECT pg_catalog.unnest(
          ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']
          || CASE WHEN pg_catalog.current_setting('server_version_num')::int >= 170000
                  THEN ARRAY['MAINTAIN'] ELSE ARRAY[]::text[] END)
    )
    SELECT r.kind, r.oid::pg_catalog.regclass::text AS object, NULL::name AS column_name,
           t.p AS privilege, pg_catalog.has_table_privilege(:role, r.oid, t.p) AS held
    FROM relations r, table_privileges t
    WHERE r.oid IS NOT NULL
  UNION ALL
    SELECT CASE r.kind WHEN 'table' THEN 'column' WHEN 'partition' THEN 'partition column'
                ELSE 'audit column' END,
           r.oid::pg_catalog.regclass::text, a.attname, c.p,
           pg_catalog.has_column_privilege(:role, r.oid, a.attnum, c.p)
    FROM relations r
    JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped,
         pg_catalog.unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) AS c(p)
  UNION ALL
    SELECT s.kind, s.oid::pg_catalog.regclass::text, NULL, q.p,
           pg_catalog.has_sequence_privilege(:role, s.oid, q.p)
    FROM sequences s, pg_catalog.unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) AS q(p)
  UNION ALL
    SELECT 'function', p.oid::pg_catalog.regprocedure::text, NULL, 'EXECUTE',
           pg_catalog.has_function_privilege(:role, p.oid, 'EXECUTE')
    FROM pg_catalog.pg_proc p
    WHERE p.oid IN (SELECT pg_catalog.to_regprocedure(f)
                    FROM pg_catalog.unnest(CAST(:functions AS text[])) AS f)
    ORDER BY 2, 3 NULLS FIRST, 4
    """
)

_ROLE_EXISTS = text("SELECT pg_catalog.to_regrole(:role) IS NOT NULL")


def privileges(connection: Connection, spec: AuditSpec, role: str) -> list[Privilege] | None:
    """What ``role`` holds on every object of ``spec``'s table and of the library: the audited
    table, its columns, partitions and sequences, the audit table, its columns and sequence,
    the functions.  None when the role no longer exists."""
    if not connection.execute(_ROLE_EXISTS, {"role": name_text(None, role)}).scalar():
        return None
    functions = [spec.function, *([guard_function(spec)] if spec.append_only else [])]
    rows = connection.execute(
        _PRIVILEGES,
        {
            "role": role,
            "source": name_text(spec.schema, spec.table),
            "audit": name_text(spec.schema, spec.audit_table),
            "functions": [name_text(spec.schema, f) + "()" for f in functions],
        },
    ).all()
    return [Privilege(r.kind, r.object, r.column_name, r.privilege, bool(r.held)) for r in rows]


def publication_options(connection: Connection, publication: str) -> dict[str, bool] | None:
    """The CDC publication's ``render.cdc.PUBLICATION_FLAGS`` as ``pg_publication`` holds them
    (None when it does not exist)."""
    row = connection.execute(text(cdc_sql.PUBLICATION_OPTIONS), {"publication": publication})
    found = row.mappings().first()
    if found is None:
        return None
    return {flag: bool(found[flag]) for flag in cdc_sql.PUBLICATION_FLAGS}


_COLUMNS = text(
    """
    SELECT a.attname FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = pg_catalog.to_regclass(:table) AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum
    """
)


def table_columns(connection: Connection, schema: str, table: str) -> tuple[str, ...]:
    """The columns of ``schema.table`` as PostgreSQL has them (empty when it does not exist)."""
    rows = connection.execute(_COLUMNS, {"table": name_text(schema, table)}).scalars()
    return tuple(str(column) for column in rows)


@dataclass(frozen=True, slots=True)
class GuardState:
    """A partitioned CDC table (``root``) or one of its partitions, and the enabled TRUNCATE
    guard triggers it carries (``render.cdc_truncate``)."""

    relation: str
    root: bool
    guards: frozenset[str]


def partition_guards(connection: Connection, schema: str, table: str) -> list[GuardState]:
    """The table and its partitions with their guards; empty when it is not partitioned."""
    rows = connection.execute(
        text(cdc_truncate.GUARDS),
        {
            "table": name_text(schema, table),
            "function": name_text(schema, cdc_truncate.GUARD_FUNCTION) + "()",
        },
    )
    return [GuardState(r.relation, bool(r.root), frozenset(r.guards)) for r in rows]


_REPLICA_IDENTITY = text(
    "SELECT c.relreplident::text FROM pg_catalog.pg_class c "
    "WHERE c.oid = pg_catalog.to_regclass(:table)"
)


def replica_identity_code(connection: Connection, schema: str | None, table: str) -> str | None:
    """``pg_class.relreplident`` of ``schema.table`` (``d``, ``f``, ``i``, ``n``); None when it
    does not exist."""
    code = connection.execute(_REPLICA_IDENTITY, {"table": name_text(schema, table)}).scalar()
    return None if code is None else str(code)
