"""Parse and validate a table's ``info["audit.options"]`` exactly once.

Everything downstream (the audit table, the SQL renderer, Alembic) works from the frozen
``AuditOptions`` built here; nothing else reads the user's dict, and the user's dict is never
modified.  Errors name the table and the offending key, at declaration time.
"""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import ARRAY, Column, Enum
from sqlalchemy.dialects.postgresql import DOMAIN
from sqlalchemy.types import TypeDecorator, TypeEngine

from ..errors import AuditConfigurationError

OPTIONS_KEY = "audit.options"

CaptureMode = Literal["statement", "row"]
#: ``mode="cdc"``: no trigger on the source; logical replication carries the changes to a
#: consumer (``cdc``), whose row-level capture writes the trail.
CDC_MODE = "cdc"
#: How a partitioned audit table is cut: one partition per UTC day, ISO week or month.
PartitionInterval = Literal["day", "week", "month"]
PARTITION_INTERVALS: tuple[PartitionInterval, ...] = ("day", "week", "month")
#: The shortest partition of each interval: a retention below it cannot be honoured.
_SHORTEST = {
    "day": datetime.timedelta(days=1),
    "week": datetime.timedelta(weeks=1),
    "month": datetime.timedelta(days=28),
}
Operation = Literal["INSERT", "UPDATE", "DELETE", "TRUNCATE"]
#: How a redacted column is recorded: ``mask`` (the typed column, always NULL), ``hash`` (a
#: keyed HMAC-SHA256, ``bytea``) or ``omit`` (no column); each still shows in changed_columns.
RedactForm = Literal["mask", "hash", "omit"]
REDACT_FORMS: tuple[RedactForm, ...] = ("mask", "hash", "omit")
#: Where a CDC table's decoder finds the old row of an UPDATE or DELETE: ``default`` rebuilds it
#: from the trail (the writer logs only the key), ``full`` reads it from the WAL (``REPLICA
#: IDENTITY FULL``: the writer logs the whole old row).
ReplicaIdentity = Literal["default", "full"]
REPLICA_IDENTITIES: tuple[ReplicaIdentity, ...] = ("default", "full")
ALL_OPERATIONS: tuple[Operation, ...] = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")

#: Opt-in capture columns, each recorded as ``audit_<name>``.
CAPTURES = (
    "transaction_id",
    "statement_timestamp",
    "clock_timestamp",
    "session_user",
    "application_name",
    "client_addr",
    "changed_columns",
)

#: A custom PostgreSQL setting name part: ``audit.<name>``.  PostgreSQL folds these names to
#: lower case, so names that differ only in case would collide.
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_KNOWN_KEYS = frozenset(
    {
        "enabled",
        "session_settings",
        "mode",
        "legacy_timestamp",
        "operations",
        "exclude_columns",
        "skip_unchanged",
        "capture",
        "truncate_rows",
        "history_index",
        "append_only",
        "partition",
        "retention",
        "retention_keep",
        "redact",
        "replica_identity",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSetting:
    """One ``audit.<name>`` transaction-local setting recorded into the audit table."""

    name: str
    type: TypeEngine[Any]
    required: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditOptions:
    """The validated form of ``info["audit.options"]``."""

    enabled: bool = False
    session_settings: tuple[SessionSetting, ...] = ()
    #: ``None``: statement level, except row level on a partitioned table (see ``capture_mode``).
    mode: CaptureMode | None = None
    #: Captured off the writer's path (``mode="cdc"``): the source gets no audit trigger but a
    #: publication and a slot; the consumer captures row by row, so ``mode`` is then ``"row"``.
    cdc: bool = False
    legacy_timestamp: bool = False
    operations: tuple[Operation, ...] = ALL_OPERATIONS
    #: Source columns that are neither mirrored nor captured.
    exclude_columns: tuple[str, ...] = ()
    #: Whether an updated row whose recorded columns did not change is left unrecorded.  Always
    #: true when ``exclude_columns`` is set: once a column is not recorded, an update that only
    #: changed it cannot be told apart from one that changed nothing.
    skip_unchanged: bool = False
    #: Opt-in capture columns (names from ``CAPTURES``), in ``CAPTURES`` order.
    capture: tuple[str, ...] = ()
    #: Record every row a TRUNCATE removes (a BEFORE TRUNCATE trigger copies the table), instead
    #: of one marker row.
    truncate_rows: bool = False
    #: Index the audit table on (source primary key..., audit_id).
    history_index: bool = True
    #: Guard the audit table: UPDATE, DELETE and TRUNCATE of its rows are refused, even to its
    #: owner, except rows removed through ``retention.purge_audit_history``.
    append_only: bool = False
    #: Range-partition the audit table on ``audit_operation_timestamp`` by this interval (with a
    #: DEFAULT partition, so a write never fails for want of a partition); see ``maintenance``.
    partition: PartitionInterval | None = None
    #: How long ``maintain`` keeps history: older partitions are detached and dropped whole.
    retention: datetime.timedelta | None = None
    #: Retention detaches old partitions and keeps them as plain tables (same name and
    #: comment) for archiving, instead of dropping them.
    retention_keep: bool = False
    #: Columns recorded redacted, as (column, form) pairs in the order declared.
    redact: tuple[tuple[str, RedactForm], ...] = ()
    #: ``replica_identity`` as declared (CDC tables only); ``None``: chosen when the table is
    #: specified (``default`` where it can work, else ``full``).
    replica_identity: ReplicaIdentity | None = None


def parse_options(table_name: str, info: Mapping[str, Any]) -> AuditOptions | None:
    """Return the table's audit options, or ``None`` when the table carries none.

    ``table_name`` is only used in error messages.
    """
    _refuse_near_misses(table_name, info)
    raw = info.get(OPTIONS_KEY)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise AuditConfigurationError(
            table_name, OPTIONS_KEY, f"must be a dict, got {type(raw).__name__}"
        )
    unknown = sorted(set(raw) - _KNOWN_KEYS)
    if unknown:
        raise AuditConfigurationError(
            table_name,
            unknown[0],
            f"is not an audit option (known: {', '.join(sorted(_KNOWN_KEYS))})",
        )
    exclude_columns = _names(table_name, "exclude_columns", raw.get("exclude_columns", ()))
    skip_unchanged = _bool(table_name, raw, "skip_unchanged", default=bool(exclude_columns))
    if exclude_columns and not skip_unchanged:
        raise AuditConfigurationError(
            table_name,
            "skip_unchanged",
            "cannot be False together with exclude_columns: an update that only changed "
            "excluded columns is never recorded, so updates that changed no recorded column "
            "are skipped too",
        )
    redact = _redact(table_name, raw.get("redact", {}), exclude_columns)
    capture = _names(table_name, "capture", raw.get("capture", ()), choices=CAPTURES)
    if redact and "changed_columns" not in capture:
        # A masked or omitted value cannot show that it changed; the list of changed columns
        # can, so redaction records it.
        capture = tuple(c for c in CAPTURES if c in capture or c == "changed_columns")
    return AuditOptions(
        enabled=_bool(table_name, raw, "enabled", default=False),
        session_settings=_session_settings(table_name, raw.get("session_settings", ())),
        mode="row" if raw.get("mode") == CDC_MODE else _mode(table_name, raw.get("mode")),
        cdc=raw.get("mode") == CDC_MODE,
        legacy_timestamp=_bool(table_name, raw, "legacy_timestamp", default=False),
        operations=_operations(table_name, raw.get("operations", ALL_OPERATIONS)),
        exclude_columns=exclude_columns,
        skip_unchanged=skip_unchanged,
        capture=capture,
        truncate_rows=_bool(table_name, raw, "truncate_rows", default=False),
        history_index=_bool(table_name, raw, "history_index", default=True),
        append_only=_bool(table_name, raw, "append_only", default=False),
        **_partitioning(table_name, raw),
        redact=redact,
        replica_identity=_replica_identity(table_name, raw),
    )


def _replica_identity(table_name: str, raw: Mapping[str, Any]) -> ReplicaIdentity | None:
    """``replica_identity``: only where a decoder reads the table, one of the two it knows.
    Whether ``default`` can work on the table is checked against it (``specify``)."""
    value = raw.get("replica_identity")
    if value is None:
        return None
    if raw.get("mode") != CDC_MODE:
        raise AuditConfigurationError(
            table_name,
            "replica_identity",
            "applies only to mode='cdc': it says where the change-data-capture decoder finds "
            "old rows; a trigger reads them from the table itself",
        )
    if value not in REPLICA_IDENTITIES:
        raise AuditConfigurationError(
            table_name,
            "replica_identity",
            f"must be one of {', '.join(map(repr, REPLICA_IDENTITIES))}, got {value!r}",
        )
    return cast(ReplicaIdentity, value)


def _redact(
    table_name: str, value: object, exclude_columns: tuple[str, ...]
) -> tuple[tuple[str, RedactForm], ...]:
    """``redact``: a mapping of column name to a form.  Whether each column exists, is not a key
    column and has a type ``hash`` can digest is checked against the table (``audit_table``)."""
    if not isinstance(value, Mapping):
        raise AuditConfigurationError(
            table_name, "redact", f"must be a dict of column name to form, got {value!r}"
        )
    pairs: list[tuple[str, RedactForm]] = []
    for column, form in value.items():
        if not isinstance(column, str):
            raise AuditConfigurationError(
                table_name, "redact", f"must map column names (str), got {column!r}"
            )
        if form not in REDACT_FORMS:
            raise AuditConfigurationError(
                table_name,
                "redact",
                f"column {column!r}: must be one of {', '.join(map(repr, REDACT_FORMS))}, "
                f"got {form!r}",
            )
        if column in exclude_columns:
            raise AuditConfigurationError(
                table_name,
                "redact",
                f"column {column!r} is also in exclude_columns: a column is either excluded "
                "(its changes are not recorded) or redacted (they are, without its value)",
            )
        pairs.append((column, cast(RedactForm, form)))
    return tuple(pairs)


def _partitioning(table_name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """``partition``, ``retention`` and ``retention_keep``: retention removes whole partitions,
    so it needs them."""
    partition = raw.get("partition")
    if partition is not None and partition not in PARTITION_INTERVALS:
        raise AuditConfigurationError(
            table_name,
            "partition",
            f"must be one of {', '.join(map(repr, PARTITION_INTERVALS))} or None, "
            f"got {partition!r}",
        )
    if partition is not None and raw.get("legacy_timestamp") is True:
        raise AuditConfigurationError(
            table_name,
            "partition",
            "cannot be combined with legacy_timestamp: a timestamp without time zone records "
            "the server's wall-clock time, so partition bounds would move with its time zone",
        )
    retention = raw.get("retention")
    if retention is not None:
        if not isinstance(retention, datetime.timedelta) or retention <= datetime.timedelta(0):
            raise AuditConfigurationError(
                table_name,
                "retention",
                f"must be a positive datetime.timedelta or None, got {retention!r}",
            )
        if partition is None:
            raise AuditConfigurationError(
                table_name,
                "retention",
                "needs 'partition': retention drops whole partitions, never rows one by one "
                "(use retention.purge_audit_history for an unpartitioned audit table)",
            )
        if retention < _SHORTEST[partition]:
            raise AuditConfigurationError(
                table_name,
                "retention",
                f"({retention}) is shorter than one partition (a {partition}, at least "
                f"{_SHORTEST[partition]}): retention removes only whole partitions, so history "
                f"would be kept up to a {partition} longer than it says; partition by a "
                "shorter interval or keep history longer",
            )
    keep = _bool(table_name, raw, "retention_keep", default=False)
    if keep and retention is None:
        raise AuditConfigurationError(
            table_name,
            "retention_keep",
            "needs 'retention': it says what retention does with the partitions it removes",
        )
    return {"partition": partition, "retention": retention, "retention_keep": keep}


def _refuse_near_misses(table_name: str, info: Mapping[str, Any]) -> None:
    """Raise for a key that looks like a misspelt ``audit.options``.

    Such a key means auditing was asked for and would silently not happen, so it fails like a
    bad option does.  A near miss names "audit" and an option (``audit_options``,
    ``Audit.Options``, ``audit.table.options``, ``audit.opts``) or is a typo of ``audit.options``
    that still names "audit" (``audit.optoins``).  The library's own keys (``audit.table``,
    ``audit.spec``, ...) and keys that do not name "audit" (``edit_options``,
    ``audio_options``) are left alone.
    """
    for key in info:
        if key == OPTIONS_KEY or not isinstance(key, str):
            continue
        folded = re.sub(r"[^a-z0-9]", "", key.lower())
        if "audit" in folded and (
            "opt" in folded or difflib.SequenceMatcher(None, folded, _FOLDED_KEY).ratio() >= 0.8
        ):
            raise AuditConfigurationError(
                table_name,
                key,
                f"looks like a misspelling of {OPTIONS_KEY!r}, the only key auditing is "
                f"declared with: the table is not audited as written (rename the key to "
                f"{OPTIONS_KEY!r}, or use a key that does not resemble it)",
            )


_FOLDED_KEY = "auditoptions"


def _names(
    table_name: str,
    key: str,
    value: object,
    *,
    choices: tuple[str, ...] | None = None,
    fold: Callable[[str], str] = str,
) -> tuple[str, ...]:
    """A list of distinct names; with ``choices``, each must be one, and the result follows
    their order."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
        raise AuditConfigurationError(table_name, key, f"must be a list of names, got {value!r}")
    names: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise AuditConfigurationError(table_name, key, f"must hold names (str), got {item!r}")
        name = fold(item)
        if choices is not None and name not in choices:
            raise AuditConfigurationError(
                table_name, key, f"{item!r} is not one of {', '.join(choices)}"
            )
        if name in names:
            raise AuditConfigurationError(table_name, key, f"names {item!r} twice")
        names.append(name)
    if choices is not None:
        return tuple(choice for choice in choices if choice in names)
    return tuple(sorted(names)) if isinstance(value, (set, frozenset)) else tuple(names)


def _bool(table_name: str, raw: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise AuditConfigurationError(table_name, key, f"must be True or False, got {value!r}")
    return value


def _mode(table_name: str, value: object) -> CaptureMode | None:
    if value is None:
        return None
    if value == "statement":
        return "statement"
    if value == "row":
        return "row"
    raise AuditConfigurationError(
        table_name, "mode", f"must be 'statement', 'row' or 'cdc', got {value!r}"
    )


def _operations(table_name: str, value: object) -> tuple[Operation, ...]:
    names = _names(table_name, "operations", value, choices=ALL_OPERATIONS, fold=str.upper)
    if not names:
        raise AuditConfigurationError(
            table_name, "operations", "must name at least one operation (use enabled=False)"
        )
    return tuple(op for op in ALL_OPERATIONS if op in names)


def _session_settings(table_name: str, value: object) -> tuple[SessionSetting, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise AuditConfigurationError(
            table_name, "session_settings", f"must be a list of Column objects, got {value!r}"
        )
    settings: list[SessionSetting] = []
    seen: set[str] = set()
    for position, item in enumerate(value):
        key = f"session_settings[{position}]"
        if not isinstance(item, Column):
            raise AuditConfigurationError(
                table_name, key, f"must be a sqlalchemy Column, got {type(item).__name__}"
            )
        name = item.name
        if not isinstance(name, str) or not SETTING_NAME.match(name):
            raise AuditConfigurationError(
                table_name,
                key,
                f"column name {name!r} is not a valid setting name (letters, digits, _)",
            )
        folded = name.lower()
        if folded in seen:
            raise AuditConfigurationError(
                table_name, key, f"setting {name!r} is declared twice (names ignore case)"
            )
        seen.add(folded)
        unqualified = _unqualified_type_name(item.type)
        if unqualified is not None:
            raise AuditConfigurationError(
                table_name,
                key,
                f"setting {name!r} has the user-defined type {unqualified!r} without a schema; "
                "the audit function resolves type names only in pg_catalog, so declare it "
                f"with its schema (e.g. Enum(..., name={unqualified!r}, schema='public'))",
            )
        settings.append(
            SessionSetting(name=folded, type=item.type, required=item.nullable is False)
        )
    return tuple(settings)


def _unqualified_type_name(type_: TypeEngine[Any]) -> str | None:
    """The name of a user-defined type (an enum, a domain) in ``type_`` declared without schema.

    The audit function runs with a pinned ``search_path``, so such a name would only fail when
    ``create_all`` installs the function, far from the declaration.
    """
    if isinstance(type_, TypeDecorator):
        return _unqualified_type_name(type_.impl_instance)
    if isinstance(type_, ARRAY):
        return _unqualified_type_name(type_.item_type)
    named = (isinstance(type_, Enum) and type_.native_enum) or isinstance(type_, DOMAIN)
    if named and getattr(type_, "schema", None) is None:
        return str(getattr(type_, "name", None) or "")
    return None
