"""Who did what, across tables: ``activity()``, one select over every audit table.

"What did alice do in the last hour" and "what did request R change" are questions about the
whole schema, while each audit table holds one table's changes.  ``activity`` answers them with
one ``UNION ALL`` of a branch per audit table (``._activity_sql``), every branch filtered on
its own columns, so that each can use its table's indexes; a table that cannot hold a change
with the values asked for is left out of the union altogether.

The result is an ordinary ``Select``: it composes (``.where``, ``.limit``, ``.subquery``) and
runs on ``Connection``, ``Session`` and their async twins.  Building the union costs about half
a millisecond of Python per table, so each shape (tables, which filters, which tables can
match) is built once with bound parameters and reused with its values bound, as ``._api`` does.
"""

from __future__ import annotations

import datetime
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from sqlalchemy import (
    BindParameter,
    DateTime,
    MetaData,
    Select,
    Table,
    Text,
    bindparam,
    false,
    inspect,
    select,
    union_all,
)
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.orm import Mapper

from ..context.session import AuditSettingError
from ..context.values import text_for
from ..declare.audit_table import AUDIT_TABLE_KEY, SPEC_KEY
from ..declare.spec import AUDIT_ID, AUDIT_TIMESTAMP, AuditSpec
from ..errors import AuditError
from ..install.ddl import audited_tables
from ._activity_sql import TABLE, Branch, SettingColumn, branch_select, setting_columns

Tables = MetaData | Table | type[Any] | Iterable[Table | type[Any]]

#: Per setting filtered on: the tables (audit table keys) that can hold the value, each with
#: the value as text of its own type; ``None`` asks for changes recorded without the setting.
_Wanted = dict[str, "dict[str, str] | None"]

#: Built statements by shape, least recently used first; bounded, as each holds its tables.
_TEMPLATES: OrderedDict[Hashable, Select[Any]] = OrderedDict()
_TEMPLATES_MAX = 128
_TEMPLATES_LOCK = threading.Lock()
_SINCE = "activity_since"
_UNTIL = "activity_until"


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
    row's primary key as ``jsonb``; NULL for a marker that is no row, a TRUNCATE's or a
    purge's, and for a table without a primary key), ``audit_id``, ``audit_operation``,
    ``audit_operation_timestamp``, ``audit_current_user`` (the role that wrote), one column
    per session setting that any of the tables declares, named by the setting (NULL for a
    table that does not record it), and ``audit_changed_columns`` (NULL for a table without
    the ``changed_columns`` capture).

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
    columns = setting_columns(branches)
    moments = {_SINCE: _moment("since", since), _UNTIL: _moment("until", until)}
    wanted = _wanted(settings, columns, branches)
    shape = (
        tuple((b.source, b.audit, b.spec) for b in branches),
        tuple(name for name, moment in moments.items() if moment is not None),
        tuple((name, None if t is None else frozenset(t)) for name, t in wanted.items()),
    )
    with _TEMPLATES_LOCK:  # threads share the cache: an eviction must not race a lookup
        template = _TEMPLATES.get(shape)
        if template is None:
            template = _TEMPLATES[shape] = _build(branches, columns, moments, wanted)
            if len(_TEMPLATES) > _TEMPLATES_MAX:
                _TEMPLATES.popitem(last=False)
        else:
            _TEMPLATES.move_to_end(shape)
    values: dict[str, Any] = {name: at for name, at in moments.items() if at is not None}
    for i, texts in enumerate(wanted.values()):
        for j, branch in enumerate(branches):
            if texts is not None and branch.audit.key in texts:
                values[_value_name(i, j)] = texts[branch.audit.key]
    return template.params(values)


def _build(
    branches: list[Branch],
    columns: Mapping[str, SettingColumn],
    moments: Mapping[str, datetime.datetime | None],
    wanted: _Wanted,
) -> Select[Any]:
    since, until = (
        None if moments[name] is None else bindparam(name, type_=DateTime(timezone=True))
        for name in (_SINCE, _UNTIL)
    )
    parts = []
    for j, branch in enumerate(branches):
        if not all(texts is None or branch.audit.key in texts for texts in wanted.values()):
            continue  # it does not record a setting asked for, or its type cannot hold the value
        values: dict[str, BindParameter[str] | None] = {
            name: None if texts is None else bindparam(_value_name(i, j), type_=Text())
            for i, (name, texts) in enumerate(wanted.items())
        }
        parts.append(branch_select(branch, columns, since, until, values))
    if not parts:  # no table can hold what is asked for: the same columns, no rows
        parts = [branch_select(branches[0], columns, None, None, {}).where(false())]
    every = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("audit_activity")
    return select(*every.c).order_by(every.c[AUDIT_TIMESTAMP], every.c[TABLE], every.c[AUDIT_ID])


def _value_name(setting: int, branch: int) -> str:
    return f"activity_value_{setting}_{branch}"


def _branches(target: Tables) -> list[Branch]:
    """The audited tables behind ``target``, each once, in a stable order."""
    if isinstance(target, MetaData):
        tables = [table for table, _ in audited_tables(target)]
        if not tables:
            raise AuditError("activity: the MetaData has no audited table")
    elif isinstance(target, (Table, type)) or not isinstance(target, Iterable):
        tables = [_table(target)]
    else:
        tables = [_table(item) for item in target]
        if not tables:
            raise AuditError("activity: no table given")
    branches: list[Branch] = []
    for table in dict.fromkeys(tables):
        spec = table.info.get(SPEC_KEY)
        audit = table.info.get(AUDIT_TABLE_KEY)
        if not isinstance(spec, AuditSpec) or not isinstance(audit, Table):
            raise AuditError(
                f"activity: table {table.fullname!r} is not audited "
                "(no 'audit.options' with enabled=True)"
            )
        branches.append(Branch(source=table, audit=audit, spec=spec))
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


def _wanted(
    given: Mapping[str, object], columns: Mapping[str, SettingColumn], branches: list[Branch]
) -> _Wanted:
    """The setting filters, each value encoded for each table's own type of the setting.

    A table whose type cannot hold the value has no change with it, and is left out; a value
    that fits no table's type is refused, as ``set_session_vars`` would refuse it.
    """
    unknown = sorted(name for name in given if name.lower() not in columns)
    if unknown:
        raise AuditSettingError(
            f"activity: unknown session setting(s) {unknown!r}: none of the tables given "
            f"records them; their settings are {sorted(columns)!r}"
        )
    wanted: _Wanted = {}
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
                texts[branch.audit.key] = text_for(value, ((setting.sql_type,),))
            except (TypeError, ValueError) as error:
                errors.append(str(error))
        if not texts:
            raise AuditSettingError(f"activity: session setting {raw_name!r}: {errors[0]}")
        wanted[name] = texts
    return wanted
