"""Template version 0: what 0.5.x installed.

Never installed by this library for a new table: template 0 exists so that a migration
upgrading a 0.5.x installation can name what it replaces, and so that its downgrade reinstalls
the 0.5.x objects as 0.5.x wrote them.  Like 0.5.x, the function is created and dropped
unqualified (the search path picks its schema), is not commented, and one row-level trigger
named ``spec.triggers[*].name`` fires for every recorded operation.
"""

from __future__ import annotations

from ..declare.spec import (
    AUDIT_OPERATION,
    AUDIT_TIMESTAMP,
    OPERATION_CODES,
    AuditSpec,
)
from .sql import (
    RenderedAudit,
    dollar_quote,
    drop_trigger,
    literal,
    qualified,
    quote,
)

_V0_OPERATIONS = ("INSERT", "UPDATE", "DELETE")


def render_v0(spec: AuditSpec) -> RenderedAudit:
    names = {trigger.name for trigger in spec.triggers}
    operations = {trigger.operation for trigger in spec.triggers}
    if (
        len(names) != 1
        or not operations <= set(_V0_OPERATIONS)
        or spec.mode != "row"
        or spec.captures
        or spec.exclude_columns
        or spec.skip_unchanged
        or spec.truncate_rows
    ):
        raise ValueError(
            f"audit spec of {spec.table!r}: template 0 renders only what 0.5.x installed "
            "(one row trigger for INSERT, UPDATE and DELETE, no options)"
        )
    (trigger,) = names
    body = _function_body_v0(spec)
    plain = spec.function.isascii() and spec.function.isidentifier()
    tag = f"${spec.function}$" if plain else None
    quoted_body = f"{tag}{body}{tag}" if tag and tag not in body else dollar_quote(body)
    function = quote(spec.function)
    events = " OR ".join(op for op in _V0_OPERATIONS if op in operations)
    table = qualified(spec.schema, spec.table)
    return RenderedAudit(
        function_body=body,
        install=(
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS TRIGGER AS {quoted_body} "
            "LANGUAGE plpgsql",
            drop_trigger(spec.schema, spec.table, trigger),
            f"CREATE TRIGGER {quote(trigger)}\nAFTER {events} ON {table}\n"
            f"FOR EACH ROW EXECUTE PROCEDURE {function}()",
        ),
        uninstall=(
            drop_trigger(spec.schema, spec.table, trigger),
            f"DROP FUNCTION IF EXISTS {function}()",
        ),
    )


def _function_body_v0(spec: AuditSpec) -> str:
    """The 0.5.x function body, byte for byte (its layout included: downgrades compare equal)."""
    values = [
        f"current_setting({literal('audit.' + s.name)}, {'false' if s.required else 'true'})"
        f"::{s.sql_type}"
        for s in spec.settings
    ]
    checks = " ".join(
        f"IF {value}::VARCHAR = '' THEN RAISE EXCEPTION "
        f"{literal(f'audit.{s.name} session setting must be set to a non null/empty value')}; "
        "END IF;"
        for s, value in zip(spec.settings, values, strict=True)
        if s.required
    )
    settings = [s.column for s in spec.settings]
    target = ", ".join(
        quote(c) for c in (AUDIT_OPERATION, AUDIT_TIMESTAMP, *settings, *spec.columns)
    )
    audit_table = qualified(spec.schema, spec.audit_table)

    def insert(op: str, row: str) -> str:
        elements = ", ".join(
            [literal(OPERATION_CODES[op]), "now()", *values]
            + [f"{row}.{quote(c)}" for c in spec.columns]
        )
        return f"INSERT INTO {audit_table} ({target}) SELECT {elements};"

    return (
        f"\nBEGIN\n    {checks}\n\n"
        f"    IF (TG_OP = 'DELETE') THEN\n        {insert('DELETE', 'OLD')}\n"
        f"    ELSIF (TG_OP = 'UPDATE') THEN\n        {insert('UPDATE', 'NEW')}\n"
        f"    ELSIF (TG_OP = 'INSERT') THEN\n        {insert('INSERT', 'NEW')}\n"
        "    END IF;\n"
        "    RETURN NULL; -- result is ignored since this is an AFTER trigger\n"
        "END;\n"
    )


def legacy_timestamp_using(column: str, zone: str) -> str:
    """The ``USING`` expression that moves a 0.5.x zone-less timestamp to (or back from) a time
    zone aware one, reading the stored wall-clock times as times in ``zone``."""
    return f"{quote(column)} AT TIME ZONE {literal(zone)}"
