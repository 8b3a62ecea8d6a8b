"""The one place that assembles SQL text.

Identifiers go through SQLAlchemy's PostgreSQL identifier preparer and every literal through the
dialect's own literal renderer; nothing here formats a user-supplied name or value into SQL by
hand.  Text is rendered for a ``named``-paramstyle dialect, so ``%`` is never doubled here: the
executing layer (:mod:`.ddl`) escapes it for drivers that need it.

Template versions: ``render(spec)`` dispatches on ``spec.template``.  A released version's output
never changes, so a migration that names it installs the same SQL after a library upgrade.

Every statement is safe to run through ``sqlalchemy.text()`` (and so Alembic's ``op.execute``)
as well as through psql: no ``:name`` bind pattern occurs anywhere.  JSON uses ``": "`` and
escapes ``:`` inside strings as ``\u003a``; an identifier or literal holding ``:`` is written
in PostgreSQL's ``U&"..."`` / ``U&'...'`` form with the colon as ``\003a``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

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

#: What ``sqlalchemy.text()`` takes for a bind parameter (``:name``), with margin: any colon
#: followed by a word character is escaped, whatever precedes it.
_BIND_LIKE = re.compile(r":\w")
#: The schema a spec without one is installed in when no connection resolved it.
FALLBACK_SCHEMA = "public"
#: The function's pinned ``search_path``: nothing a writer creates can shadow a name it uses
#: (pg_temp listed last, so temporary relations are never found first; functions and
#: operators are never looked up in pg_temp).
SEARCH_PATH = "pg_catalog, pg_temp"
#: Who wrote, inside a SECURITY DEFINER function: the role set with SET ROLE, else the session
#: user.  Differs from ``current_user`` only when the write itself runs inside another SECURITY
#: DEFINER function: then the writer shows as that session's SET ROLE or session user, not as
#: the other function's owner.
WRITER = (
    "CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user "
    "ELSE pg_catalog.current_setting('role') END"
)
#: The function body's block label: every variable is written ``audit_trigger.<name>``, so no
#: source column name (``setting_0``, ``audited_rows``, ...) can be mistaken for a variable.
LABEL = "audit_trigger"


def _unicode_escaped(quoted: str) -> str:
    """``"..."`` or ``'...'`` in PostgreSQL's U& form when it holds a bind-like colon."""
    if not _BIND_LIKE.search(quoted):
        return quoted
    return "U&" + quoted.replace("\\", "\\\\").replace(":", "\\003a")


def quote(name: str) -> str:
    """Quote one identifier (only when PostgreSQL needs it), doubling embedded quotes."""
    return _unicode_escaped(_PREPARER.quote(name))


def qualified(schema: str | None, name: str) -> str:
    return f"{quote(schema)}.{quote(name)}" if schema else quote(name)


def always_quote(name: str) -> str:
    """Quote unconditionally: inside PL/pgSQL more words are reserved (``if``, ``loop``, ...)
    than SQLAlchemy's list of PostgreSQL keywords knows, so the function body quotes every name."""
    return _unicode_escaped(_PREPARER.quote_identifier(name))


def always_qualified(schema: str | None, name: str) -> str:
    return f"{always_quote(schema)}.{always_quote(name)}" if schema else always_quote(name)


def literal(value: str) -> str:
    """A SQL string literal, rendered by the dialect."""
    assert _LITERAL is not None
    return _unicode_escaped(str(_LITERAL(value)))


@dataclass(frozen=True, slots=True)
class RenderedAudit:
    """The SQL statements that install and remove one table's auditing."""

    function_body: str
    install: tuple[str, ...]
    uninstall: tuple[str, ...]


def render(spec: AuditSpec) -> RenderedAudit:
    """The statements installing and removing ``spec``'s auditing.

    Every object is named schema-qualified.  ``spec.schema`` should be resolved by the caller
    (``ddl.resolve_spec``); a spec whose schema is still ``None`` (a script rendered without a
    connection) is rendered for schema ``public``, and the function's comment stores the spec
    with that explicit schema.
    """
    spec = resolved(spec)
    try:
        template = _TEMPLATES[spec.template]
    except KeyError:
        raise ValueError(
            f"audit template version {spec.template} is unknown to this library version "
            f"(known: {sorted(_TEMPLATES)}); upgrade sqlalchemy-postgresql-audit"
        ) from None
    return template(spec)


def resolved(spec: AuditSpec, default_schema: str = FALLBACK_SCHEMA) -> AuditSpec:
    """``spec`` with an explicit schema: its own, else ``default_schema``."""
    return spec if spec.schema else replace(spec, schema=default_schema)


def function_signature(spec: AuditSpec) -> str:
    return f"{qualified(resolved(spec).schema, spec.function)}()"


def function_comment(spec: AuditSpec) -> str:
    return COMMENT_MARKER + resolved(spec).to_json()


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
    # SECURITY DEFINER: writers need no right on the audit table, so they cannot forge rows.
    # Triggers fire without EXECUTE on their function, so nobody needs to call it directly.
    revoke = f"REVOKE ALL ON FUNCTION {function_signature(spec)} FROM PUBLIC"
    triggers = tuple(
        sql
        for trigger in spec.triggers
        for sql in (_drop_other_level_v1(spec, trigger), _create_trigger_v1(spec, trigger))
    )
    return RenderedAudit(
        function_body=body,
        install=(create_function, comment, revoke, *triggers),
        uninstall=(
            *(drop_trigger(spec.schema, spec.table, t.name) for t in spec.triggers),
            drop_function(spec.schema, spec.function),
        ),
    )


def drop_trigger(schema: str | None, table: str, trigger: str) -> str:
    return (
        f"DROP TRIGGER IF EXISTS {quote(trigger)} ON {qualified(schema or FALLBACK_SCHEMA, table)}"
    )


def drop_function(schema: str | None, function: str) -> str:
    return f"DROP FUNCTION IF EXISTS {qualified(schema or FALLBACK_SCHEMA, function)}()"


def _row_level(spec: AuditSpec, trigger: TriggerSpec) -> bool:
    # PostgreSQL has only statement-level TRUNCATE triggers.
    return spec.mode == "row" and trigger.operation != "TRUNCATE"


def _drop_other_level_v1(spec: AuditSpec, trigger: TriggerSpec) -> str:
    """Drop the trigger first when it, or a partition's clone of it, has the other level.

    ``CREATE OR REPLACE TRIGGER`` from row to statement level keeps the row-level clones on a
    partitioned table's partitions, and every write then fails on the missing transition table.
    Dropping the parent trigger drops its clones, but takes an ACCESS EXCLUSIVE lock on the table
    and its partitions (``CREATE OR REPLACE`` takes SHARE ROW EXCLUSIVE), so it happens only
    when the level really changes.  Runs in the installing transaction: no write in between
    goes unaudited.
    """
    row = 1 if _row_level(spec, trigger) else 0
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


def _create_trigger_v1(spec: AuditSpec, trigger: TriggerSpec) -> str:
    timing = "BEFORE" if trigger.operation == "TRUNCATE" and spec.truncate_rows else "AFTER"
    head = (
        f"CREATE OR REPLACE TRIGGER {quote(trigger.name)}\n"
        f"{timing} {trigger.operation} ON {qualified(spec.schema, spec.table)}\n"
    )
    if trigger.operation == "TRUNCATE":
        level = "FOR EACH STATEMENT"
    elif _row_level(spec, trigger):
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


def _value(spec: AuditSpec, row: str, column: str) -> str:
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


def _recorded_differ(spec: AuditSpec, columns: tuple[str, ...], old: str, new: str) -> str:
    """True when a recorded column differs between rows ``old`` and ``new``.

    ``*<>`` compares binary images, so it works for every type (json, point, ... have no ``=``)
    and treats two NULLs as equal.  The ``::record`` casts keep PostgreSQL from expanding
    ``ROW(...) op ROW(...)`` into a column-by-column comparison.
    """

    def row(alias: str) -> str:
        values = ", ".join(_value(spec, alias, c) for c in columns)
        return f"ROW({values})::pg_catalog.record"

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
        f"{statement}\n    WHERE {_recorded_differ(spec, spec.columns, 'o', 'r')}\n"
        f"      OR EXISTS (SELECT FROM {OLD_ROWS} AS old_key WHERE NOT EXISTS (\n"
        f"        SELECT FROM {NEW_ROWS} AS new_key WHERE {on('new_key', 'old_key')}));"
    )


def _changed_columns(spec: AuditSpec, old: str, new: str) -> str:
    """The names of the recorded columns that differ between rows ``old`` and ``new``.

    In statement mode ``old`` comes from a LEFT JOIN on the key: an unpaired row (its key
    changed) has no old row to compare with, and records NULL, not every column.
    """
    cases = ", ".join(
        f"CASE WHEN {_recorded_differ(spec, (c,), old, new)} THEN {literal(c)} END"
        for c in spec.columns
    )
    changed = f"pg_catalog.array_remove(ARRAY[{cases}]::pg_catalog.text[], NULL)"
    if spec.mode == "row":
        return changed
    return (
        f"CASE WHEN {old}.{always_quote(spec.key_columns[0])} IS NULL THEN NULL ELSE {changed} END"
    )


#: Opt-in captures that are the same for every row of one trigger call, computed once per call.
_PER_CALL_CAPTURES = {
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


def _capture_variable(capture: str) -> str:
    return f"capture_{capture}"


def _setting_variable(index: int) -> str:
    return f"setting_{index}"


def _var(name: str) -> str:
    """A variable of the function, qualified with the block label."""
    return f"{LABEL}.{name}"


def _function_body_v1(spec: AuditSpec) -> str:
    settings = list(enumerate(spec.settings))
    per_call = [c for c in spec.captures if c in _PER_CALL_CAPTURES]
    # Setting types are the spec's SQL type names: built-in ones resolve in pg_catalog under the
    # pinned search_path; a user-defined type must be declared with its schema.
    declare = "  writer pg_catalog.text := " + WRITER + ";\n"
    declare += "".join(
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
    setting_values = "".join(f", {_var(_setting_variable(i))}" for i, _ in settings)
    required = [(i, s) for i, s in settings if s.required]

    def values(op: str, row: str | None, old: str | None = None) -> str:
        """The VALUES/SELECT list; ``row`` is None for a TRUNCATE marker, ``old`` names the
        old row of an update when it can be compared."""
        captured = "".join(
            f", {_var(_capture_variable(c))}"
            if c in _PER_CALL_CAPTURES
            else f", {_changed_columns(spec, old, row) if old and row else 'NULL'}"
            for c in spec.captures
        )
        mirrored = "".join(f", {_value(spec, row, c)}" if row else ", NULL" for c in spec.columns)
        return (
            f"{literal(OPERATION_CODES[op])}, pg_catalog.now(), {_var('writer')}"
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
                changed = _recorded_differ(spec, spec.columns, "OLD", "NEW")
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
        return _block(declare, dispatch + checks)
    # Statement level: a statement that changed no rows needs no setting, so check afterwards;
    # raising still rolls back the statement together with its audit rows.
    counted = ""
    if required:
        checks = "".join(_required_check(spec, i, s, indent="    ") for i, s in required)
        counted = (
            f"  GET DIAGNOSTICS {_var('audited_rows')} = ROW_COUNT;\n"
            f"  IF {_var('audited_rows')} > 0 THEN\n{checks}  END IF;\n"
        )
        declare += "  audited_rows pg_catalog.int8;\n"
    return _block(declare, dispatch + counted)


def _block(declare: str, statements: str) -> str:
    """The labelled function body (see ``LABEL``)."""
    return f"\n<<{LABEL}>>\nDECLARE\n{declare}BEGIN\n{statements}  RETURN NULL;\nEND {LABEL};\n"


def _required_check(spec: AuditSpec, index: int, setting: SettingSpec, *, indent: str) -> str:
    message = (
        f"audit setting audit.{setting.name} is required to write to table "
        f"{always_qualified(spec.schema, spec.table)} but is not set in this transaction"
    )
    hint = "Set it with sqlalchemy_postgresql_audit.set_session_vars() in the same transaction."
    return (
        f"{indent}IF {_var(_setting_variable(index))} IS NULL THEN\n"
        f"{indent}  RAISE EXCEPTION USING MESSAGE = {literal(message)},\n"
        f"{indent}    ERRCODE = 'not_null_violation', HINT = {literal(hint)};\n"
        f"{indent}END IF;\n"
    )


_TEMPLATES: dict[int, Callable[[AuditSpec], RenderedAudit]] = {1: _render_v1}


# --- append-only guard and least-privilege grants (not part of a template version) ----------

#: The transaction-local setting through which ``retention.purge_audit_history`` lets the guard
#: accept deletes of rows older than its value.  Outside the ``audit.`` prefix, so that no
#: session setting can be named like it.
PURGE_BEFORE_SETTING = "sqlalchemy_postgresql_audit.purge_before"

#: ``audit_operation`` of the row the guard writes after every delete it let through.
PURGE_OPERATION_CODE = "P"

GUARD_TRIGGER = "audit_append_only"
GUARD_TRUNCATE_TRIGGER = "audit_append_only_truncate"
PURGE_MARKER_TRIGGER = "audit_purge_marker"


def guard_function(spec: AuditSpec) -> str:
    """The append-only guard's function name, next to the audit table."""
    from .naming import fit_identifier

    return fit_identifier(f"{spec.audit_table}_append_only")


def render_append_only_guard(spec: AuditSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(install, uninstall)`` statements of the append-only guard of ``spec``'s audit table.

    Row-level BEFORE UPDATE OR DELETE and a BEFORE TRUNCATE trigger refuse every change to
    recorded history, whoever runs it (the owner included).  The one exception is a DELETE of
    rows older than the transaction-local ``PURGE_BEFORE_SETTING``, and every statement that
    deletes through it gets a ``P`` marker row (who, when) from an AFTER DELETE trigger, so a
    purge is itself part of the trail.  Triggers are not a wall against the owner, who can
    disable them; see SECURITY.md.
    """
    if not spec.append_only:
        return (), ()
    audit = always_qualified(spec.schema, spec.audit_table)
    function = qualified(spec.schema, guard_function(spec))
    stamp = always_quote(AUDIT_TIMESTAMP)
    marker_columns = ", ".join(
        always_quote(c) for c in (AUDIT_OPERATION, AUDIT_TIMESTAMP, AUDIT_CURRENT_USER)
    )
    message = f"audit table {audit} is append-only: "
    hint = (
        "Recorded history is never updated; remove old history with "
        "sqlalchemy_postgresql_audit.retention.purge_audit_history()."
    )
    body = (
        "\nBEGIN\n"
        "  IF TG_WHEN = 'AFTER' THEN\n"
        f"    INSERT INTO {audit} ({marker_columns})\n"
        f"    SELECT {literal(PURGE_OPERATION_CODE)}, pg_catalog.now(), current_user\n"
        f"    WHERE EXISTS (SELECT FROM {OLD_ROWS});\n"
        "    RETURN NULL;\n"
        "  END IF;\n"
        "  IF TG_OP = 'DELETE' THEN\n"
        f"    IF OLD.{stamp} < NULLIF(pg_catalog.current_setting("
        f"{literal(PURGE_BEFORE_SETTING)}, true), '')::timestamptz THEN\n"
        "      RETURN OLD;\n"
        "    END IF;\n"
        "  END IF;\n"
        f"  RAISE EXCEPTION USING MESSAGE = {literal(message)} || TG_OP || ' is refused',\n"
        f"    ERRCODE = 'insufficient_privilege', HINT = {literal(hint)};\n"
        "END;\n"
    )
    on = qualified(spec.schema, spec.audit_table)
    install = (
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger\n"
        f"LANGUAGE plpgsql\nSET search_path TO pg_catalog, pg_temp\nAS {dollar_quote(body)}",
        f"REVOKE ALL ON FUNCTION {function}() FROM PUBLIC",
        f"CREATE OR REPLACE TRIGGER {quote(GUARD_TRIGGER)}\n"
        f"BEFORE UPDATE OR DELETE ON {on}\nFOR EACH ROW\nEXECUTE FUNCTION {function}()",
        f"CREATE OR REPLACE TRIGGER {quote(GUARD_TRUNCATE_TRIGGER)}\n"
        f"BEFORE TRUNCATE ON {on}\nFOR EACH STATEMENT\nEXECUTE FUNCTION {function}()",
        f"CREATE OR REPLACE TRIGGER {quote(PURGE_MARKER_TRIGGER)}\n"
        f"AFTER DELETE ON {on}\nREFERENCING OLD TABLE AS {OLD_ROWS}\nFOR EACH STATEMENT\n"
        f"EXECUTE FUNCTION {function}()",
    )
    # CASCADE drops exactly the guard's own triggers, the only objects that use its function,
    # and works whether or not the audit table still exists.
    return install, (f"DROP FUNCTION IF EXISTS {function}() CASCADE",)


def _with_append_only_guard(
    template: Callable[[AuditSpec], RenderedAudit],
) -> Callable[[AuditSpec], RenderedAudit]:
    """Every template version installs the guard of an ``append_only`` spec after its own
    objects and removes it before them; other specs render exactly as the template does."""

    def rendered(spec: AuditSpec) -> RenderedAudit:
        audit = template(spec)
        install, uninstall = render_append_only_guard(spec)
        if not install:
            return audit
        return RenderedAudit(
            function_body=audit.function_body,
            install=(*audit.install, *install),
            uninstall=(*uninstall, *audit.uninstall),
        )

    return rendered


_TEMPLATES = {version: _with_append_only_guard(t) for version, t in _TEMPLATES.items()}


#: PostgreSQL's pseudo-roles: a GRANT to one of these names reaches everyone or nobody.
_RESERVED_ROLES = frozenset({"public", "none"})


def _role(name: str) -> str:
    if not name or name.lower() in _RESERVED_ROLES or name.lower().startswith("pg_"):
        raise ValueError(f"{name!r} is not a role the audit grants may name")
    return quote(name)


def render_grants(
    spec: AuditSpec,
    *,
    writers: tuple[str, ...],
    readers: tuple[str, ...] = (),
    owner: str | None = None,
    sequences: tuple[tuple[str, str], ...] = (),
) -> tuple[str, ...]:
    """The least-privilege GRANTs of one audited table (see SECURITY.md).

    ``owner`` becomes the owner of the audit table and of the library's functions, so that the
    SECURITY DEFINER trigger function writes as that role; ``writers`` get DML on the source
    table (TRUNCATE only when TRUNCATE is audited) and USAGE on its ``sequences``
    ((schema, name) pairs of serial columns), and lose every right on the audit table;
    ``readers`` get SELECT on the audit table.  Revokes come before grants, so a role that is
    both a writer and a reader can read the history and still not write it.
    """
    source = qualified(spec.schema, spec.table)
    audit = qualified(spec.schema, spec.audit_table)
    functions = [qualified(spec.schema, spec.function)]
    if spec.append_only:
        functions.append(qualified(spec.schema, guard_function(spec)))
    schema = [f"GRANT USAGE ON SCHEMA {quote(spec.schema)} TO "] if spec.schema else []
    statements: list[str] = [f"REVOKE ALL ON FUNCTION {f}() FROM PUBLIC" for f in functions]
    if owner is not None:
        role = _role(owner)
        statements += [f"ALTER TABLE {audit} OWNER TO {role}"]
        statements += [f"ALTER FUNCTION {f}() OWNER TO {role}" for f in functions]
        statements += [prefix + role for prefix in schema]
        if spec.truncate_rows:  # the BEFORE TRUNCATE copy reads the source table as the owner
            statements.append(f"GRANT SELECT ON {source} TO {role}")
    dml = "SELECT, INSERT, UPDATE, DELETE"
    if any(t.operation == "TRUNCATE" for t in spec.triggers):
        dml += ", TRUNCATE"
    for writer in writers:
        role = _role(writer)
        statements += [f"REVOKE ALL ON {audit} FROM {role}"]
        statements += [f"REVOKE ALL ON FUNCTION {f}() FROM {role}" for f in functions]
        statements += [prefix + role for prefix in schema]
        statements.append(f"GRANT {dml} ON {source} TO {role}")
        statements += [f"GRANT USAGE ON SEQUENCE {qualified(s, n)} TO {role}" for s, n in sequences]
    for reader in readers:
        role = _role(reader)
        statements += [prefix + role for prefix in schema]
        statements.append(f"GRANT SELECT ON {audit} TO {role}")
    return tuple(statements)


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
