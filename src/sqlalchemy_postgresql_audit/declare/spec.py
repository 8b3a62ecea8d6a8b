"""The audit spec: everything the SQL templates need, as plain, frozen data.

An ``AuditSpec`` holds names and SQL type strings only, no SQLAlchemy objects, so that it can
be written into an Alembic migration as readable arguments, stored as JSON in the comment of the
installed function (which is how the installed definition is read back for exact downgrades), and
compared for equality.  ``template`` names the SQL template version that renders it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .naming import fit_identifier
from .options import REDACT_FORMS, CaptureMode, Operation, RedactForm

#: The newest template version.  A released version is never edited; a change is a new version.
TEMPLATE_VERSION = 2

AUDIT_ID = "audit_id"
AUDIT_OPERATION = "audit_operation"
AUDIT_TIMESTAMP = "audit_operation_timestamp"
AUDIT_CURRENT_USER = "audit_current_user"
#: Columns every audit table has, before the session-setting and mirrored columns.
FIXED_AUDIT_COLUMNS = (AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP, AUDIT_CURRENT_USER)

#: A SQL type as SQLAlchemy compiles it: names, quoted names, digits, ``( , ) [ ] .`` and spaces.
_SQL_TYPE = re.compile(r'^(?:[A-Za-z0-9_ ,.()\[\]]|"(?:[^"]|"")*")+$')

#: The ``audit_operation`` code each audited operation writes.  Audit tables also hold ``P``
#: (a purge marker, ``render.guard``), ``B`` (a baseline version, ``render.baseline``) and
#: ``KEY_CHANGE_CODE``.
OPERATION_CODES: dict[str, str] = {"INSERT": "I", "UPDATE": "U", "DELETE": "D", "TRUNCATE": "T"}
#: ``K``, key moved: from template 2, an UPDATE that changes a row's primary key first writes
#: this row under the OLD key, with the old values; the ``U`` row under the new key follows.
#: For history it ends the old key's life, like ``D``.
KEY_CHANGE_CODE = "K"


def capture_column(capture: str) -> str:
    """The audit column of an opt-in capture, e.g. ``audit_transaction_id``."""
    return f"audit_{capture}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingSpec:
    """A transaction-local ``audit.<name>`` setting and the audit column that records it."""

    name: str
    column: str
    sql_type: str
    required: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualColumnSpec:
    """A virtual generated column of the source table and its generation expression.

    Transition tables and ``NEW``/``OLD`` hold NULL for virtual columns (and comparing them in a
    transition table fails), so the trigger computes the value from the row's stored columns.
    The expression is SQL text from the user's own model (``sa.Computed``); it reaches SQL only
    through an installation the user runs, or back from the function's comment, which only the
    function's owner can change.  ``from_dict`` still checks that it is one expression.
    """

    name: str
    expression: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RedactedColumn:
    """A source column recorded without its value (option ``redact``): ``mask`` keeps the typed
    audit column and writes NULL, ``hash`` writes a keyed HMAC into a ``bytea`` column,
    ``omit`` has no audit column.  ``changed_columns`` names it whenever it changed."""

    name: str
    form: RedactForm


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerSpec:
    """One trigger on the audited table, firing for one operation."""

    name: str
    operation: Operation


def key_trigger_name(update_trigger: str) -> str:
    """The name of the key trigger beside the UPDATE trigger ``update_trigger``: that name plus
    ``_key``, fitted into 63 bytes.

    Derived, not declared: it follows the table's trigger naming convention through the UPDATE
    trigger's name, and a spec read back from a migration or a function comment names it
    without a new field.  Trigger names only need to differ per table; the table's other
    triggers end in the operation (``_insert``, ``_update``, ...), never in ``_update_key``, and
    a fitted long name ends in a hash of the full name.
    """
    return fit_identifier(f"{update_trigger}_key")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditSpec:
    """What should be installed for one audited table."""

    schema: str | None
    table: str
    audit_table: str
    function: str
    triggers: tuple[TriggerSpec, ...]
    columns: tuple[str, ...]
    settings: tuple[SettingSpec, ...] = ()
    mode: CaptureMode = "statement"
    template: int = field(default=TEMPLATE_VERSION)
    #: Source columns that are not mirrored (``columns`` never holds them).
    exclude_columns: tuple[str, ...] = ()
    #: Leave updated rows whose recorded columns did not change unrecorded.
    skip_unchanged: bool = False
    #: The source table's primary key; statement-level triggers pair old and new rows on it.
    key_columns: tuple[str, ...] = ()
    #: Opt-in capture columns (see ``options.CAPTURES``).
    captures: tuple[str, ...] = ()
    #: TRUNCATE records every removed row (a BEFORE trigger) instead of one marker row.
    truncate_rows: bool = False
    #: Source columns generated ``VIRTUAL`` (recorded or excluded), with their expressions.
    virtual_columns: tuple[VirtualColumnSpec, ...] = ()

    @property
    def stored_columns(self) -> tuple[str, ...]:
        """Every source column that has a stored value: what virtual expressions read."""
        virtual = {v.name for v in self.virtual_columns}
        every = (*self.columns, *self.exclude_columns, *self.omitted_columns)
        return tuple(c for c in every if c not in virtual)

    #: The audit table refuses UPDATE, DELETE and TRUNCATE except through the retention path.
    append_only: bool = False
    #: Captured by change-data-capture (``mode="cdc"``): the source carries no audit function
    #: or trigger but belongs to the CDC publication; ``capture_spec`` is what the consumer's
    #: side installs.
    cdc: bool = False
    #: A CDC table whose decoder reads old rows from the WAL (``REPLICA IDENTITY FULL``), not
    #: from the trail; see ``options.ReplicaIdentity`` and ``declare.cdc.replica_identity``.
    replica_identity_full: bool = False

    @property
    def capture_spec(self) -> AuditSpec:
        """What captures this table's changes where they are applied: for a CDC table the same
        audit in row mode (replication applies rows) with every setting optional (a write
        cannot be refused once it committed on the source); for any other table, itself."""
        if not self.cdc:
            return self
        settings = tuple(replace(s, required=False) for s in self.settings)
        return replace(self, cdc=False, mode="row", settings=settings, replica_identity_full=False)

    #: Redacted source columns; an omitted one is not in ``columns`` (it has no audit column).
    redacted: tuple[RedactedColumn, ...] = ()

    def redaction(self, column: str) -> RedactForm | None:
        """How ``column`` is redacted, or None when its value is recorded as it is."""
        return next((r.form for r in self.redacted if r.name == column), None)

    @property
    def hashes(self) -> bool:
        """Whether a column is recorded as a keyed hash (the function reads the key table)."""
        return any(r.form == "hash" for r in self.redacted)

    @property
    def omitted_columns(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.redacted if r.form == "omit")

    @property
    def compared_columns(self) -> tuple[str, ...]:
        """The columns whose changes count (``changed_columns``, ``skip_unchanged``): the
        recorded ones and the omitted ones; exactly ``columns`` without redaction."""
        return (*self.columns, *self.omitted_columns)

    @property
    def pairs_updates(self) -> bool:
        """Whether statement-level UPDATE capture joins old and new rows on the key."""
        return self.mode == "statement" and (
            self.skip_unchanged or "changed_columns" in self.captures
        )

    @property
    def update_trigger(self) -> TriggerSpec | None:
        """The UPDATE trigger, whose name the key trigger's follows."""
        return next((t for t in self.triggers if t.operation == "UPDATE"), None)

    @property
    def key_trigger(self) -> TriggerSpec | None:
        """From template 2, the row-level trigger recording moved keys (``K`` rows) of a
        statement-mode table with a key that audits UPDATE.

        ``AFTER UPDATE ... FOR EACH ROW WHEN (OLD.k IS DISTINCT FROM NEW.k ...)`` calling the
        same function: the condition is evaluated without calling it, so an UPDATE that moves
        no key pays no look for moved keys (``render.key_trigger``).  None where the statement
        trigger needs no help: row mode looks in its own call, a keyless table cannot tell.
        """
        update = self.update_trigger
        if update is None or self.template < 2 or self.mode != "statement" or self.cdc:
            return None
        if not self.key_columns:
            return None
        return TriggerSpec(name=key_trigger_name(update.name), operation="UPDATE")

    @property
    def key(self) -> tuple[str | None, str]:
        """Identifies the audited table: (schema, table)."""
        return (self.schema, self.table)

    def as_dict(self) -> dict[str, Any]:
        """The fields as plain data, for the function comment and migration arguments; fields
        added after template 1 appear only when set, so existing output stays unchanged."""
        data = asdict(self)
        for name in _OMITTED_WHEN_FALSE:
            if not data[name]:
                del data[name]
        return data

    def to_json(self) -> str:
        """Canonical JSON with no ``:name`` pattern, so SQL holding it is safe for ``text()``.

        Key separators are ``": "`` and a colon inside a string is escaped as ``\\u003a``
        (``ensure_ascii`` escapes NUL inside strings, so a NUL in the output is a separator).
        """
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(", ", "\0"))
        return text.replace(":", "\\u003a").replace("\0", ": ")

    @classmethod
    def from_json(cls, text: str) -> AuditSpec:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditSpec:
        """Rebuild a spec from a migration's arguments or an installed function's comment.

        Both sources are outside this process's control, and the mode, operations and SQL type
        strings end up as SQL keywords, so they are checked here.
        """
        _check_plain(data)
        return cls(
            schema=data["schema"],
            table=data["table"],
            audit_table=data["audit_table"],
            function=data["function"],
            triggers=tuple(TriggerSpec(**t) for t in data["triggers"]),
            columns=tuple(data["columns"]),
            settings=tuple(SettingSpec(**s) for s in data["settings"]),
            mode=data["mode"],
            template=data["template"],
            exclude_columns=tuple(data.get("exclude_columns", ())),
            skip_unchanged=bool(data.get("skip_unchanged", False)),
            key_columns=tuple(data.get("key_columns", ())),
            captures=tuple(data.get("captures", ())),
            truncate_rows=bool(data.get("truncate_rows", False)),
            virtual_columns=tuple(VirtualColumnSpec(**v) for v in data.get("virtual_columns", ())),
            append_only=bool(data.get("append_only", False)),
            cdc=bool(data.get("cdc", False)),
            replica_identity_full=bool(data.get("replica_identity_full", False)),
            redacted=tuple(RedactedColumn(**r) for r in data.get("redacted", ())),
        )


#: Fields added after template 1 was released, written into the JSON only when set, so that
#: a spec that does not use them renders byte for byte as before.
_OMITTED_WHEN_FALSE = (
    "append_only",
    "virtual_columns",
    "redacted",
    "cdc",
    "replica_identity_full",
)


def _check_plain(data: dict[str, Any]) -> None:
    if data.get("mode") not in ("statement", "row"):
        raise ValueError(f"audit spec: mode must be 'statement' or 'row', got {data.get('mode')!r}")
    for trigger in data.get("triggers", ()):
        if trigger.get("operation") not in OPERATION_CODES:
            raise ValueError(f"audit spec: unknown trigger operation {trigger.get('operation')!r}")
    for setting in data.get("settings", ()):
        if not _SQL_TYPE.match(str(setting.get("sql_type", ""))):
            raise ValueError(f"audit spec: {setting.get('sql_type')!r} is not a SQL type name")
    for redacted in data.get("redacted", ()):
        if redacted.get("form") not in REDACT_FORMS:
            raise ValueError(f"audit spec: unknown redaction form {redacted.get('form')!r}")
    for virtual in data.get("virtual_columns", ()):
        check_expression(virtual.get("name"), virtual.get("expression"))


#: What ``sqlalchemy.text()`` would take for a bind parameter (its own pattern).
_BIND_PARAMETER = re.compile(r"(?<![:\w\\]):\w+(?![:\w])")


def check_expression(column: object, expression: object) -> None:
    """A generation expression must be one SQL expression: it is put into the function body.

    Statement separators and comments cannot be part of one, parentheses must balance, and a
    ``:name`` would break running the rendered SQL through ``text()``.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError(f"audit spec: column {column!r}: expression must be SQL text")
    outside = _outside_quotes(expression)
    depth, balanced = 0, True
    for char in outside:
        depth += {"(": 1, ")": -1}.get(char, 0)
        balanced = balanced and depth >= 0
    problem = (
        "holds ';'"
        if ";" in outside
        else "has unbalanced parentheses"
        if depth or not balanced
        else "holds a comment"
        if "--" in outside or "/*" in outside
        else "holds a ':name' bind pattern"
        if _BIND_PARAMETER.search(expression)
        else None
    )
    if problem:
        raise ValueError(f"audit spec: column {column!r}: expression {expression!r} {problem}")


def _outside_quotes(text: str) -> str:
    """``text`` with quoted strings and identifiers removed; unterminated quotes fail."""
    outside, quote = [], ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote  # a doubled quote reopens at once
        elif char in "'\"":
            quote = char
        else:
            outside.append(char)
    if quote:
        raise ValueError(f"audit spec: expression {text!r} has an unterminated quote")
    return "".join(outside)
