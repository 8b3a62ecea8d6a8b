"""The one place that assembles SQL text.

Identifiers go through SQLAlchemy's PostgreSQL identifier preparer and every literal through the
dialect's own literal renderer; nothing here formats a user-supplied name or value into SQL by
hand.  Text is rendered for a ``named``-paramstyle dialect, so ``%`` is never doubled here: the
executing layer (:mod:`.ddl`) escapes it for drivers that need it.

Template versions: ``render(spec)`` dispatches on ``spec.template``.  A released version's output
never changes, so a migration that names it installs the same SQL after a library upgrade.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import String
from sqlalchemy.dialects import postgresql

from .spec import (
    AUDIT_CURRENT_USER,
    AUDIT_OPERATION,
    AUDIT_TIMESTAMP,
    OPERATION_CODES,
    AuditSpec,
    SettingSpec,
    TriggerSpec,
    capture_column,
)

#: Marks functions installed by this library; the JSON spec follows it in the comment.
COMMENT_MARKER = "sqlalchemy-postgresql-audit:"

#: Transition-table names used by statement-level triggers.
OLD_ROWS = "audit_old_rows"
NEW_ROWS = "audit_new_rows"

_DIALECT = postgresql.dialect(paramstyle="named")  # type: ignore[no-untyped-call]
_PREPARER = _DIALECT.identifier_preparer
_LITERAL = String().literal_processor(_DIALECT)  # type: ignore[no-untyped-call]


def quote(name: str) -> str:
    """Quote one identifier (only when PostgreSQL needs it), doubling embedded quotes."""
    return _PREPARER.quote(name)


def qualified(schema: str | None, name: str) -> str:
    return f"{quote(schema)}.{quote(name)}" if schema else quote(name)


def always_quote(name: str) -> str:
    """Quote unconditionally: inside PL/pgSQL more words are reserved (``if``, ``loop``, ...)
    than SQLAlchemy's list of PostgreSQL keywords knows, so the function body quotes every name."""
    return _PREPARER.quote_identifier(name)


def always_qualified(schema: str | None, name: str) -> str:
    return f"{always_quote(schema)}.{always_quote(name)}" if schema else always_quote(name)


def literal(value: str) -> str:
    """A SQL string literal, rendered by the dialect."""
    assert _LITERAL is not None
    return str(_LITERAL(value))


@dataclass(frozen=True, slots=True)
class RenderedAudit:
    """The SQL statements that install and remove one table's auditing."""

    function_body: str
    install: tuple[str, ...]
    uninstall: tuple[str, ...]


def render(spec: AuditSpec) -> RenderedAudit:
    try:
        template = _TEMPLATES[spec.template]
    except KeyError:
        raise ValueError(
            f"audit template version {spec.template} is unknown to this library version "
            f"(known: {sorted(_TEMPLATES)}); upgrade sqlalchemy-postgresql-audit"
        ) from None
    return template(spec)


def function_signature(spec: AuditSpec) -> str:
    return f"{qualified(spec.schema, spec.function)}()"


def function_comment(spec: AuditSpec) -> str:
    return COMMENT_MARKER + spec.to_json()


def dollar_quote(body: str) -> str:
    """Dollar-quote ``body`` with a tag that does not occur in it."""
    tag, n = "$audit$", 0
    while tag in body:
        n += 1
        tag = f"$audit{n}$"
    return f"{tag}{body}{tag}"


# --- template version 1 -------------------------------------------------------------------


def _render_v1(spec: AuditSpec) -> RenderedAudit:
    body = _function_body_v1(spec)
    create_function = (
        f"CREATE OR REPLACE FUNCTION {function_signature(spec)} RETURNS trigger\n"
        f"LANGUAGE plpgsql\n{_function_settings_v1(spec)}AS {dollar_quote(body)}"
    )
    comment = f"COMMENT ON FUNCTION {function_signature(spec)} IS {literal(function_comment(spec))}"
    triggers = tuple(_create_trigger_v1(spec, trigger) for trigger in spec.triggers)
    return RenderedAudit(
        function_body=body,
        install=(create_function, comment, *triggers),
        uninstall=(
            *(drop_trigger(spec.schema, spec.table, t.name) for t in spec.triggers),
            drop_function(spec.schema, spec.function),
        ),
    )


def drop_trigger(schema: str | None, table: str, trigger: str) -> str:
    return f"DROP TRIGGER IF EXISTS {quote(trigger)} ON {qualified(schema, table)}"


def drop_function(schema: str | None, function: str) -> str:
    return f"DROP FUNCTION IF EXISTS {qualified(schema, function)}()"


def _create_trigger_v1(spec: AuditSpec, trigger: TriggerSpec) -> str:
    timing = "BEFORE" if trigger.operation == "TRUNCATE" and spec.truncate_rows else "AFTER"
    head = (
        f"CREATE OR REPLACE TRIGGER {quote(trigger.name)}\n"
        f"{timing} {trigger.operation} ON {qualified(spec.schema, spec.table)}\n"
    )
    if trigger.operation == "TRUNCATE":  # PostgreSQL has only statement-level TRUNCATE triggers
        level = "FOR EACH STATEMENT"
    elif spec.mode == "row":
        level = "FOR EACH ROW"
    else:
        referencing = {
            "INSERT": f"NEW TABLE AS {NEW_ROWS}",
            "UPDATE": f"OLD TABLE AS {OLD_ROWS} NEW TABLE AS {NEW_ROWS}",
            "DELETE": f"OLD TABLE AS {OLD_ROWS}",
        }[trigger.operation]
        level = f"REFERENCING {referencing}\nFOR EACH STATEMENT"
    return f"{head}{level}\nEXECUTE FUNCTION {function_signature(spec)}"


def function_config(spec: AuditSpec) -> tuple[str, ...]:
    """The function's settings as PostgreSQL lists them in ``pg_proc.proconfig``."""
    return ("enable_nestloop=off",) if spec.pairs_updates else ()


def _function_settings_v1(spec: AuditSpec) -> str:
    """Planner settings of the function, for the statement-level pairing join.

    PL/pgSQL plans each query once and keeps the plan; with transition tables that plan is built
    for the row count of the first call, typically one row, and a nested loop that is right for
    one row is quadratic for 100,000.  Without nested loops the pairing is a hash (or merge)
    join at any size, and costs nothing measurable for a single row.
    """
    settings = (setting.split("=", 1) for setting in function_config(spec))
    return "".join(f"SET {name} TO {value}\n" for name, value in settings)


def _recorded_differ(columns: tuple[str, ...], old: str, new: str) -> str:
    """True when a recorded column differs between rows ``old`` and ``new``.

    ``*<>`` compares binary images, so it works for every type (json, point, ... have no ``=``)
    and treats two NULLs as equal.  The ``::record`` casts keep PostgreSQL from expanding
    ``ROW(...) op ROW(...)`` into a column-by-column comparison.
    """

    def row(alias: str) -> str:
        return "ROW(" + ", ".join(f"{alias}.{always_quote(c)}" for c in columns) + ")::record"

    return f"{row(old)} OPERATOR(pg_catalog.*<>) {row(new)}"


def _paired_update_v1(spec: AuditSpec, insert_into: str, values: str) -> str:
    """Statement-level UPDATE capture with old and new rows paired on the primary key.

    Pairing is needed to skip unchanged rows and to list changed columns; it is never done on
    row order.  When some old key is missing among the new rows, the statement changed a
    primary key (or a deferrable key is momentarily duplicated): rows cannot be paired, so every
    row is recorded, as without the filter, and an unpaired row's changed columns are NULL.
    """
    keys = spec.key_columns
    if not keys:
        raise ValueError(
            f"audit spec of {spec.table!r}: pairing old and new rows needs key_columns"
        )

    def on(left: str, right: str) -> str:
        return " AND ".join(f"{left}.{always_quote(k)} = {right}.{always_quote(k)}" for k in keys)

    statement = (
        f"{insert_into}\n    SELECT {values}\n"
        f"    FROM {NEW_ROWS} AS r LEFT JOIN {OLD_ROWS} AS o ON {on('r', 'o')}"
    )
    if not spec.skip_unchanged:
        return statement + ";"
    # The uncorrelated EXISTS is computed once.  An unmatched new row (its key is new) compares
    # as different from the all-NULL old side, so it is always recorded.
    return (
        f"{statement}\n    WHERE {_recorded_differ(spec.columns, 'o', 'r')}\n"
        f"      OR EXISTS (SELECT FROM {OLD_ROWS} AS old_key WHERE NOT EXISTS (\n"
        f"        SELECT FROM {NEW_ROWS} AS new_key WHERE {on('new_key', 'old_key')}));"
    )


def _changed_columns(spec: AuditSpec, old: str, new: str) -> str:
    """The names of the recorded columns that differ between rows ``old`` and ``new``.

    In statement mode ``old`` comes from a LEFT JOIN on the key: an unpaired row (its key
    changed) has no old row to compare with, and records NULL, not every column.
    """
    cases = ", ".join(
        f"CASE WHEN {_recorded_differ((c,), old, new)} THEN {literal(c)} END" for c in spec.columns
    )
    changed = f"pg_catalog.array_remove(ARRAY[{cases}]::text[], NULL)"
    if spec.mode == "row":
        return changed
    return (
        f"CASE WHEN {old}.{always_quote(spec.key_columns[0])} IS NULL THEN NULL ELSE {changed} END"
    )


#: Opt-in captures that are the same for every row of one trigger call, computed once per call.
_PER_CALL_CAPTURES = {
    "transaction_id": ("bigint", "pg_catalog.pg_current_xact_id()::text::bigint"),
    "statement_timestamp": ("timestamptz", "pg_catalog.statement_timestamp()"),
    "clock_timestamp": ("timestamptz", "pg_catalog.clock_timestamp()"),
    "session_user": ("text", "session_user"),
    "application_name": (
        "text",
        "NULLIF(pg_catalog.current_setting('application_name', true), '')",
    ),
    "client_addr": ("inet", "pg_catalog.inet_client_addr()"),
}


def _capture_variable(capture: str) -> str:
    return f"capture_{capture}"


def _setting_variable(index: int) -> str:
    return f"setting_{index}"


def _function_body_v1(spec: AuditSpec) -> str:
    settings = list(enumerate(spec.settings))
    per_call = [c for c in spec.captures if c in _PER_CALL_CAPTURES]
    declare = "".join(
        f"  {_setting_variable(i)} {s.sql_type} := "
        f"NULLIF(pg_catalog.current_setting({literal('audit.' + s.name)}, true), '');\n"
        for i, s in settings
    ) + "".join(
        f"  {_capture_variable(c)} {_PER_CALL_CAPTURES[c][0]} := {_PER_CALL_CAPTURES[c][1]};\n"
        for c in per_call
    )
    target_columns = ", ".join(
        [
            always_quote(AUDIT_OPERATION),
            always_quote(AUDIT_TIMESTAMP),
            always_quote(AUDIT_CURRENT_USER),
            *(always_quote(capture_column(c)) for c in spec.captures),
            *(always_quote(s.column) for _, s in settings),
            *(always_quote(c) for c in spec.columns),
        ]
    )
    insert_into = (
        f"INSERT INTO {always_qualified(spec.schema, spec.audit_table)} ({target_columns})"
    )
    setting_values = "".join(f", {_setting_variable(i)}" for i, _ in settings)
    required = [(i, s) for i, s in settings if s.required]

    def values(op: str, row: str | None, old: str | None = None) -> str:
        """The VALUES/SELECT list; ``row`` is None for a TRUNCATE marker, ``old`` names the
        old row of an update when it can be compared."""
        captured = "".join(
            f", {_capture_variable(c)}"
            if c in _PER_CALL_CAPTURES
            else f", {_changed_columns(spec, old, row) if old and row else 'NULL'}"
            for c in spec.captures
        )
        mirrored = "".join(f", {row}.{always_quote(c)}" if row else ", NULL" for c in spec.columns)
        return (
            f"{literal(OPERATION_CODES[op])}, pg_catalog.now(), current_user"
            f"{captured}{setting_values}{mirrored}"
        )

    branches: list[str] = []
    for trigger in spec.triggers:
        op = trigger.operation
        if op == "TRUNCATE" and spec.truncate_rows:
            source = always_qualified(spec.schema, spec.table)
            statement = f"{insert_into}\n    SELECT {values(op, 'r')}\n    FROM {source} AS r;"
        elif op == "TRUNCATE":
            statement = f"{insert_into}\n    VALUES ({values(op, None)});"
        elif spec.mode == "row":
            row = "OLD" if op == "DELETE" else "NEW"
            old = "OLD" if op == "UPDATE" else None
            statement = f"{insert_into}\n    VALUES ({values(op, row, old)});"
            if op == "UPDATE" and spec.skip_unchanged:
                # Checked here rather than in a WHEN clause, which would make the trigger
                # depend on these columns and block retyping or dropping them.
                changed = _recorded_differ(spec.columns, "OLD", "NEW")
                skip = f"IF NOT ({changed}) THEN\n      RETURN NULL;\n    END IF;\n"
                statement = f"{skip}    {statement}"
        elif op == "UPDATE" and spec.pairs_updates:
            statement = _paired_update_v1(spec, insert_into, values(op, "r", "o"))
        else:
            rows = OLD_ROWS if op == "DELETE" else NEW_ROWS
            statement = f"{insert_into}\n    SELECT {values(op, 'r')}\n    FROM {rows} AS r;"
        keyword = "IF" if not branches else "ELSIF"
        branches.append(f"  {keyword} TG_OP = {literal(op)} THEN\n    {statement}\n")
    dispatch = "".join(branches) + "  END IF;\n"

    if spec.mode == "row":
        # Checked after the dispatch: an unchanged row skipped by skip_unchanged returns first,
        # and the raise rolls back the audit row with the write.
        checks = "".join(_required_check(spec, i, s, indent="  ") for i, s in required)
        return f"\nDECLARE\n{declare}BEGIN\n{dispatch}{checks}  RETURN NULL;\nEND;\n"
    # Statement level: a statement that changed no rows needs no setting, so check afterwards;
    # raising still rolls back the statement together with its audit rows.
    counted = ""
    if required:
        checks = "".join(_required_check(spec, i, s, indent="    ") for i, s in required)
        counted = (
            "  GET DIAGNOSTICS audited_rows = ROW_COUNT;\n"
            f"  IF audited_rows > 0 THEN\n{checks}  END IF;\n"
        )
        declare += "  audited_rows bigint;\n"
    return f"\nDECLARE\n{declare}BEGIN\n{dispatch}{counted}  RETURN NULL;\nEND;\n"


def _required_check(spec: AuditSpec, index: int, setting: SettingSpec, *, indent: str) -> str:
    message = (
        f"audit setting audit.{setting.name} is required to write to table "
        f"{always_qualified(spec.schema, spec.table)} but is not set in this transaction"
    )
    hint = "Set it with sqlalchemy_postgresql_audit.set_session_vars() in the same transaction."
    return (
        f"{indent}IF {_setting_variable(index)} IS NULL THEN\n"
        f"{indent}  RAISE EXCEPTION USING MESSAGE = {literal(message)},\n"
        f"{indent}    ERRCODE = 'not_null_violation', HINT = {literal(hint)};\n"
        f"{indent}END IF;\n"
    )


_TEMPLATES: dict[int, Callable[[AuditSpec], RenderedAudit]] = {1: _render_v1}


# --- template version 0: what 0.5.x installed ---------------------------------------------
#
# Never installed by this library for a new table: template 0 exists so that a migration
# upgrading a 0.5.x installation can name what it replaces, and so that its downgrade reinstalls
# the 0.5.x objects as 0.5.x wrote them.  Like 0.5.x, the function is created and dropped
# unqualified (the search path picks its schema), is not commented, and one row-level trigger
# named ``spec.triggers[*].name`` fires for every recorded operation.

_V0_OPERATIONS = ("INSERT", "UPDATE", "DELETE")


def _render_v0(spec: AuditSpec) -> RenderedAudit:
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


_TEMPLATES[0] = _render_v0
