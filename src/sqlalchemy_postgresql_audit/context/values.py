"""Session-setting values as the text their column type reads back, checked in Python.

The trigger casts ``current_setting('audit.<name>')`` to the setting's column type, so a value
that type cannot hold would only fail at the write, far from the code that set it.  Here the
value is checked against the SQL type string of the declared setting (``SettingSpec.sql_type``)
and encoded the way that type reads it: JSON with ``json.dumps``, arrays as array literals.
The rule is "refused here, naming the setting, or stored exactly": where Python would accept
text that PostgreSQL reads differently or not at all (a netmask, a zone id, an ISO week date, a
number with more decimals than the column keeps), the value is refused or sent in the one
canonical form both read alike.  Types not known here (domains, ...) are passed as text
and checked by the trigger.  Enums are passed as text too, except where a change-data-capture
table records the setting: nothing refuses the write there (the consumer sees it committed),
so the value must be one of the enum's declared labels, here.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import importlib
import ipaddress
import re
import uuid
from typing import Any

from sqlalchemy import Enum, Table

from ..declare.audit_table import SPEC_KEY
from ..declare.declaration import declare_metadata, declared_tables, specs_stored
from ..declare.spec import AuditSpec
from .scalar_types import ENCODERS, checked_text

_TYPE = re.compile(r"^(?P<base>[A-Z ]+?)\s*(?:\((?P<args>[0-9, ]+)\))?(?P<dims>(?:\[\])*)$")
#: What a text setting takes: text itself, and values whose text form is unambiguous.  Other
#: objects (a pydantic model, an ORM instance) would be recorded as their ``repr``.
TEXT_TYPES: tuple[type, ...] = (
    str,
    int,
    float,
    decimal.Decimal,
    uuid.UUID,
    datetime.date,
    datetime.time,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)
_TEXT_TYPE_NAMES = "str, int, float, Decimal, bool, UUID, date, time, datetime, ipaddress, Enum"


def setting_value(value: object) -> str:
    """The text PostgreSQL receives for ``value``; ``None`` becomes ``''``, read back as NULL."""
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        return setting_value(value.value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("audit settings are text: decode bytes before setting them")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple, set)):
        raise TypeError(
            f"a {type(value).__name__} has no text form for this setting's type; "
            "declare the setting as JSON/JSONB or ARRAY, or pass text"
        )
    if not isinstance(value, TEXT_TYPES):
        raise TypeError(
            f"a {type(value).__name__} is not taken as setting text (it would be stored as its "
            f"repr); pass the text to record, e.g. str(user.id), or one of: {_TEXT_TYPE_NAMES}"
        )
    return checked_text(str.__str__(value) if isinstance(value, str) else str(value))


#: Per setting name, the SQL types one MetaData declares it with; one tuple per MetaData.
TypeGroups = tuple[tuple[str, ...], ...]


def text_for(value: object, groups: TypeGroups) -> str:
    """The text for ``value`` under every type one MetaData declares its setting with.

    The settings of a transaction reach every audited table it writes, so within one MetaData
    the value must fit each type the setting has there, and read alike in each, or a write to
    one of those tables would fail or store something else.  Separate MetaData are separate
    models (another application, a test's own tables): the value must fit one of them wholly.
    """
    if value is None or (isinstance(value, str) and value == ""):
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    texts: set[str] = set()
    errors: list[str] = []
    for types in groups:
        try:
            texts.add(_text_for_all(value, types))
        except ValueError as error:
            errors.append(str(error))
    if not texts:
        raise ValueError(f"{value!r} does not fit the setting's column type ({' | '.join(errors)})")
    if len(texts) > 1:
        raise ValueError(
            f"{value!r} would be stored differently by the models that declare the setting "
            f"({sorted(texts)!r}); pass it in the form they share"
        )
    return texts.pop()


def _text_for_all(value: object, types: tuple[str, ...]) -> str:
    texts: dict[str, str] = {}
    errors: list[str] = []
    for sql_type in types:
        try:
            texts[sql_type] = _encode(value, sql_type)
        except (TypeError, ValueError, ArithmeticError) as error:
            errors.append(f"{sql_type}: {error}")
    if errors:
        every = "every type of the setting must hold it; " if texts else ""
        raise ValueError(every + "; ".join(errors))
    if len(set(texts.values())) > 1:
        forms = ", ".join(f"{sql_type} reads {text!r}" for sql_type, text in texts.items())
        raise ValueError(
            f"the types the setting is declared with would store it differently ({forms}); "
            "pass it in the form they share"
        )
    return next(iter(texts.values()))


def known_settings(*, refresh: bool = False) -> dict[str, TypeGroups] | None:
    """``{lower-case name: SQL types per MetaData}`` of every setting an audited table records.

    ``None`` means no audited table is declared in this process at all: names cannot be
    checked then, and are not refused.  Once an audited table is known, its settings are the
    only names there are, even when it declares none.  Cached until a table is declared or
    changes (a new type for a name must be seen at once), or callers pass ``refresh=True``
    when a name or value did not fit (tables dropped since may have held the stricter type);
    then, and while nothing is known, the declared tables are read again after declaring the
    MetaData of every live ORM registry (idempotent), so lazily declared models are found too.
    """
    global _KNOWN, _KNOWN_AT
    if refresh or _KNOWN is None or specs_stored() != _KNOWN_AT:
        for metadata in _registry_metadata():
            declare_metadata(metadata)
        _KNOWN_AT = specs_stored()
        _KNOWN = _collect()
    return _KNOWN


_KNOWN: dict[str, TypeGroups] | None = None
_KNOWN_AT = -1
#: ``{SQL type: labels}`` of the enum settings CDC tables record (see the module docstring).
_ENUM_LABELS: dict[str, frozenset[str]] = {}


def _collect() -> dict[str, TypeGroups] | None:
    tables = declared_tables()
    if not tables:
        return None
    by_metadata: dict[int, dict[str, tuple[str, ...]]] = {}
    for table in tables:
        spec: AuditSpec = table.info[SPEC_KEY]
        if spec.cdc:
            _ENUM_LABELS.update(_enum_labels(table, spec))
        declared = by_metadata.setdefault(id(table.metadata), {})
        for setting in spec.settings:
            name = setting.name.lower()
            if setting.sql_type not in declared.get(name, ()):
                declared[name] = (*declared.get(name, ()), setting.sql_type)
    known: dict[str, TypeGroups] = {}
    for declared in by_metadata.values():
        for name, types in declared.items():
            if types not in known.get(name, ()):
                known[name] = (*known.get(name, ()), types)
    return known


def _enum_labels(table: Table, spec: AuditSpec) -> dict[str, frozenset[str]]:
    """The declared labels of ``spec``'s enum settings, read from its audit table's columns."""
    key = f"{table.schema}.{spec.audit_table}" if table.schema else spec.audit_table
    audit = table.metadata.tables.get(key)
    labels: dict[str, frozenset[str]] = {}
    for setting in spec.settings:
        column = audit.c.get(setting.column) if audit is not None else None
        if column is not None and isinstance(column.type, Enum) and column.type.enums:
            labels[setting.sql_type] = frozenset(column.type.enums)
    return labels


def _registry_metadata() -> list[Any]:
    mapper_module = importlib.import_module("sqlalchemy.orm.mapper")
    all_registries = getattr(mapper_module, "_all_registries", None)
    if all_registries is None:  # pragma: no cover - SQLAlchemy moved its private registry list
        return []
    return [registry.metadata for registry in all_registries()]


def _encode(value: object, sql_type: str) -> str:
    labels = _ENUM_LABELS.get(sql_type)
    if labels is not None:
        text = setting_value(value)
        if text not in labels:
            raise ValueError(f"{text!r} is not a label of enum {sql_type} ({sorted(labels)})")
        return text
    match = _TYPE.match(sql_type.upper())
    if match is None:
        return setting_value(value)
    base, args, dims = match["base"].strip(), match["args"], match["dims"]
    if dims:
        return checked_text(_array(value, base, args))
    return checked_text(_scalar(value, base, args))


def _array(value: object, base: str, args: str | None) -> str:
    if isinstance(value, str):
        if value.startswith("{") and value.endswith("}"):
            return value  # already an array literal; the trigger's cast checks it
        raise TypeError("an ARRAY setting takes a list or tuple (or '{...}' literal text)")
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"an ARRAY setting takes a list or tuple, got {type(value).__name__}")
    items = []
    for item in value:
        if item is None:
            items.append("NULL")
        elif isinstance(item, (list, tuple)):
            items.append(_array(item, base, args))
        else:
            text = _scalar(item.value if isinstance(item, enum.Enum) else item, base, args)
            items.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(items) + "}"


def _scalar(value: object, base: str, args: str | None) -> str:
    encode = ENCODERS.get(base)
    if encode is not None:
        return encode(value, args)
    text = setting_value(value)
    if base in ("VARCHAR", "CHARACTER VARYING", "CHAR", "CHARACTER") and args:
        limit = int(args)
        padded = base in ("CHAR", "CHARACTER")  # trailing spaces do not count there
        if len(text.rstrip(" ") if padded else text) > limit:
            raise ValueError(f"longer than {limit} characters")
    return text
