"""Session-setting values as the text their column type reads back, checked in Python.

The trigger casts ``current_setting('audit.<name>')`` to the setting's column type, so a value
that type cannot hold would only fail at the write, far from the code that set it.  Here the
value is checked against the SQL type string of the declared setting (``SettingSpec.sql_type``)
and encoded the way that type reads it: JSON with ``json.dumps``, arrays as array literals.
Types not known here (enums, domains, ...) are passed as text and checked by the trigger.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import importlib
import ipaddress
import json
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from .declare import declare_metadata, declared_specs

_INT_RANGES = {"SMALLINT": 2**15, "INTEGER": 2**31, "BIGINT": 2**63}
_BOOLEAN_TEXT = frozenset({"t", "true", "y", "yes", "on", "1", "f", "false", "n", "no", "off", "0"})
_TYPE = re.compile(r"^(?P<base>[A-Z ]+?)\s*(?:\((?P<args>[0-9, ]+)\))?(?P<dims>(?:\[\])*)$")


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
    return str(value)


def text_for(value: object, sql_types: Iterable[str]) -> str:
    """The text for ``value`` under the first of ``sql_types`` that can hold it.

    A name may be declared with different types by different tables; the value must fit one.
    """
    if value is None or value == "":
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    errors: list[str] = []
    for sql_type in dict.fromkeys(sql_types):
        try:
            return _encode(value, sql_type)
        except (TypeError, ValueError, ArithmeticError) as error:
            errors.append(f"{sql_type}: {error}")
    raise ValueError(f"{value!r} does not fit the setting's column type ({'; '.join(errors)})")


def known_settings(*, refresh: bool = False) -> dict[str, tuple[str, ...]]:
    """``{lower-case name: SQL types}`` of every setting a declared audited table records.

    Cached: callers pass ``refresh=True`` when a name or value did not fit, and only then (or
    while nothing is known) are the declared tables read again, after declaring the MetaData of
    every live ORM registry (idempotent), so models whose declaration is lazy are found too.
    Empty means nothing
    audited is declared in this process: names cannot be checked then, and are not refused.
    """
    global _KNOWN
    if refresh or not _KNOWN:
        for metadata in _registry_metadata():
            declare_metadata(metadata)
        _KNOWN = _collect()
    return _KNOWN


_KNOWN: dict[str, tuple[str, ...]] = {}


def _collect() -> dict[str, tuple[str, ...]]:
    known: dict[str, tuple[str, ...]] = {}
    for spec in declared_specs():
        for setting in spec.settings:
            name = setting.name.lower()
            if setting.sql_type not in known.get(name, ()):
                known[name] = (*known.get(name, ()), setting.sql_type)
    return known


def _registry_metadata() -> list[Any]:
    mapper_module = importlib.import_module("sqlalchemy.orm.mapper")
    all_registries = getattr(mapper_module, "_all_registries", None)
    if all_registries is None:  # pragma: no cover - SQLAlchemy moved its private registry list
        return []
    return [registry.metadata for registry in all_registries()]


def _encode(value: object, sql_type: str) -> str:
    match = _TYPE.match(sql_type.upper())
    if match is None:
        return setting_value(value)
    base, args, dims = match["base"].strip(), match["args"], match["dims"]
    if dims:
        return _array(value, base, args)
    return _scalar(value, base, args)


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
            text = _scalar(item, base, args)
            items.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(items) + "}"


def _scalar(value: object, base: str, args: str | None) -> str:
    encode = _ENCODERS.get(base)
    if encode is not None:
        return encode(value, args)
    text = setting_value(value)
    if base in ("VARCHAR", "CHARACTER VARYING", "CHAR", "CHARACTER") and args:
        limit = int(args)
        padded = base in ("CHAR", "CHARACTER")  # trailing spaces do not count there
        if len(text.rstrip(" ") if padded else text) > limit:
            raise ValueError(f"longer than {limit} characters")
    return text


def _integer(base: str) -> Callable[[object, str | None], str]:
    bound = _INT_RANGES[base]

    def encode(value: object, _args: str | None) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TypeError(f"{base} takes an int, got {type(value).__name__}")
        number = int(value)
        if not -bound <= number < bound:
            raise ValueError(f"out of range for {base}")
        return str(number)

    return encode


def _numeric(value: object, _args: str | None) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal, str)):
        raise TypeError(f"a number is needed, got {type(value).__name__}")
    try:
        return str(decimal.Decimal(value.strip() if isinstance(value, str) else value))
    except decimal.InvalidOperation:
        raise ValueError("not a number") from None


def _uuid(value: object, _args: str | None) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"a UUID needs uuid.UUID or str, got {type(value).__name__}")
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise ValueError("not a UUID") from None


def _boolean(value: object, _args: str | None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip().lower() in _BOOLEAN_TEXT:
        return value.strip()
    raise ValueError("not a boolean (True/False or 'true'/'false')")


def _json(value: object, _args: str | None) -> str:
    if isinstance(value, str):
        json.loads(value)  # text is taken as JSON text, as before; it must parse
        return value
    return json.dumps(value)


def _temporal(kind: type) -> Callable[[object, str | None], str]:
    def encode(value: object, _args: str | None) -> str:
        if isinstance(value, str):
            text = value.strip()
            parse = getattr(kind, "fromisoformat")  # noqa: B009 - one code path for the three
            parse(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
            return text
        if kind is datetime.date and isinstance(value, datetime.datetime):
            raise TypeError("a DATE setting takes a date, got a datetime")
        if not isinstance(value, kind):
            raise TypeError(f"needs {kind.__name__} or ISO 8601 text, got {type(value).__name__}")
        return value.isoformat()  # type: ignore[no-any-return, attr-defined]

    return encode


def _address(value: object, _args: str | None) -> str:
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return str(value)
    text = str(value).strip()
    try:
        ipaddress.ip_interface(text)
    except ValueError:
        raise ValueError("not an IP address") from None
    return text


_ENCODERS: dict[str, Callable[[object, str | None], str]] = {
    **{name: _integer(name) for name in _INT_RANGES},
    "INT": _integer("INTEGER"),
    "NUMERIC": _numeric,
    "DECIMAL": _numeric,
    "FLOAT": _numeric,
    "REAL": _numeric,
    "DOUBLE PRECISION": _numeric,
    "UUID": _uuid,
    "BOOLEAN": _boolean,
    "JSON": _json,
    "JSONB": _json,
    "DATE": _temporal(datetime.date),
    "TIMESTAMP": _temporal(datetime.datetime),
    "TIMESTAMP WITHOUT TIME ZONE": _temporal(datetime.datetime),
    "TIMESTAMP WITH TIME ZONE": _temporal(datetime.datetime),
    "TIME": _temporal(datetime.time),
    "TIME WITHOUT TIME ZONE": _temporal(datetime.time),
    "TIME WITH TIME ZONE": _temporal(datetime.time),
    "INET": _address,
    "CIDR": _address,
}
