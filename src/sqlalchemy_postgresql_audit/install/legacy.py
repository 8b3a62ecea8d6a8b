"""Recognise what the 0.5.x releases installed, so that a migration can replace it in place.

0.5.x installed, per audited table, one row-level trigger named by the ``audit.trigger``
convention (no ``_insert`` suffix) calling an uncommented function named by the
``audit.function`` convention.  A declared audited table with such a trigger is a legacy
installation: autogenerate replaces it (instead of installing beside it, which would audit every
write twice), and the migration's ``previous`` is a template-0 spec that reinstalls the 0.5.x
objects on downgrade.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy import Connection, Table, bindparam, text

from ..declare import naming
from ..declare.options import Operation
from ..declare.spec import AUDIT_OPERATION, AUDIT_TIMESTAMP, AuditSpec, TriggerSpec
from ..errors import AuditError
from ..render import COMMENT_MARKER, render
from .catalog import _trigger_state

log = logging.getLogger(__name__)

#: The template version that renders what 0.5.x installed.
LEGACY_TEMPLATE = 0

_OPERATIONS: tuple[Operation, ...] = ("INSERT", "UPDATE", "DELETE")

_LEGACY_TRIGGERS = text(
    """
    SELECT n.nspname, c.relname, t.tgname, t.tgtype, t.tgenabled::text AS tgenabled,
           t.tgoldtable, t.tgnewtable, t.tgqual IS NOT NULL AS conditional,
           pg_catalog.cardinality(t.tgattr::pg_catalog.int2[]) > 0 AS column_list,
           false AS edited,  -- 0.5.x had no key trigger, whose condition's digest this reads
           fn.nspname AS function_schema, p.proname, p.prosrc,
           -- 0.5.x named its function unqualified; template 0 does too, so the search path
           -- must find this very function
           pg_catalog.to_regprocedure(pg_catalog.quote_ident(p.proname) || '()') = p.oid
             AS on_search_path
    FROM pg_catalog.pg_trigger t
    JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
    JOIN pg_catalog.pg_namespace fn ON fn.oid = p.pronamespace
    LEFT JOIN pg_catalog.pg_description d
      ON d.objoid = p.oid AND d.classoid = 'pg_catalog.pg_proc'::regclass AND d.objsubid = 0
    WHERE NOT t.tgisinternal AND t.tgparentid = 0
      AND n.nspname IN :schemas AND c.relname IN :tables AND t.tgname IN :triggers
      AND p.proname IN :functions
      AND (d.description IS NULL OR NOT starts_with(d.description, :marker))
    """
).bindparams(
    bindparam("schemas", expanding=True),
    bindparam("tables", expanding=True),
    bindparam("triggers", expanding=True),
    bindparam("functions", expanding=True),
)


#: The columns every 0.5.x audit table starts with, in this order.  0.5.x wrote no comment on
#: its audit tables, so this shape is what recognises one whose source table is gone.
LEGACY_AUDIT_COLUMNS = (AUDIT_OPERATION, AUDIT_TIMESTAMP)


def is_legacy_audit_table(table: Table) -> bool:
    """Whether ``table`` (reflected) has the shape of an audit table 0.5.x created."""
    return tuple(column.name for column in table.columns)[:2] == LEGACY_AUDIT_COLUMNS


class LegacyInstallationError(AuditError):
    """A 0.5.x installation that cannot be replaced safely as found."""


def legacy_trigger_name(table: Table) -> str:
    """The name 0.5.x gave the one trigger of ``table``: the ``audit.trigger`` convention."""
    return naming.apply_convention(
        table.metadata.naming_convention,
        naming.TRIGGER_KEY,
        naming.DEFAULT_AUDIT_TABLE_TRIGGER_CONVENTION,
        {"table_name": table.name, "schema": table.schema or "public"},
    )


def legacy_spec(table: Table, spec: AuditSpec, operations: Iterable[str]) -> AuditSpec:
    """The template-0 spec of what 0.5.x installed for the declared ``table``.

    0.5.x had no options: every source column mirrored, one row trigger, no captures.
    """
    trigger = legacy_trigger_name(table)
    return replace(
        spec,
        template=LEGACY_TEMPLATE,
        mode="row",
        triggers=tuple(
            TriggerSpec(name=trigger, operation=op) for op in _OPERATIONS if op in operations
        ),
        columns=tuple(column.name for column in table.columns),
        exclude_columns=(),
        skip_unchanged=False,
        key_columns=(),
        captures=(),
        truncate_rows=False,
    )


def legacy_audits(
    connection: Connection, declared: Iterable[tuple[Table, AuditSpec]], default_schema: str
) -> dict[tuple[str, str], AuditSpec]:
    """The 0.5.x installations of the ``declared`` tables, as template-0 specs of what is
    installed, keyed by (real schema, table)."""
    wanted = {
        (spec.schema or default_schema, spec.table, legacy_trigger_name(table), spec.function): (
            table,
            spec,
        )
        for table, spec in declared
    }
    if not wanted:
        return {}
    rows = connection.execute(
        _LEGACY_TRIGGERS,
        {
            "schemas": sorted({key[0] for key in wanted}),
            "tables": sorted({key[1] for key in wanted}),
            "triggers": sorted({key[2] for key in wanted}),
            "functions": sorted({key[3] for key in wanted}),
            "marker": COMMENT_MARKER,
        },
    ).all()
    found: dict[tuple[str, str], AuditSpec] = {}
    for row in rows:
        match = wanted.get((row.nspname, row.relname, row.tgname, row.proname))
        if match is None:
            continue
        table, spec = match
        if not row.on_search_path:
            raise LegacyInstallationError(
                f"table {row.nspname}.{row.relname}: its 0.5.x audit function "
                f"{row.function_schema}.{row.proname}() is not the one the search path finds, "
                "and 0.5.x named it unqualified; run autogenerate and the migration with "
                f"{row.function_schema!r} on the search path"
            )
        state = _trigger_state(row)
        events = state.events & set(_OPERATIONS)
        if not events:
            continue
        legacy = legacy_spec(table, spec, events)
        exact = (  # then a downgrade reinstalls exactly what is there now
            row.prosrc == render(legacy).function_body
            and (state.timing, state.level) == ("AFTER", "ROW")
            and state.events == events
            and state.enabled
            and not state.conditional
            and not state.column_list
        )
        if not exact:
            log.warning(
                "The 0.5.x audit function or trigger of table %s.%s differs from what 0.5.x "
                "installs for the table as declared now; the migration replaces it, and its "
                "downgrade reinstalls the 0.5.x objects of the current declaration",
                row.nspname,
                row.relname,
            )
        found[(row.nspname, row.relname)] = legacy
    return found
