"""Template version 1: the trigger function and triggers this library installs (frozen).

Released with 1.0: its output never changes (``tests/golden/template_v1.sql``); a change is a
new version.  Its public helpers are shared with later versions, which is one more reason their
output must not change.
"""

from __future__ import annotations

from ..declare.spec import (
    AUDIT_CURRENT_USER,
    AUDIT_OPERATION,
    AUDIT_TIMESTAMP,
    OPERATION_CODES,
    AuditSpec,
    SettingSpec,
    TriggerSpec,
    capture_column,
)
from .sql import (
    FALLBACK_SCHEMA,
    LABEL,
    NEW_ROWS,
    OLD_ROWS,
    SEARCH_PATH,
    WRITER,
    RenderedAudit,
    always_qualified,
    always_quote,
    dollar_quote,
    drop_function,
    drop_trigger,
    function_comment,
    function_signature,
    literal,
    qualified,
    quote,
    regclass,
)


def render_v1(spec: AuditSpec) -> RenderedAudit:
    body = _function_body_v1(spec)
    create_function = (
        f"CREATE OR REPLACE FUNCTION {function_signature(spec)} RETURNS trigger\n"
        f"LANGUAGE plpgsql\n{_function_settings_v1(spec)}AS {dollar_quote(body)}"
    )
    comment = f"COMMENT ON FUNCTION {function_signature(spec)} IS {literal(function_comment(spec))}"
    # SECURITY DEFINER: writers need no right on the audit table, so they cannot forge rows.
    # Triggers fire without EXECUTE on their function, so nobody needs to call it directly.
    revoke = f"REVOKE ALL ON FUNCTION {function_signature(spec)} FROM PUBLIC"
    triggers = tuple(
        sql
        for trigger in spec.triggers
        for sql in (drop_other_level(spec, trigger), create_trigger(spec, trigger))
    )
    return RenderedAudit(
        function_body=body,
        install=(create_function, comment, revoke, *triggers),
        uninstall=(
            *(drop_trigger(spec.schema, spec.table, t.name) for t in spec.triggers),
            drop_function(spec.schema, spec.function),
        ),
    )


def row_level(spec: AuditSpec, trigger: TriggerSpec) -> bool:
    # PostgreSQL has only statement-level TRUNCATE triggers.
    return spec.mode == "row" and trigger.operation != "TRUNCATE"


def drop_other_level(spec: AuditSpec, trigger: TriggerSpec) -> str:
    """Drop the trigger first when it, or a partition's clone of it, has the other level.

    ``CREATE OR REPLACE TRIGGER`` from row to statement level keeps the row-level clones on a
    partitioned table's partitions, and every write then fails on the missing transition table.
    Dropping the parent trigger drops its clones, but takes an ACCESS EXCLUSIVE lock on the table
    and its partitions (``CREATE OR REPLACE`` takes SHARE ROW EXCLUSIVE), so it happens only
    when the level really changes.  Runs in the installing transaction: no write in between
    goes unaudited.
    """
    row = 1 if row_level(spec, trigger) else 0
    eq = "OPERATOR(pg_catalog.=)"
    body = (
        "\nDECLARE\n  parent pg_catalog.oid;\nBEGIN\n"
        "  SELECT t.oid INTO parent FROM pg_catalog.pg_trigger t\n"
        f"    JOIN pg_catalog.pg_class c ON c.oid {eq} t.tgrelid\n"
        f"    JOIN pg_catalog.pg_namespace n ON n.oid {eq} c.relnamespace\n"
        f"    WHERE t.tgname {eq} {literal(trigger.name)} AND c.relname {eq} {literal(spec.table)}"
        f" AND n.nspname {eq} {literal(spec.schema or FALLBACK_SCHEMA)};\n"
        "  IF EXISTS (SELECT FROM pg_catalog.pg_trigger t\n"
        f"    WHERE (t.oid {eq} parent OR t.tgparentid {eq} parent)\n"
        f"      AND (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 1) "
        f"OPERATOR(pg_catalog.<>) {row}) THEN\n"
        f"    {drop_trigger(spec.schema, spec.table, trigger.name)};\n"
        "  END IF;\nEND;\n"
    )
    return f"DO {dollar_quote(body)}"


def create_trigger(spec: AuditSpec, trigger: TriggerSpec) -> str:
    timing = "BEFORE" if trigger.operation == "TRUNCATE" and spec.truncate_rows else "AFTER"
    head = (
        f"CREATE OR REPLACE TRIGGER {quote(trigger.name)}\n"
        f"{timing} {trigger.operation} ON {qualified(spec.schema, spec.table)}\n"
    )
    if trigger.operation == "TRUNCATE":
        level = "FOR EACH STATEMENT"
    elif row_level(spec, trigger):
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
    pinned = f"search_path={SEARCH_PATH}"
    return (pinned, "enable_nestloop=off") if spec.pairs_updates else (pinned,)


def _function_settings_v1(spec: AuditSpec) -> str:
    """``SECURITY DEFINER`` and the function's settings.

    ``search_path`` is pinned so that no writer's path (an attacker's schema first, a tenant's
    schema, a temporary table) changes what the body's names mean.  Planner settings serve the
    statement-level pairing join: PL/pgSQL plans each query once and keeps the plan; with
    transition tables that plan is built for the row count of the first call, typically one
    row, and a nested loop that is right for one row is quadratic for 100,000.  Without nested
    loops the pairing is a hash (or merge) join at any size, and costs nothing measurable for a
    single row.
    """
    settings = (setting.split("=", 1) for setting in function_config(spec))
    return "SECURITY DEFINER\n" + "".join(f"SET {name} TO {value}\n" for name, value in settings)


def column_value(spec: AuditSpec, row: str, column: str) -> str:
    """Column ``column`` of row ``row`` (an alias, ``NEW`` or ``OLD``).

    A virtual generated column reads as NULL there (and must not be referenced in a transition
    table's comparisons), so its expression is evaluated over the row's stored columns.
    """
    expression = next((v.expression for v in spec.virtual_columns if v.name == column), None)
    if expression is None:
        return _field(row, column)
    stored = spec.stored_columns
    values = ", ".join(_field(row, c) for c in stored)
    names = ", ".join(always_quote(c) for c in stored)
    return f"(SELECT {expression} FROM (SELECT {values}) AS audit_source({names}))"


def _field(row: str, column: str) -> str:
    """``row.column``.  PL/pgSQL reads ``NEW.<name>`` itself and knows no ``U&"..."`` names,
    so such a name is selected from ``(NEW)``, which the SQL parser handles."""
    name = always_quote(column)
    return f"({row}).{name}" if name.startswith("U&") and row in ("NEW", "OLD") else f"{row}.{name}"


def recorded_differ(spec: AuditSpec, columns: tuple[str, ...], old: str, new: str) -> str:
    """True when a recorded column differs between rows ``old`` and ``new``.

    ``*<>`` compares binary images, so it works for every type (json, point, ... have no ``=``)
    and treats two NULLs as equal.  The ``::record`` casts keep PostgreSQL from expanding
    ``ROW(...) op ROW(...)`` into a column-by-column comparison.
    """

    def row(alias: str) -> str:
        values = ", ".join(column_value(spec, alias, c) for c in columns)
        return f"ROW({values})::pg_catalog.record"

    return f"{row(old)} OPERATOR(pg_catalog.*<>) {row(new)}"


def paired_update(spec: AuditSpec, insert_into: str, values: str) -> str:
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
        f"{statement}\n    WHERE {recorded_differ(spec, spec.compared_columns, 'o', 'r')}\n"
        f"      OR EXISTS (SELECT FROM {OLD_ROWS} AS old_key WHERE NOT EXISTS (\n"
        f"        SELECT FROM {NEW_ROWS} AS new_key WHERE {on('new_key', 'old_key')}));"
    )


def changed_columns(spec: AuditSpec, old: str, new: str) -> str:
    """The names of the recorded columns that differ between rows ``old`` and ``new``.

    In statement mode ``old`` comes from a LEFT JOIN on the key: an unpaired row (its key
    changed) has no old row to compare with, and records NULL, not every column.
    """
    cases = ", ".join(
        f"CASE WHEN {recorded_differ(spec, (c,), old, new)} THEN {literal(c)} END"
        for c in spec.compared_columns
    )
    changed = f"pg_catalog.array_remove(ARRAY[{cases}]::pg_catalog.text[], NULL)"
    if spec.mode == "row":
        return changed
    return (
        f"CASE WHEN {old}.{always_quote(spec.key_columns[0])} IS NULL THEN NULL ELSE {changed} END"
    )


#: Opt-in captures that are the same for every row of one trigger call, computed once per call.
PER_CALL_CAPTURES = {
    "transaction_id": (
        "pg_catalog.int8",
        "pg_catalog.pg_current_xact_id()::pg_catalog.text::pg_catalog.int8",
    ),
    "statement_timestamp": ("pg_catalog.timestamptz", "pg_catalog.statement_timestamp()"),
    "clock_timestamp": ("pg_catalog.timestamptz", "pg_catalog.clock_timestamp()"),
    "session_user": ("pg_catalog.text", "session_user"),
    "application_name": (
        "pg_catalog.text",
        "NULLIF(pg_catalog.current_setting('application_name', true), '')",
    ),
    "client_addr": ("pg_catalog.inet", "pg_catalog.inet_client_addr()"),
}


def capture_variable(capture: str) -> str:
    return f"capture_{capture}"


def setting_variable(index: int) -> str:
    return f"setting_{index}"


def variable(name: str) -> str:
    """A variable of the function, qualified with the block label."""
    return f"{LABEL}.{name}"


def _function_body_v1(spec: AuditSpec) -> str:
    settings = list(enumerate(spec.settings))
    per_call = [c for c in spec.captures if c in PER_CALL_CAPTURES]
    # Setting types are the spec's SQL type names: built-in ones resolve in pg_catalog under the
    # pinned search_path; a user-defined type must be declared with its schema.
    declare = "  writer pg_catalog.text := " + WRITER + ";\n"
    declare += "".join(
        f"  {setting_variable(i)} {s.sql_type} := "
        f"NULLIF(pg_catalog.current_setting({literal('audit.' + s.name)}, true), '');\n"
        for i, s in settings
    ) + "".join(
        f"  {capture_variable(c)} {PER_CALL_CAPTURES[c][0]} := {PER_CALL_CAPTURES[c][1]};\n"
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
    setting_values = "".join(f", {variable(setting_variable(i))}" for i, _ in settings)
    required = [(i, s) for i, s in settings if s.required]

    def values(op: str, row: str | None, old: str | None = None) -> str:
        """The VALUES/SELECT list; ``row`` is None for a TRUNCATE marker, ``old`` names the
        old row of an update when it can be compared."""
        captured = "".join(
            f", {variable(capture_variable(c))}"
            if c in PER_CALL_CAPTURES
            else f", {changed_columns(spec, old, row) if old and row else 'NULL'}"
            for c in spec.captures
        )
        mirrored = "".join(
            f", {column_value(spec, row, c)}" if row else ", NULL" for c in spec.columns
        )
        return (
            f"{literal(OPERATION_CODES[op])}, pg_catalog.now(), {variable('writer')}"
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
                changed = recorded_differ(spec, spec.columns, "OLD", "NEW")
                skip = f"IF NOT ({changed}) THEN\n      RETURN NULL;\n    END IF;\n"
                statement = f"{skip}    {statement}"
        elif op == "UPDATE" and spec.pairs_updates:
            statement = paired_update(spec, insert_into, values(op, "r", "o"))
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
        return block(spec, declare, dispatch + checks)
    # Statement level: a statement that changed no rows needs no setting, so check afterwards;
    # raising still rolls back the statement together with its audit rows.
    counted = ""
    if required:
        checks = "".join(_required_check(spec, i, s, indent="    ") for i, s in required)
        counted = (
            f"  GET DIAGNOSTICS {variable('audited_rows')} = ROW_COUNT;\n"
            f"  IF {variable('audited_rows')} > 0 THEN\n{checks}  END IF;\n"
        )
        declare += "  audited_rows pg_catalog.int8;\n"
    return block(spec, declare, dispatch + counted)


def block(spec: AuditSpec, declare: str, statements: str) -> str:
    """The labelled function body (see ``LABEL``), starting with the table guard."""
    return (
        f"\n<<{LABEL}>>\nDECLARE\n{declare}BEGIN\n{table_guard(spec)}{statements}"
        f"  RETURN NULL;\nEND {LABEL};\n"
    )


def table_guard(spec: AuditSpec) -> str:
    """Refuse to record anything for a table other than the audited one (or its partitions).

    The function is SECURITY DEFINER: a role that holds EXECUTE on it (through default
    privileges, say) could otherwise attach it to a table of its own and write audit rows of its
    choosing as the function's owner.
    """
    table = regclass(spec.schema, spec.table)
    schema, name = literal(spec.schema or FALLBACK_SCHEMA), literal(spec.table)
    message = (
        f"audit function {always_qualified(spec.schema, spec.function)} records only table "
        f"{always_qualified(spec.schema, spec.table)}"
    )
    # Names first: two comparisons of variables, no catalog lookup, for every call on the
    # audited table itself; only a partition's call (or a forger's) looks up the root.
    return (
        f"  IF (TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) {schema}\n"
        f"      OR TG_TABLE_NAME OPERATOR(pg_catalog.<>) {name})\n"
        f"     AND pg_catalog.pg_partition_root(TG_RELID) IS DISTINCT FROM {table} THEN\n"
        f"    RAISE EXCEPTION USING MESSAGE = {literal(message)},\n"
        f"      ERRCODE = 'insufficient_privilege';\n"
        f"  END IF;\n"
    )


def _required_check(spec: AuditSpec, index: int, setting: SettingSpec, *, indent: str) -> str:
    message = (
        f"audit setting audit.{setting.name} is required to write to table "
        f"{always_qualified(spec.schema, spec.table)} but is not set in this transaction"
    )
    hint = "Set it with sqlalchemy_postgresql_audit.set_session_vars() in the same transaction."
    return (
        f"{indent}IF {variable(setting_variable(index))} IS NULL THEN\n"
        f"{indent}  RAISE EXCEPTION USING MESSAGE = {literal(message)},\n"
        f"{indent}    ERRCODE = 'not_null_violation', HINT = {literal(hint)};\n"
        f"{indent}END IF;\n"
    )
