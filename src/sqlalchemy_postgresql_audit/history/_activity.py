"""Who did what, across tables: ``activity()``, one select over every audit table.

"What did alice do in the last hour" and "what did request R change" are questions about the
whole schema, while each audit table holds one table's changes.  ``activity`` answers them with
one ``UNION ALL`` of a branch per audit table, every branch reshaped to the same columns and
filtered on its own: a time window and a setting value compare the audit table's own columns,
so each branch can use that table's indexes, and a table that does not record a setting asked
for is left out of the union altogether.

The result is an ordinary ``Select``: it composes (``.where``, ``.limit``, ``.subquery``) and
runs on ``Connection``, ``Session`` and their async twins.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    MetaData,
    Select,
    Table,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    inspect,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.orm import Mapper
from sqlalchemy.types import TypeEngine

from ..audit_table import AUDIT_TABLE_KEY, SPEC_KEY
from ..ddl import audited_tables
from ..errors import AuditError
from ..session import AuditSettingError
from ..spec import (
    AUDIT_CURRENT_USER,
    AUDIT_ID,
    AUDIT_OPERATION,
    AUDIT_TIMESTAMP,
    AuditSpec,
    SettingSpec,
    capture_column,
)
from ..values import text_for

#: The audited table, ``schema.name`` (the schema an unqualified table resolves to).
TABLE = "audit_table"
#: The changed row's primary key as ``jsonb``, ``{"column": value, ...}``.
KEY = "audit_key"
#: The ``changed_columns`` capture: recorded columns an UPDATE changed.
CHANGED_COLUMNS = capture_column("changed_columns")
#: Result columns that are not session settings; a setting of one of these names is refused.
FIXED_COLUMNS = (
    TABLE,
    KEY,
    AUDIT_ID,
    AUDIT_OPERATION,
    AUDIT_TIMESTAMP,
    AUDIT_CURRENT_USER,
    CHANGED_COLUMNS,
)

Tables = MetaData | Table | type[Any] | Iterable[Table | type[Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Branch:
    """One audited table's part of the union."""

    source: Table
    audit: Table
    spec: AuditSpec

    def setting(self, name: str) -> SettingSpec | None:
        return next((s for s in self.spec.settings if s.name == name), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Setting:
    """A session setting as the union shows it: one type for every branch."""

    name: str
    type: TypeEngine[Any]
    #: The tables declare it with different SQL types: every branch shows it as text.
    as_text: bool


def activity(
    metadata_or_tables: Tables,
    *,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    **settings: object,
) -> Select[Any]:
    """Every recorded change of the audited tables given, one row per change.

    ``metadata_or_tables`` is a ``MetaData`` (its audited tables), or an audited ``Table`` or
    ORM class, or several.  Columns: ``audit_table`` (``schema.name``), ``audit_key`` (the
    row's primary key as ``jsonb``; NULL for a TRUNCATE marker and for a table without a
    primary key), ``audit_id``, ``audit_operation``, ``audit_operation_timestamp``,
    ``audit_current_user`` (the role that wrote), one column per session setting that any of
    the tables declares, named by the setting (NULL for a table that does not record it), and
    ``audit_changed_columns`` (NULL for a table without the ``changed_columns`` capture).

    A setting declared with the same SQL type by every table keeps that type; one declared with
    different types is shown as text by every branch (equal values may read differently).

    Filters: ``since`` (inclusive) and ``until`` (exclusive) bound
    ``audit_operation_timestamp`` and must be time zone aware; every other keyword names a
    session setting and keeps the changes recorded with that value (``None`` keeps those
    recorded without one).  The value is checked against the setting's column type as
    ``set_session_vars`` checks it and compared in that type, so ``request_id="..."`` finds a
    UUID.  A name no table declares raises ``AuditSettingError``.

    Ordered by ``audit_operation_timestamp``, then table, then ``audit_id``.  ``audit_id``
    orders the changes of one table only: the numbers of different tables are unrelated.
    """
    branches = _branches(metadata_or_tables)
    columns = _setting_columns(branches)
    window = [_moment("since", since), _moment("until", until)]
    wanted = _settings_wanted(settings, columns, branches)
    parts = [
        _branch_select(branch, columns, window, wanted)
        for branch in branches
        if _can_match(branch, wanted)
    ]
    if not parts:  # no table records what is asked for: the same columns, no rows
        parts = [_branch_select(branches[0], columns, window, {}).where(false())]
    every = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("audit_activity")
    return select(*every.c).order_by(every.c[AUDIT_TIMESTAMP], every.c[TABLE], every.c[AUDIT_ID])


def _branches(target: Tables) -> list[_Branch]:
    """The audited tables behind ``target``, each once, in a stable order."""
    if isinstance(target, MetaData):
        tables = [table for table, _ in audited_tables(target)]
        if not tables:
            raise AuditError("activity: the MetaData has no audited table")
    elif isinstance(target, (Table, type)):
        tables = [_table(target)]
    else:
        tables = [_table(item) for item in target]
        if not tables:
            raise AuditError("activity: no table given")
    branches: list[_Branch] = []
    for table in dict.fromkeys(tables):
        spec = table.info.get(SPEC_KEY)
        audit = table.info.get(AUDIT_TABLE_KEY)
        if not isinstance(spec, AuditSpec) or not isinstance(audit, Table):
            raise AuditError(
                f"activity: table {table.fullname!r} is not audited "
                "(no 'audit.options' with enabled=True)"
            )
        branches.append(_Branch(source=table, audit=audit, spec=spec))
    return branches


def _table(item: object) -> Table:
    if isinstance(item, Table):
        return item
    try:
        mapper = inspect(item)
    except NoInspectionAvailable:
        mapper = None
    if not isinstance(mapper, Mapper) or not isinstance(mapper.local_table, Table):
        raise TypeError(
            f"activity: expected a MetaData, or audited Tables or mapped classes, got {item!r}"
        )
    return mapper.local_table


def _setting_columns(branches: list[_Branch]) -> dict[str, _Setting]:
    """Every setting any branch declares, in the order first declared, with its union type."""
    declared: dict[str, list[_Branch]] = {}
    for branch in branches:
        for setting in branch.spec.settings:
            declared.setdefault(setting.name, []).append(branch)
    columns: dict[str, _Setting] = {}
    for name, holders in declared.items():
        if name in FIXED_COLUMNS:
            raise AuditError(
                f"activity: table {holders[0].source.fullname!r} declares a session setting "
                f"named {name!r}, which is also the name of a column activity() returns"
            )
        specs = [_setting(holder, name) for holder in holders]
        as_text = len({" ".join(s.sql_type.upper().split()) for s in specs}) > 1
        first = holders[0].audit.c[specs[0].column].type
        columns[name] = _Setting(name=name, type=Text() if as_text else first, as_text=as_text)
    return columns


def _setting(branch: _Branch, name: str) -> SettingSpec:
    setting = branch.setting(name)
    assert setting is not None, name
    return setting


def _moment(name: str, value: datetime.datetime | None) -> datetime.datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime.datetime):
        raise TypeError(f"activity: {name!r} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise AuditError(
            f"activity: {name!r} is a naive datetime ({value.isoformat()}); give it a time zone "
            "(e.g. datetime.timezone.utc)"
        )
    return value


def _settings_wanted(
    given: Mapping[str, object], columns: Mapping[str, _Setting], branches: list[_Branch]
) -> dict[str, dict[str, str] | None]:
    """``{setting: {audit table key: value as text of its type}}``; ``None`` asks for NULL.

    A value is encoded for each table's own type of the setting; a table whose type cannot
    hold it has no change with that value, and is left out.  Fitting none is an error.
    """
    unknown = sorted(name for name in given if name.lower() not in columns)
    if unknown:
        raise AuditSettingError(
            f"activity: unknown session setting(s) {unknown!r}: none of the tables given "
            f"records them; their settings are {sorted(columns)!r}"
        )
    wanted: dict[str, dict[str, str] | None] = {}
    for raw_name, value in given.items():
        name = raw_name.lower()
        if value is None or value == "":  # what set_session_vars records as NULL
            wanted[name] = None
            continue
        texts: dict[str, str] = {}
        errors: list[str] = []
        for branch in branches:
            setting = branch.setting(name)
            if setting is None:
                continue
            try:
                texts[branch.audit.key] = text_for(value, [setting.sql_type])
            except (TypeError, ValueError) as error:
                errors.append(str(error))
        if not texts:
            raise AuditSettingError(f"activity: session setting {raw_name!r}: {errors[0]}")
        wanted[name] = texts
    return wanted


def _can_match(branch: _Branch, wanted: Mapping[str, dict[str, str] | None]) -> bool:
    """Whether ``branch`` can hold a change with every wanted value: a table that does not
    record a setting only holds changes without it."""
    return all(texts is None or branch.audit.key in texts for texts in wanted.values())


def _branch_select(
    branch: _Branch,
    columns: Mapping[str, _Setting],
    window: list[datetime.datetime | None],
    wanted: Mapping[str, dict[str, str] | None],
) -> Select[Any]:
    audit = branch.audit
    stamp = audit.c[AUDIT_TIMESTAMP]
    zoned = bool(getattr(stamp.type, "timezone", False))
    shown = [
        _qualified_name(branch.source).label(TABLE),
        _key(branch).label(KEY),
        audit.c[AUDIT_ID],
        audit.c[AUDIT_OPERATION],
        (stamp if zoned else cast(stamp, DateTime(timezone=True))).label(AUDIT_TIMESTAMP),
        audit.c[AUDIT_CURRENT_USER],
        *(_setting_value(branch, setting).label(name) for name, setting in columns.items()),
        _changed_columns(branch).label(CHANGED_COLUMNS),
    ]
    since, until = window
    conditions: list[ColumnElement[bool]] = []
    # A legacy (timestamp without time zone) column is compared as it stands, so that its index
    # serves too: PostgreSQL reads it in the session's TimeZone, as the cast above does.
    if since is not None:
        conditions.append(stamp >= literal(since, DateTime(timezone=True)))
    if until is not None:
        conditions.append(stamp < literal(until, DateTime(timezone=True)))
    for name, texts in wanted.items():
        setting = branch.setting(name)
        if setting is None:
            continue  # the table does not record it: its changes have none (texts is None)
        column = audit.c[setting.column]
        if texts is None:
            conditions.append(column.is_(None))
        else:
            # The text cast to the column's type, as the trigger casts current_setting().
            conditions.append(column == cast(literal(texts[audit.key], Text()), column.type))
    return select(*shown).where(*conditions)


def _qualified_name(source: Table) -> ColumnElement[str]:
    name = literal(source.name, Text())
    schema = literal(source.schema, Text()) if source.schema else func.current_schema()
    return func.concat(cast(schema, Text()), literal(".", Text()), cast(name, Text()))


def _key(branch: _Branch) -> ColumnElement[Any]:
    """The primary key as ``jsonb``; NULL for a TRUNCATE marker (its key columns are NULL)."""
    keys = [branch.audit.c[name] for name in branch.spec.key_columns]
    if not keys:
        return cast(null(), JSONB())
    pairs = [part for k in keys for part in (cast(literal(k.name, Text()), Text()), k)]
    return case(
        (and_(*(k.is_(None) for k in keys)), cast(null(), JSONB())),
        else_=func.jsonb_build_object(*pairs, type_=JSONB()),
    )


def _setting_value(branch: _Branch, setting: _Setting) -> ColumnElement[Any]:
    declared = branch.setting(setting.name)
    if declared is None:
        return cast(null(), setting.type)
    column = branch.audit.c[declared.column]
    return cast(column, Text()) if setting.as_text else column


def _changed_columns(branch: _Branch) -> ColumnElement[Any]:
    if "changed_columns" in branch.spec.captures:
        return branch.audit.c[CHANGED_COLUMNS]
    return cast(null(), ARRAY(Text()))
