"""The SQL of ``activity()``: one branch per audit table, reshaped to the same columns.

A ``UNION ALL`` needs every branch to give each column the same type, and PostgreSQL pushes a
condition on the union's result into its branches only where they do: so a setting a table
does not record is a NULL cast to the setting's type, one declared with different types is
text everywhere, and a legacy time zone naive timestamp is cast to ``timestamptz``.  The
filters themselves are bound parameters compared with each audit table's own columns, so that
its indexes serve them and one built statement serves every value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    DateTime,
    Select,
    Table,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.types import TypeEngine

from ..declare.spec import (
    AUDIT_CURRENT_USER,
    AUDIT_ID,
    AUDIT_OPERATION,
    AUDIT_TIMESTAMP,
    AuditSpec,
    SettingSpec,
    capture_column,
)
from ..errors import AuditError

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Branch:
    """One audited table's part of the union."""

    source: Table
    audit: Table
    spec: AuditSpec

    def setting(self, name: str) -> SettingSpec | None:
        return next((s for s in self.spec.settings if s.name == name), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingColumn:
    """A session setting as the union shows it: one type for every branch."""

    name: str
    type: TypeEngine[Any]
    #: The tables declare it with different SQL types: every branch shows it as text.
    as_text: bool


def setting_columns(branches: list[Branch]) -> dict[str, SettingColumn]:
    """Every setting any branch declares, in the order first declared, with its union type.

    Types are told apart by the declared SQL type text (``VARCHAR`` and ``VARCHAR(64)``
    differ), which is what the audit columns were created from.
    """
    declared: dict[str, list[tuple[Branch, SettingSpec]]] = {}
    for branch in branches:
        for setting in branch.spec.settings:
            declared.setdefault(setting.name, []).append((branch, setting))
    columns: dict[str, SettingColumn] = {}
    for name, holders in declared.items():
        first, setting = holders[0]
        if name in FIXED_COLUMNS:
            raise AuditError(
                f"activity: table {first.source.fullname!r} declares a session setting named "
                f"{name!r}, which is also the name of a column activity() returns"
            )
        as_text = len({" ".join(s.sql_type.upper().split()) for _, s in holders}) > 1
        column_type = Text() if as_text else first.audit.c[setting.column].type
        columns[name] = SettingColumn(name=name, type=column_type, as_text=as_text)
    return columns


def branch_select(
    branch: Branch,
    columns: Mapping[str, SettingColumn],
    since: BindParameter[Any] | None,
    until: BindParameter[Any] | None,
    values: Mapping[str, BindParameter[str] | None],
) -> Select[Any]:
    """The branch of ``branch``: its changes in the union's columns, filtered.

    ``values`` maps each filtered setting to the value's text (cast to the column's type here,
    as the trigger casts ``current_setting()``), or to ``None`` for changes recorded without it.
    """
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
    # A legacy (timestamp without time zone) column is compared as it stands, so that its index
    # serves too: PostgreSQL reads it in the session's TimeZone, as the cast above does.
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(stamp >= since)
    if until is not None:
        conditions.append(stamp < until)
    for name, value in values.items():
        setting = branch.setting(name)
        if setting is None:
            continue  # not recorded here: every change of the table has none (value is None)
        column = audit.c[setting.column]
        conditions.append(column.is_(None) if value is None else column == cast(value, column.type))
    return select(*shown).where(*conditions)


def _qualified_name(source: Table) -> ColumnElement[str]:
    name = literal(source.name, Text())
    schema = literal(source.schema, Text()) if source.schema else func.current_schema()
    return func.concat(cast(schema, Text()), literal(".", Text()), cast(name, Text()))


def _key(branch: Branch) -> ColumnElement[Any]:
    """The primary key as ``jsonb``; NULL for a marker row (TRUNCATE, purge: a NULL key)."""
    keys = [branch.audit.c[name] for name in branch.spec.key_columns]
    if not keys:
        return cast(null(), JSONB())
    # Cast: asyncpg must know the type of a parameter passed to jsonb_build_object's "any".
    pairs = [part for k in keys for part in (cast(literal(k.name, Text()), Text()), k)]
    return case(
        (and_(*(k.is_(None) for k in keys)), cast(null(), JSONB())),
        else_=func.jsonb_build_object(*pairs, type_=JSONB()),
    )


def _setting_value(branch: Branch, setting: SettingColumn) -> ColumnElement[Any]:
    declared = branch.setting(setting.name)
    if declared is None:
        return cast(null(), setting.type)
    column = branch.audit.c[declared.column]
    return cast(column, Text()) if setting.as_text else column


def _changed_columns(branch: Branch) -> ColumnElement[Any]:
    if "changed_columns" in branch.spec.captures:
        return branch.audit.c[CHANGED_COLUMNS]
    return cast(null(), ARRAY(Text()))
