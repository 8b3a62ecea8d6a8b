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

from sqlalchemy import Connection, bindparam, text

from .partitions import with_partitions
from .render import COMMENT_MARKER
from .spec import AuditSpec

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

_TRIGGERS = text(
    """
    SELECT t.tgfoid, t.tgname, n.nspname, c.relname, t.tgtype, t.tgenabled::text AS tgenabled,
           t.tgoldtable, t.tgnewtable, t.tgqual IS NOT NULL AS conditional,
           pg_catalog.cardinality(t.tgattr::pg_catalog.int2[]) > 0 AS column_list,
           t.tgparentid <> 0 AS clone
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
    triggers: dict[int, list[TriggerState]] = defaultdict(list)
    clones: dict[int, list[TriggerState]] = defaultdict(list)
    if functions:
        for row in connection.execute(_TRIGGERS, {"functions": [f.oid for f in functions]}):
            (clones if row.clone else triggers)[row.tgfoid].append(_trigger_state(row))
    audits = [
        InstalledAudit(
            schema=f.nspname,
            function=f.proname,
            body=f.prosrc,
            config=tuple(f.proconfig or ()),
            security_definer=bool(f.prosecdef),
            spec=_parse_comment(f.description),
            triggers=tuple(triggers[f.oid]),
            clones=tuple(clones[f.oid]),
        )
        for f in functions
    ]
    return with_partitions(connection, audits)


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
    )
