"""The audit spec: everything the SQL templates need, as plain, frozen data.

An :class:`AuditSpec` holds names and SQL type strings only, no SQLAlchemy objects, so that it can
be written into an Alembic migration as readable arguments, stored as JSON in the comment of the
installed function (which is how the installed definition is read back for exact downgrades), and
compared for equality.  ``template`` names the SQL template version that renders it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .options import CaptureMode, Operation

#: The newest template version.  A released version is never edited; a change is a new version.
TEMPLATE_VERSION = 1

AUDIT_ID = "audit_id"
AUDIT_OPERATION = "audit_operation"
AUDIT_TIMESTAMP = "audit_operation_timestamp"
AUDIT_CURRENT_USER = "audit_current_user"
#: Columns every audit table has, before the session-setting and mirrored columns.
FIXED_AUDIT_COLUMNS = (AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP, AUDIT_CURRENT_USER)

#: A SQL type as SQLAlchemy compiles it: names, quoted names, digits, ``( , ) [ ] .`` and spaces.
_SQL_TYPE = re.compile(r'^(?:[A-Za-z0-9_ ,.()\[\]]|"(?:[^"]|"")*")+$')

OPERATION_CODES: dict[str, str] = {"INSERT": "I", "UPDATE": "U", "DELETE": "D", "TRUNCATE": "T"}


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
class TriggerSpec:
    """One trigger on the audited table, firing for one operation."""

    name: str
    operation: Operation


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
    #: The audit table refuses UPDATE, DELETE and TRUNCATE except through the retention path.
    append_only: bool = False

    @property
    def pairs_updates(self) -> bool:
        """Whether statement-level UPDATE capture joins old and new rows on the key."""
        return self.mode == "statement" and (
            self.skip_unchanged or "changed_columns" in self.captures
        )

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
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

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
            append_only=bool(data.get("append_only", False)),
        )


#: Fields added after template 1 was released, written into the JSON only when set, so that
#: a spec that does not use them renders byte for byte as before.
_OMITTED_WHEN_FALSE = ("append_only",)


def _check_plain(data: dict[str, Any]) -> None:
    if data.get("mode") not in ("statement", "row"):
        raise ValueError(f"audit spec: mode must be 'statement' or 'row', got {data.get('mode')!r}")
    for trigger in data.get("triggers", ()):
        if trigger.get("operation") not in OPERATION_CODES:
            raise ValueError(f"audit spec: unknown trigger operation {trigger.get('operation')!r}")
    for setting in data.get("settings", ()):
        if not _SQL_TYPE.match(str(setting.get("sql_type", ""))):
            raise ValueError(f"audit spec: {setting.get('sql_type')!r} is not a SQL type name")
