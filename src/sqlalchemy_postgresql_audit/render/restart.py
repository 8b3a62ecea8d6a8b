"""The marker written when auditing starts again over a trail kept from before.

A downgrade keeps the audit table while it drops the triggers, and often the source table too;
the next upgrade creates a new table whose rows may reuse the old keys.  Nothing in the old rows
says they belong to another table, so without a boundary the history API would compare the new
row 1 with the dropped table's row 1.  When auditing is installed on a table that has none of
its triggers, over an audit table whose newest row is not already such a marker, one row with
operation ``R`` (restart) and every key and mirrored column NULL is recorded first: who
installed, when, with the session settings of that transaction.  The history API treats it like
a TRUNCATE marker: no row's life crosses it, and nothing before it is compared with anything
after it.  A table leaving change-data-capture in the same transaction gets none
(``leaving_cdc_condition``): its consumer kept the trail going up to the switch.
"""

from __future__ import annotations

from ..declare.spec import AUDIT_CURRENT_USER, AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP, AuditSpec
from .cdc import PUBLICATION_FLAGS
from .cdc_decoder import PROGRESS_TABLE
from .sql import WRITER, always_qualified, always_quote, literal, regclass, resolved

#: ``audit_operation`` of the marker: the trail restarts here.
RESTART_CODE = "R"


def render_restart_marker(spec: AuditSpec) -> str:
    """``INSERT`` the restart marker, when the audit table holds rows (its newest not a marker
    already) and none of ``spec``'s triggers is on the source table; else nothing."""
    spec = resolved(spec)
    audit = always_qualified(spec.schema, spec.audit_table)
    columns = [
        always_quote(AUDIT_OPERATION),
        always_quote(AUDIT_TIMESTAMP),
        always_quote(AUDIT_CURRENT_USER),
        *(always_quote(s.column) for s in spec.settings),
    ]
    values = [
        literal(RESTART_CODE),
        "pg_catalog.now()",
        WRITER,
        *(
            f"NULLIF(pg_catalog.current_setting({literal('audit.' + s.name)}, true), '')"
            f"::{s.sql_type}"
            for s in spec.settings
        ),
    ]
    names = ", ".join(literal(t.name) for t in spec.triggers) or "NULL"
    newest = (
        f"SELECT a.{always_quote(AUDIT_OPERATION)} FROM {audit} AS a "
        f"ORDER BY a.{always_quote(AUDIT_ID)} DESC LIMIT 1"
    )
    # An empty audit table makes the newest operation NULL, and the condition not true.
    return (
        f"INSERT INTO {audit} ({', '.join(columns)})\n"
        f"SELECT {', '.join(values)}\n"
        f"WHERE ({newest}) <> {literal(RESTART_CODE)}\n"
        "AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger AS t WHERE t.tgrelid = "
        f"{regclass(spec.schema, spec.table)} AND t.tgname IN ({names}))"
        f"{leaving_cdc_condition(spec)}"
    )


def leaving_cdc_condition(spec: AuditSpec) -> str:
    """``AND NOT`` (the table leaves change-data-capture in this transaction, and its CDC trail
    is this audit table), or nothing.

    A table switched from ``mode="cdc"`` to a trigger mode gets its triggers while it is still
    in the CDC publication (the migration unpublishes it after installing them).  Where the
    decoder wrote its trail here (design 2: its progress table is in this database), the
    trail is continuous: the consumer recorded every change up to the switch, so neither a
    restart marker nor a baseline belongs there.  Where the trail was written on another
    server (design 1: no progress table here), this audit table stopped at the switch to CDC,
    so it restarts as any kept audit table does.  The CDC publication is recognised by what
    install sets on it (``cdc.PUBLICATION_FLAGS``: every operation, as partition root), since
    the spec does not name it; a publication of the user's own with the same options counts as
    well.  A CDC spec itself (its baseline before it is published) gets no condition.
    """
    if spec.cdc:
        return ""
    flags = " AND ".join(f"p.{flag}" for flag in PUBLICATION_FLAGS)
    return (
        "\nAND NOT (EXISTS (SELECT FROM pg_catalog.pg_publication_rel AS r "
        "JOIN pg_catalog.pg_publication AS p ON p.oid OPERATOR(pg_catalog.=) r.prpubid "
        f"WHERE r.prrelid OPERATOR(pg_catalog.=) {regclass(spec.schema, spec.table)} "
        f"AND {flags}) "
        "AND EXISTS (SELECT FROM pg_catalog.pg_class AS c "
        f"WHERE c.relname OPERATOR(pg_catalog.=) {literal(PROGRESS_TABLE)} "
        "AND c.relkind OPERATOR(pg_catalog.=) 'r'))"
    )
