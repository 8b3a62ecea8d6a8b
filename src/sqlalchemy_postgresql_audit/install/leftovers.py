"""Audit triggers an install would leave beside its own, so that every write is audited twice.

Three kinds, on a table being installed:

- the one trigger of a 0.5.x installation (``.legacy``), with its function;
- the triggers and function of an older declaration of the same table (a renamed
  ``audit.function`` or ``audit.trigger`` convention): this library's function, its comment
  naming the same table, under another name;
- triggers that call the declared function but are no longer among its triggers (the 0.5.x
  trigger once the function was replaced under the same name, or a renamed trigger).

``install_audit_triggers`` and ``create_all`` remove them in the same transaction, before the
install, and log each one: replaced, the way autogenerate replaces them in a migration.  A
trigger the installed declaration made itself (the key trigger of a table leaving statement
mode, e.g. for CDC) is logged at INFO; one the library did not make, at WARNING.  Only
triggers and functions go; audit tables and their history stay, and an older declaration's
append-only guard keeps guarding its audit table.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Connection, Table

from ..declare.spec import AuditSpec
from ..render import drop_function, drop_trigger, render
from .catalog import installed_audits
from .legacy import legacy_audits

log = logging.getLogger(__name__)


def leftover_statements(
    connection: Connection, pairs: Sequence[tuple[Table, AuditSpec]], default_schema: str
) -> list[str]:
    """The statements removing what installing the (resolved) specs of ``pairs`` would leave."""
    specs = [spec for _, spec in pairs]
    tables = {(spec.schema or default_schema, spec.table): spec for spec in specs}
    functions = {(spec.schema or default_schema, spec.function) for spec in specs}
    statements: list[str] = []
    for (schema, table), legacy in legacy_audits(connection, pairs, default_schema).items():
        log.warning(
            "Replacing the 0.5.x audit trigger %s on table %s.%s (and its function %s()): "
            "left beside the new triggers it would audit every write twice",
            ", ".join(sorted({t.name for t in legacy.triggers})),
            schema,
            table,
            legacy.function,
        )
        statements += render(legacy).uninstall
    for item in installed_audits(connection, {schema for schema, _ in tables}):
        if item.spec is None:
            continue
        key = (item.spec.schema or default_schema, item.spec.table)
        declared = tables.get(key)
        if declared is None:
            continue
        on_table = [t.name for t in item.triggers if (t.schema, t.table) == key]
        if (item.schema, item.function) in functions:
            wanted = _trigger_names(declared)
            own = _trigger_names(item.spec)
            for name in sorted(set(on_table) - wanted):
                # The installed declaration's own trigger (a key trigger when the table leaves
                # statement mode, for CDC): replaced as expected.  Anything else was not made
                # by the library for this declaration: say so.
                log.log(
                    logging.INFO if name in own else logging.WARNING,
                    "Dropping trigger %s on table %s.%s: it calls the audit function %s.%s() "
                    "but is not one of its declared triggers%s",
                    name,
                    *key,
                    item.schema,
                    item.function,
                    " (the installed declaration made it)" if name in own else "",
                )
                statements.append(drop_trigger(key[0], key[1], name))
            continue
        log.warning(
            "Replacing the audit function %s.%s() of an older declaration of table %s.%s, "
            "and its triggers %s; audit table %s keeps its history",
            item.schema,
            item.function,
            *key,
            ", ".join(on_table) or "(none)",
            item.spec.audit_table,
        )
        # Every trigger calling it, wherever it is; not its guard, which keeps guarding the old
        # audit table's history.
        every = (*item.triggers, *item.partition_triggers)
        statements += [drop_trigger(t.schema, t.table, t.name) for t in every]
        statements.append(drop_function(item.schema, item.function))
    return statements


def _trigger_names(spec: AuditSpec) -> set[str]:
    """The triggers the library makes for ``spec``: one per operation, and its key trigger."""
    return {t.name for t in (*spec.triggers, *filter(None, [spec.key_trigger]))}
