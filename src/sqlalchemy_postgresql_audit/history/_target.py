"""Resolve what the history API is asked about: the audited table, its audit table, the key.

Every public function takes a ``Table`` or an ORM class and a primary key, so the checks that
turn those into columns and bound values live here, once, with errors that name the table.
"""

from __future__ import annotations

import datetime
import decimal
import numbers
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, inspect
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.orm import InstanceState, Mapper, configure_mappers
from sqlalchemy.orm.exc import UnmappedColumnError

from ..declare.declaration import declared_audit
from ..declare.spec import AUDIT_TIMESTAMP, AuditSpec
from ..errors import AuditError


@dataclass(frozen=True, slots=True, kw_only=True)
class Audited:
    """An audited table, its audit table and spec, and its mapper when given an ORM class."""

    source: Table
    audit: Table
    spec: AuditSpec
    mapper: Mapper[Any] | None

    @property
    def name(self) -> str:
        return self.source.fullname

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.spec.key_columns

    @property
    def labels(self) -> Labels:
        return labels_for(self.audit)

    def attribute_keys(self) -> dict[str, str]:
        """Mirrored (or omitted) column name -> the ORM attribute holding it (mapped columns
        only)."""
        if self.mapper is None:
            return {name: name for name in self.spec.compared_columns}
        keys: dict[str, str] = {}
        for name in self.spec.compared_columns:
            try:
                keys[name] = self.mapper.get_property_by_column(self.source.c[name]).key
            except UnmappedColumnError:
                continue
        return keys


@dataclass(frozen=True, slots=True)
class Labels:
    """Names of the columns the history queries compute next to the audit table's own.

    They share a prefix that no column of the audit table starts with, so no source column
    (mirrored under its own name) can ever be mistaken for one of them.
    """

    prefix: str

    @property
    def marker(self) -> str:
        return f"{self.prefix}marker"

    @property
    def previous_operation(self) -> str:
        return f"{self.prefix}previous_operation"

    def before(self, index: int) -> str:
        return f"{self.prefix}before_{index}"

    def after(self, index: int) -> str:
        return f"{self.prefix}after_{index}"

    def changed(self, index: int) -> str:
        return f"{self.prefix}changed_{index}"

    def lag(self, index: int) -> str:
        return f"{self.prefix}lag_{index}"


def labels_for(audit: Table) -> Labels:
    """``audit_history_``, or ``audit_history1_``, ... when a column already starts with it."""
    names = [column.name for column in audit.c]
    prefix, attempt = "audit_history_", 0
    while any(name.startswith(prefix) for name in names):
        attempt += 1
        prefix = f"audit_history{attempt}_"
    return Labels(prefix)


def audited(target: object) -> Audited:
    """The audited table behind ``target`` (a ``Table`` or a mapped class)."""
    mapper: Mapper[Any] | None = None
    if isinstance(target, Table):
        source = target
    else:
        try:
            mapper = inspect(target)
        except NoInspectionAvailable:
            mapper = None
        if not isinstance(mapper, Mapper) or not isinstance(mapper.local_table, Table):
            raise TypeError(f"expected an audited Table or mapped class, got {target!r}")
        source = mapper.local_table
        configure_mappers()  # versions set attributes on new instances: instrument them first
    # Declared lazily, as install and the runtime check do: models imported before the
    # listeners were enabled (or options set late) are audited all the same.
    spec, audit = declared_audit(source)
    if not spec.key_columns:
        raise AuditError(
            f"table {source.fullname!r} has no primary key: the history API identifies rows by it"
        )
    return Audited(source=source, audit=audit, spec=spec, mapper=mapper)


def key_values(target: Audited, pk: object) -> dict[str, Any]:
    """``pk`` as {key column name: value}, each value checked against its column's type.

    ``pk`` is one value (or a 1-tuple) for a one-column key, else a mapping; for ORM classes a
    mapping may name attributes instead of columns.  An ORM instance of a class mapped to the
    table stands for its row: its identity (the key it was loaded or flushed with) is taken.
    The values are checked here because the statements are executed later, by the caller: a
    key the column cannot compare with would fail there as a bare driver error, and abort the
    caller's transaction.
    """
    keys = target.key_columns
    state = inspect(pk, raiseerr=False) if not isinstance(pk, (Mapping, tuple)) else None
    if isinstance(state, InstanceState):
        values = _instance_key(target, state)
    elif not isinstance(pk, Mapping):
        if len(keys) != 1:
            raise AuditError(
                f"table {target.name!r} has a composite primary key {keys!r}: "
                f"pass a mapping of every key column to its value, got {pk!r}"
            )
        if isinstance(pk, tuple):
            if len(pk) != 1:
                raise AuditError(
                    f"table {target.name!r}: key column {keys[0]!r} takes one value, got {pk!r}"
                )
            (pk,) = pk
        if pk is None:
            raise AuditError(f"table {target.name!r}: primary key value is None")
        values = {keys[0]: pk}
    else:
        by_attribute = {attr: name for name, attr in target.attribute_keys().items()}
        values = {by_attribute.get(str(k), str(k)): v for k, v in pk.items()}
        if set(values) != set(keys) or any(v is None for v in values.values()):
            raise AuditError(
                f"table {target.name!r}: primary key mapping must give a value for exactly "
                f"{list(keys)!r}, got {dict(pk)!r}"
            )
    for name, value in values.items():
        _check_key_value(target, name, value)
    return values


def _instance_key(target: Audited, state: InstanceState[Any]) -> dict[str, Any]:
    """The key of the row an ORM instance was loaded or flushed as."""
    mapper = state.mapper
    if target.source not in mapper.tables:
        raise AuditError(
            f"table {target.name!r}: got an instance of {mapper.class_.__name__}, which is not "
            "mapped to it; pass the key's value or an instance of a class mapped to the table"
        )
    if state.identity is None:
        raise AuditError(
            f"table {target.name!r}: the {mapper.class_.__name__} instance has no row yet "
            "(it was never flushed); flush it first or pass the key's value"
        )
    values: dict[str, Any] = {}
    for name in target.key_columns:
        try:
            columns = mapper.get_property_by_column(target.source.c[name]).columns
        except UnmappedColumnError:
            columns = []
        positions = [i for i, c in enumerate(mapper.primary_key) if c in columns]
        if not positions:  # unmapped, or a mapper-level primary_key other than the table's
            raise AuditError(
                f"table {target.name!r}: the identity of a {mapper.class_.__name__} does not "
                f"hold key column {name!r}; pass the key's value"
            )
        values[name] = state.identity[positions[0]]
    return values


#: Python types a key value must be of (or read as, for UUID text) to compare with the column.
_KEY_TYPES: dict[type, tuple[type, ...]] = {
    int: (numbers.Integral,),
    str: (str,),
    float: (numbers.Real,),
    decimal.Decimal: (numbers.Real, decimal.Decimal),
    uuid.UUID: (uuid.UUID, str),
    datetime.date: (datetime.date,),
    datetime.datetime: (datetime.datetime,),
}


def _check_key_value(target: Audited, name: str, value: object) -> None:
    column_type = target.source.c[name].type
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        return  # a type without a Python counterpart: the server compares it
    accepted = _KEY_TYPES.get(python_type)
    fits = accepted is None or (isinstance(value, accepted) and not isinstance(value, bool))
    if fits and python_type is uuid.UUID and isinstance(value, str):
        try:
            uuid.UUID(value)
        except ValueError:
            fits = False
    if not fits:
        raise AuditError(
            f"table {target.name!r}: key column {name!r} is {column_type}, and {value!r} "
            f"({type(value).__name__}) is not a {python_type.__name__}"
        )


def key_filter(table: Any, values: Mapping[str, Any]) -> ColumnElement[bool]:
    """``key = value AND ...`` on ``table`` (an audit table or a subquery of it), bound."""
    return and_(*(table.c[name] == value for name, value in values.items()))


def check_moment(target: Audited, at: datetime.datetime, name: str = "at") -> datetime.datetime:
    """``at`` (the argument ``name``) as the audit table compares it: aware for timestamptz,
    naive for legacy tables."""
    if not isinstance(at, datetime.datetime):
        raise TypeError(f"table {target.name!r}: {name!r} must be a datetime, got {at!r}")
    zoned = bool(getattr(target.audit.c[AUDIT_TIMESTAMP].type, "timezone", False))
    aware = at.tzinfo is not None and at.utcoffset() is not None
    if zoned and not aware:
        raise AuditError(
            f"table {target.name!r}: {name!r} is a naive datetime ({at.isoformat()}); give it a "
            "time zone (e.g. datetime.timezone.utc): the audit timestamps are timestamptz"
        )
    if not zoned and aware:
        raise AuditError(
            f"table {target.name!r} records legacy TIMESTAMP WITHOUT TIME ZONE: {name!r} must "
            f"be naive, in the writers' TimeZone, got {at.isoformat()}"
        )
    return at
