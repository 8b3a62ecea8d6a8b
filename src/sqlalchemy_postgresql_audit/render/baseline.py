"""The baseline a migration records when auditing starts on a table that may already hold rows.

Rows that existed before auditing began have no version, so their first UPDATE would have no
"before".  The statement records, as ``B`` versions, every source row whose key has no version
in the trail yet (since the trail's last restart marker, ``.restart``), reading session
settings like the trigger does.  It is rendered from the spec
alone (no reflection), so a migration stays frozen and offline mode (``--sql``) emits it too.
Rows changed while auditing was off are left to ``sqlalchemy_postgresql_audit.record_baseline``,
which compares values.  A table leaving change-data-capture in the same transaction gets no
baseline (``restart.leaving_cdc_condition``): its trail (here, or on design 1's target)
already holds its rows.
"""

from __future__ import annotations

from ..declare.spec import AUDIT_CURRENT_USER, AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP, AuditSpec
from .redaction import redacted_value
from .restart import RESTART_CODE, leaving_cdc_condition
from .sql import WRITER, always_qualified, always_quote, literal, resolved

#: ``audit_operation`` of a baseline version.
BASELINE_CODE = "B"


def lock_against_writes(schema: str | None, table: str) -> str:
    """``LOCK`` a table in SHARE mode: writers wait until the baseline commits, so no change
    falls between the snapshot it reads and the triggers' next audit row."""
    return f"LOCK TABLE {always_qualified(schema, table)} IN SHARE MODE"


def render_baseline(
    spec: AuditSpec, *, every_row: bool = False, rows_of: tuple[str, str] | None = None
) -> tuple[str, ...]:
    """``LOCK`` the source table against writes, then insert the missing first versions in key
    order (so their ``audit_id`` order is the key order).

    ``every_row``: a version of every row, whatever the trail holds (a CDC table published for
    the first time: design 1's consumer starts its replica from exactly these rows).
    ``rows_of``: (schema, name) of the one partition whose rows are recorded (one attached in
    this transaction: ``render.cdc_attach``), locked instead of the whole table."""
    spec = resolved(spec)
    if not spec.key_columns:
        raise ValueError(f"audit spec of {spec.table!r}: a baseline needs key_columns")
    schema, table = rows_of or (spec.schema, spec.table)
    source = always_qualified(schema, table)
    audit = always_qualified(spec.schema, spec.audit_table)
    columns = [
        always_quote(AUDIT_OPERATION),
        always_quote(AUDIT_TIMESTAMP),
        always_quote(AUDIT_CURRENT_USER),
        *(always_quote(s.column) for s in spec.settings),
        *(always_quote(c) for c in spec.columns),
    ]
    settings = [
        f"NULLIF(pg_catalog.current_setting({literal('audit.' + s.name)}, true), '')::{s.sql_type}"
        for s in spec.settings
    ]
    values = [
        literal(BASELINE_CODE),
        "pg_catalog.now()",
        WRITER,
        *settings,
        *(redacted_value(spec, c, f"s.{always_quote(c)}") for c in spec.columns),
    ]
    same_key = " AND ".join(f"a.{always_quote(k)} = s.{always_quote(k)}" for k in spec.key_columns)
    audit_id, operation = always_quote(AUDIT_ID), always_quote(AUDIT_OPERATION)
    restart = (
        f"SELECT pg_catalog.max(r.{audit_id}) FROM {audit} AS r "
        f"WHERE r.{operation} = {literal(RESTART_CODE)}"
    )
    since_restart = f"a.{audit_id} > COALESCE(({restart}), 0)"
    missing = (
        "true"
        if every_row
        else f"NOT EXISTS (SELECT FROM {audit} AS a WHERE {same_key} AND {since_restart})"
    )
    return (
        lock_against_writes(schema, table),
        f"INSERT INTO {audit} ({', '.join(columns)})\n"
        f"SELECT {', '.join(values)}\nFROM {source} AS s\n"
        f"WHERE {missing}{leaving_cdc_condition(spec)}\n"
        f"ORDER BY {', '.join(f's.{always_quote(k)}' for k in spec.key_columns)}",
    )
