"""Template version 2: when a change was written, and where a row's key moved.

What differs from version 1 (whose shared helpers keep their output):

- ``audit_operation_timestamp`` is the time the change was written, ``clock_timestamp()``
  read once per trigger call (one value per statement in statement mode, per row in row mode),
  not the transaction's start.  For any one row its versions are serialized by the row lock,
  so this time, ``audit_id`` order and commit order agree per row; version 1's ``now()`` let a
  transaction that started earlier but wrote later sort before the change it overwrote.
- An UPDATE that changes a row's primary key writes a ``K`` row under the OLD key with the old
  values ("this key's row moved away") before the usual ``U`` row under the new key, so the
  history of the old key ends there: when the key changed and no row holds the old key once
  the statement is done (a key swap under a deferrable key moves another row onto it).  Row
  mode looks in its own call; statement mode has one more trigger, the key trigger
  (``.key_trigger``: ``FOR EACH ROW WHEN`` the key changed, calling the same function), and
  looks over the transition tables (an anti-join) only on a partitioned table, where a row
  moving to another partition fires no row trigger.  Without key columns, nothing can tell a
  key change from an update: no ``K`` rows.
- Moved keys are looked for before any is written (row mode: the key comparison in PL/pgSQL's
  fast path before the table lookup; statement mode: the key trigger's condition, evaluated
  without a call), so an UPDATE that moves no key pays for neither an empty INSERT nor an
  executor run of the lookup; ``bench/breakdown.py`` measured the empty INSERT as half of a
  single-row UPDATE, the anti-join as 4-5 µs of it.
- The HINT of a missing required setting names ``audit_context(...)`` as well as
  ``set_session_vars()``.
- Statement-level capture also runs without nested loops when it looks for moved keys (the
  anti-join of old and new rows), for the reason ``function_config_v2`` gives.
- Each partition (and inheritance child) of the table gets a ``BEFORE TRUNCATE`` trigger
  calling the function (``.partitions``), and the table guard lets inheritance children through
  as it lets partitions.  A TRUNCATE reaching a partition records that partition's rows as ``T``
  rows, in both TRUNCATE modes: a marker (NULL key) would say every row of the table went.  A
  TRUNCATE of the table itself writes its marker as before, or, with ``truncate_rows``, copies
  the rows no descendant's own trigger copies, so each row is copied once however it is reached.
"""

from __future__ import annotations

from ..declare.spec import (
    AUDIT_CURRENT_USER,
    AUDIT_OPERATION,
    AUDIT_TIMESTAMP,
    KEY_CHANGE_CODE,
    OPERATION_CODES,
    AuditSpec,
    SettingSpec,
    capture_column,
)
from .key_trigger import (
    ROW_BRANCH,
    comment_key_triggers,
    drop_key_trigger,
    install_key_trigger,
)
from .partitions import drop_partition_triggers, install_partition_triggers
from .redaction import redacted_value
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
    regclass,
    regprocedure,
)
from .template_v1 import (
    PER_CALL_CAPTURES,
    capture_variable,
    changed_columns,
    column_value,
    create_trigger,
    drop_other_level,
    paired_update,
    recorded_differ,
    setting_variable,
    variable,
)

#: The variable holding the time the change was written, read once per trigger call.
_WRITTEN_AT = "written_at"


def render_v2(spec: AuditSpec) -> RenderedAudit:
    body = _function_body(spec)
    settings = (setting.split("=", 1) for setting in function_config_v2(spec))
    create_function = (
        f"CREATE OR REPLACE FUNCTION {function_signature(spec)} RETURNS trigger\n"
        "LANGUAGE plpgsql\nSECURITY DEFINER\n"
        + "".join(f"SET {name} TO {value}\n" for name, value in settings)
        + f"AS {dollar_quote(body)}"
    )
    comment = f"COMMENT ON FUNCTION {function_signature(spec)} IS {literal(function_comment(spec))}"
    # As in version 1: SECURITY DEFINER, and nobody needs EXECUTE for a trigger to fire.
    revoke = f"REVOKE ALL ON FUNCTION {function_signature(spec)} FROM PUBLIC"
    triggers = tuple(
        sql
        for trigger in spec.triggers
        for sql in (drop_other_level(spec, trigger), create_trigger(spec, trigger))
    )
    return RenderedAudit(
        function_body=body,
        install=(
            create_function,
            comment,
            revoke,
            *triggers,
            *install_key_trigger(spec),
            install_partition_triggers(spec),
            *comment_key_triggers(spec),
        ),
        uninstall=(
            *(drop_trigger(spec.schema, spec.table, t.name) for t in spec.triggers),
            *drop_key_trigger(spec),
            drop_partition_triggers(spec),
            drop_function(spec.schema, spec.function),
        ),
    )


def records_key_changes(spec: AuditSpec) -> bool:
    """Whether the function writes ``K`` rows: it audits UPDATE and knows the key."""
    return bool(spec.key_columns) and any(t.operation == "UPDATE" for t in spec.triggers)


def function_config_v2(spec: AuditSpec) -> tuple[str, ...]:
    """The function's settings as PostgreSQL lists them in ``pg_proc.proconfig``.

    ``search_path`` is pinned as in version 1.  Nested loops are off wherever a statement-level
    call joins old and new rows (pairing, or looking for moved keys): PL/pgSQL keeps the plan
    made for the first call's row count, typically one row, and a nested loop that is right for
    one row is quadratic for 100,000.
    """
    pinned = f"search_path={SEARCH_PATH}"
    joins = spec.mode == "statement" and (spec.pairs_updates or records_key_changes(spec))
    return (pinned, "enable_nestloop=off") if joins else (pinned,)


def recorded_value(spec: AuditSpec, row: str, column: str) -> str:
    """What the function records for mirrored column ``column`` of row ``row``: its value, or
    its masked or hashed form (``redact``, see ``.redaction``)."""
    return redacted_value(spec, column, column_value(spec, row, column))


def _keys_match(spec: AuditSpec, left: str, right: str) -> str:
    """The key of row ``left`` equals that of row ``right``, by the key types' ``=`` (the
    unique index's notion of one key)."""
    return " AND ".join(
        f"{column_value(spec, left, k)} = {column_value(spec, right, k)}" for k in spec.key_columns
    )


def _key_row(spec: AuditSpec, row: str) -> str:
    return "ROW(" + ", ".join(column_value(spec, row, k) for k in spec.key_columns) + ")"


def _function_body(spec: AuditSpec) -> str:
    settings = list(enumerate(spec.settings))
    per_call = [c for c in spec.captures if c in PER_CALL_CAPTURES]
    # Setting types are the spec's SQL type names, resolved as in version 1.
    declare = (
        f"  writer pg_catalog.text := {WRITER};\n"
        f"  {_WRITTEN_AT} pg_catalog.timestamptz := pg_catalog.clock_timestamp();\n"
    )
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

    def values(code: str, row: str | None, old: str | None = None) -> str:
        """The VALUES/SELECT list; ``row`` is None for a TRUNCATE marker, ``old`` names the
        old row of an update when it can be compared."""
        captured = "".join(
            f", {variable(capture_variable(c))}"
            if c in PER_CALL_CAPTURES
            else f", {changed_columns(spec, old, row) if old and row else 'NULL'}"
            for c in spec.captures
        )
        mirrored = "".join(
            f", {recorded_value(spec, row, c)}" if row else ", NULL" for c in spec.columns
        )
        return (
            f"{literal(code)}, {variable(_WRITTEN_AT)}, {variable('writer')}"
            f"{captured}{setting_values}{mirrored}"
        )

    def moved_keys() -> str:
        """``K`` rows for the update being recorded, written before its ``U`` rows."""
        if spec.mode == "row":
            # Two IFs, not one AND: PL/pgSQL evaluates a condition without a subquery in its
            # fast path, while one holding EXISTS runs through the executor on every call,
            # even when the key did not change.
            table = always_qualified(spec.schema, spec.table)
            # Two IFs: the outer condition stays a simple expression, evaluated without the
            # executor for every updated row; only a changed key costs the lookup.
            return (
                f"IF {_key_row(spec, 'OLD')} IS DISTINCT FROM {_key_row(spec, 'NEW')} THEN\n"
                f"      IF NOT EXISTS (SELECT FROM {table} AS now_at_key\n"
                f"          WHERE {_keys_match(spec, 'now_at_key', 'OLD')}) THEN\n"
                f"        {insert_into}\n        VALUES ({values(KEY_CHANGE_CODE, 'OLD')});\n"
                "      END IF;\n    END IF;\n    "
            )
        # Statement mode: the key trigger (``.key_trigger``) calls the function for each row
        # whose key changed; its condition is evaluated by PostgreSQL without a call, so an
        # UPDATE moving no key pays for no look.  A row's K is written when no row holds its
        # old key once the statement is done, as in row mode.  On a partition (statement mode
        # forced on a partitioned table) it does nothing: a row moving to another partition
        # fires no UPDATE row trigger, so the statement call looks for every moved key there.
        table = always_qualified(spec.schema, spec.table)
        row = (
            f"{ROW_BRANCH}\n"
            "      IF pg_catalog.pg_partition_root(TG_RELID) IS NULL\n"
            f"          AND NOT EXISTS (SELECT FROM {table} AS now_at_key\n"
            f"            WHERE {_keys_match(spec, 'now_at_key', 'OLD')}) THEN\n"
            f"        {insert_into}\n        VALUES ({values(KEY_CHANGE_CODE, 'OLD')});\n"
            "      END IF;\n      RETURN NULL;\n    END IF;\n    "
        )
        # Looked for first, written only when found: an INSERT that writes no row still opens
        # the audit table and its indexes, which cost a single-row UPDATE as much again as
        # the anti-join itself; keys rarely move.  A partitioned table's root is itself.
        moved = (
            f"FROM {OLD_ROWS} AS o WHERE NOT EXISTS (\n"
            f"        SELECT FROM {NEW_ROWS} AS n WHERE {_keys_match(spec, 'n', 'o')})"
        )
        return (
            f"{row}IF pg_catalog.pg_partition_root(TG_RELID) IS NOT NULL THEN\n"
            f"      IF EXISTS (SELECT {moved}) THEN\n"
            f"        {insert_into}\n        SELECT {values(KEY_CHANGE_CODE, 'o')}\n"
            f"        {moved};\n      END IF;\n    END IF;\n    "
        )

    branches: list[str] = []
    for trigger in spec.triggers:
        op = trigger.operation
        code = OPERATION_CODES[op]
        if op == "TRUNCATE" and spec.truncate_rows:
            statement = _copy_truncated_rows(spec, insert_into, per_call)
        elif op == "TRUNCATE":
            table = regclass(spec.schema, spec.table)
            marker = f"{insert_into}\n      VALUES ({values(code, None)});"
            copy = _copy_truncated_rows(spec, insert_into, per_call).replace("\n", "\n  ")
            statement = (
                f"IF TG_RELID = {table} THEN\n      {marker}\n    ELSE\n      {copy}\n    END IF;"
            )
        elif spec.mode == "row":
            row = "OLD" if op == "DELETE" else "NEW"
            old = "OLD" if op == "UPDATE" else None
            statement = f"{insert_into}\n    VALUES ({values(code, row, old)});"
            if op == "UPDATE" and records_key_changes(spec):
                statement = moved_keys() + statement
            if op == "UPDATE" and spec.skip_unchanged:
                # Checked here rather than in a WHEN clause, which would make the trigger
                # depend on these columns and block retyping or dropping them.  The key is
                # recorded, so a moved key is never skipped.
                changed = recorded_differ(spec, spec.compared_columns, "OLD", "NEW")
                skip = f"IF NOT ({changed}) THEN\n      RETURN NULL;\n    END IF;\n"
                statement = f"{skip}    {statement}"
        else:
            if op == "UPDATE" and spec.pairs_updates:
                statement = paired_update(spec, insert_into, values(code, "r", "o"))
            else:
                rows = OLD_ROWS if op == "DELETE" else NEW_ROWS
                statement = f"{insert_into}\n    SELECT {values(code, 'r')}\n    FROM {rows} AS r;"
            if op == "UPDATE" and records_key_changes(spec):
                statement = moved_keys() + statement
        keyword = "IF" if not branches else "ELSIF"
        branches.append(f"  {keyword} TG_OP = {literal(op)} THEN\n    {statement}\n")
    dispatch = "".join(branches) + "  END IF;\n"

    if spec.mode == "row":
        # Checked after the dispatch: an unchanged row skipped by skip_unchanged returns first,
        # and the raise rolls back the audit rows with the write.
        checks = "".join(_required_check(spec, i, s, indent="  ") for i, s in required)
        return _block(spec, declare, dispatch + checks)
    # Statement level: a statement that changed no rows needs no setting, so check afterwards
    # (the row count is the last INSERT's: the U rows, at least one wherever a K row was
    # written); raising still rolls back the statement together with its audit rows.
    counted = ""
    if required:
        checks = "".join(_required_check(spec, i, s, indent="    ") for i, s in required)
        counted = (
            f"  GET DIAGNOSTICS {variable('audited_rows')} = ROW_COUNT;\n"
            f"  IF {variable('audited_rows')} > 0 THEN\n{checks}  END IF;\n"
        )
        declare += "  audited_rows pg_catalog.int8;\n"
    return _block(spec, declare, dispatch + counted)


def _copy_truncated_rows(spec: AuditSpec, insert_into: str, per_call: list[str]) -> str:
    """Copy the rows a TRUNCATE is about to remove from the relation the trigger fired on, as
    ``T`` rows.

    The relation is the table or one of its descendants, known only at run time, so the copy is
    one dynamic ``INSERT`` of a ``SELECT ... FROM ONLY`` per relation, joined with UNION ALL
    (so that ``ROW_COUNT`` counts every copied row), values passed as parameters.  It covers the
    relation and those of its descendants that have no enabled TRUNCATE trigger of this
    function: a TRUNCATE fires the trigger of every relation it reaches, so a descendant with
    its own trigger copies its own rows, and each row is copied exactly once.
    """
    parameters = [variable(_WRITTEN_AT), variable("writer")]
    selected = [literal(OPERATION_CODES["TRUNCATE"]), "$1", "$2"]
    for capture in spec.captures:
        if capture in PER_CALL_CAPTURES:
            parameters.append(variable(capture_variable(capture)))
            selected.append(f"${len(parameters)}")
        else:
            selected.append("NULL")
    for index, _ in enumerate(spec.settings):
        parameters.append(variable(setting_variable(index)))
        selected.append(f"${len(parameters)}")
    selected += [recorded_value(spec, "r", c) for c in spec.columns]
    select = literal(f"SELECT {', '.join(selected)} FROM ONLY ")
    function = regprocedure(spec.schema, spec.function)
    # One expression, no text variable in between: the statement's only run-time part is
    # regclass output, which the server quotes.
    return (
        _refuse_hidden_rows(spec) + f"EXECUTE {literal(insert_into + ' ')}\n"
        f"      || (SELECT pg_catalog.string_agg({select}\n"
        "          || share.relation::pg_catalog.regclass::pg_catalog.text || ' AS r',\n"
        "          ' UNION ALL ')\n"
        "        FROM (WITH RECURSIVE tree(relation) AS (\n"
        "            SELECT TG_RELID\n"
        "            UNION\n"
        "            SELECT i.inhrelid FROM pg_catalog.pg_inherits i\n"
        "              JOIN tree ON i.inhparent = tree.relation\n"
        "              WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t\n"
        f"                WHERE t.tgrelid = i.inhrelid AND t.tgfoid = {function}\n"
        "                  AND t.tgenabled IN ('O', 'A')\n"
        "                  AND (t.tgtype::pg_catalog.int4 & 32) <> 0))\n"
        "          SELECT tree.relation FROM tree) AS share)\n"
        f"      USING {', '.join(parameters)};"
    )


def _refuse_hidden_rows(spec: AuditSpec) -> str:
    """Refuse a TRUNCATE whose rows row-level security would hide from the copy.

    The copy reads as the function's owner; with row-level security active for that role on
    the relation or a descendant, it would see only the rows a policy lets through, while the
    TRUNCATE removes every row: the history would silently miss rows.  Failing the TRUNCATE
    keeps the rule that a write which cannot be audited fails.
    """
    message = (
        "cannot record the rows TRUNCATE removes from "
        f"{always_qualified(spec.schema, spec.table)} or a partition of it: row-level security "
        "hides rows from the audit function's owner"
    )
    hint = "Give the audit function's owner BYPASSRLS, or own the table with it."
    return (
        "IF EXISTS (WITH RECURSIVE tree(relation) AS (\n"
        "          SELECT TG_RELID\n"
        "          UNION\n"
        "          SELECT i.inhrelid FROM pg_catalog.pg_inherits i\n"
        "            JOIN tree ON i.inhparent = tree.relation)\n"
        "        SELECT FROM tree\n"
        "        WHERE pg_catalog.row_security_active(tree.relation::pg_catalog.regclass)) THEN\n"
        f"      RAISE EXCEPTION USING MESSAGE = {literal(message)},\n"
        f"        ERRCODE = 'insufficient_privilege', HINT = {literal(hint)};\n"
        "    END IF;\n    "
    )


def _block(spec: AuditSpec, declare: str, statements: str) -> str:
    """The labelled function body (see ``LABEL``), starting with the table and trigger
    guards."""
    return (
        f"\n<<{LABEL}>>\nDECLARE\n{declare}BEGIN\n{_table_guard(spec)}{_trigger_guard(spec)}"
        f"{statements}  RETURN NULL;\nEND {LABEL};\n"
    )


def _trigger_guard(spec: AuditSpec) -> str:
    """Refuse to run from any trigger but the library's own on the audited table.

    A role holding EXECUTE on the function (through default privileges, before the grant step
    narrowed them) and TRIGGER on the audited table could add a trigger of its own calling it,
    for instance with the transition tables swapped, and record a state the table never had.
    The library's triggers keep their names on partitions (PostgreSQL clones row triggers under
    the parent's name; the partition TRUNCATE triggers take the table's), so the name settles
    it: one comparison of a variable with constants, no catalog read.
    """
    triggers = (*spec.triggers, *([spec.key_trigger] if spec.key_trigger else []))
    names = ", ".join(f"{literal(t.name)}::pg_catalog.name" for t in triggers)
    message = (
        f"audit function {always_qualified(spec.schema, spec.function)} runs only from the "
        f"audit triggers of {always_qualified(spec.schema, spec.table)}"
    )
    return (
        f"  IF TG_NAME OPERATOR(pg_catalog.<>) ALL (ARRAY[{names}]) THEN\n"
        f"    RAISE EXCEPTION USING MESSAGE = {literal(message)},\n"
        "      ERRCODE = 'insufficient_privilege';\n"
        "  END IF;\n"
    )


def _table_guard(spec: AuditSpec) -> str:
    """Refuse to record anything for a table other than the audited one, its partitions or
    its inheritance children (version 1's guard, which lets partitions through, plus children).

    The function is SECURITY DEFINER: a role that holds EXECUTE on it (through default
    privileges, say) could otherwise attach it to a table of its own and write audit rows of its
    choosing as the function's owner.  Making a table a partition or child of the audited one
    takes ownership of the audited table.
    """
    table = regclass(spec.schema, spec.table)
    schema, name = literal(spec.schema or FALLBACK_SCHEMA), literal(spec.table)
    message = (
        f"audit function {always_qualified(spec.schema, spec.function)} records only table "
        f"{always_qualified(spec.schema, spec.table)}"
    )
    # Names first, then the partition root: the outer condition stays a simple expression, so
    # a write to the table or a partition costs no query; only an inheritance child's call (or
    # a forger's) reads pg_inherits.
    return (
        f"  IF (TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) {schema}\n"
        f"      OR TG_TABLE_NAME OPERATOR(pg_catalog.<>) {name})\n"
        f"     AND pg_catalog.pg_partition_root(TG_RELID) IS DISTINCT FROM {table} THEN\n"
        "    IF NOT EXISTS (WITH RECURSIVE up(relation) AS (\n"
        "          SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = TG_RELID\n"
        "          UNION\n"
        "          SELECT i.inhparent FROM pg_catalog.pg_inherits i\n"
        "            JOIN up ON i.inhrelid = up.relation)\n"
        f"        SELECT FROM up WHERE up.relation = {table}) THEN\n"
        f"      RAISE EXCEPTION USING MESSAGE = {literal(message)},\n"
        "        ERRCODE = 'insufficient_privilege';\n"
        "    END IF;\n"
        "  END IF;\n"
    )


def _required_check(spec: AuditSpec, index: int, setting: SettingSpec, *, indent: str) -> str:
    message = (
        f"audit setting audit.{setting.name} is required to write to table "
        f"{always_qualified(spec.schema, spec.table)} but is not set in this transaction"
    )
    hint = (
        f"Write inside sqlalchemy_postgresql_audit.audit_context({setting.name}=...), or set "
        "it with sqlalchemy_postgresql_audit.set_session_vars() in the same transaction."
    )
    return (
        f"{indent}IF {variable(setting_variable(index))} IS NULL THEN\n"
        f"{indent}  RAISE EXCEPTION USING MESSAGE = {literal(message)},\n"
        f"{indent}    ERRCODE = 'not_null_violation', HINT = {literal(hint)};\n"
        f"{indent}END IF;\n"
    )
