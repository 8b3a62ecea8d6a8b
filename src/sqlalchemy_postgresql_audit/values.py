"""Session-setting values as the text their column type reads back, checked in Python.

The trigger casts ``current_setting('audit.<name>')`` to the setting's column type, so a value
that type cannot hold would only fail at the write, far from the code that set it.  Here the
value is checked against the SQL type string of the declared setting (``SettingSpec.sql_type``)
and encoded the way that type reads it: JSON with ``json.dumps``, arrays as array literals.
The rule is "refused here, naming the setting, or stored exactly": where Python would accept
text that PostgreSQL reads differently or not at all (a netmask, a zone id, an ISO week date, a
number with more decimals than the column keeps), the value is refused or sent in the one
canonical form both read alike.  Types not known here (enums, domains, ...) are passed as text
and checked by the trigger.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import importlib
import ipaddress
import json
import math
import re
import struct
import uuid
from collections.abc import Callable
from typing import Any

from .audit_table import SPEC_KEY
from .declare import declare_metadata, declared_tables, specs_stored
from .spec import AuditSpec

_INT_RANGES = {"SMALLINT": 2**15, "INTEGER": 2**31, "BIGINT": 2**63}
_BOOLEAN_TEXT = frozenset({"t", "true", "y", "yes", "on", "1", "f", "false", "n", "no", "off", "0"})
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


def checked_text(text: str) -> str:
    """``text`` if PostgreSQL can receive it: no NUL character, no lone surrogate."""
    if "\x00" in text:
        raise ValueError("contains a NUL character, which PostgreSQL text cannot hold")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode (a lone surrogate)") from None
    return text


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


def _collect() -> dict[str, TypeGroups] | None:
    tables = declared_tables()
    if not tables:
        return None
    by_metadata: dict[int, dict[str, tuple[str, ...]]] = {}
    for table in tables:
        spec: AuditSpec = table.info[SPEC_KEY]
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
            raise ValueError(f"out of range for {base} ({-bound} to {bound - 1})")
        return str(number)

    return encode


def _decimal(value: object) -> decimal.Decimal:
    """``value`` as a Decimal: floats by their shortest repr (0.1 is 0.1, not 0.1000…0555)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal, str)):
        raise TypeError(f"a number is needed, got {type(value).__name__}")
    try:
        number = decimal.Decimal(
            value.strip() if isinstance(value, str) else repr(value) if isinstance(value, float)
            else value
        )
    except decimal.InvalidOperation:
        raise ValueError("not a number") from None
    if number.is_snan():
        raise ValueError("a signalling NaN is not a number PostgreSQL reads")
    return number


def _numeric(value: object, args: str | None) -> str:
    number = _decimal(value)
    if args and number.is_infinite():
        raise ValueError(f"NUMERIC({args}) cannot hold infinity")
    if args and number.is_finite() and number != 0:
        precision, _, scale_text = args.partition(",")
        digits, scale = int(precision), int(scale_text or 0)
        if _decimal_places(number) > scale:
            raise ValueError(
                f"has more than {scale} decimal places: NUMERIC({args}) would round it"
            )
        if number.adjusted() >= digits - scale:
            raise ValueError(f"out of range for NUMERIC({args})")
    return str(number)


def _decimal_places(number: decimal.Decimal) -> int:
    """The digits after the point that are not trailing zeros (12.50 has one)."""
    _sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + trailing_zeros))


def _float(single: bool) -> Callable[[object, str | None], str]:
    def encode(value: object, args: str | None) -> str:
        number = _decimal(value)
        name = "REAL" if single or (args and int(args) <= 24) else "DOUBLE PRECISION"
        if number.is_finite() and number != 0:
            stored = float(number)
            if name == "REAL" and not math.isinf(stored):
                try:
                    stored = struct.unpack("f", struct.pack("f", stored))[0]
                except OverflowError:
                    stored = math.inf
            if math.isinf(stored) or stored == 0:
                raise ValueError(f"out of range for {name}")
        return str(number)

    return encode


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


def _json(binary: bool) -> Callable[[object, str | None], str]:
    def encode(value: object, _args: str | None) -> str:
        if isinstance(value, str):  # text is taken as JSON text, as before; it must parse
            parsed = json.loads(value, parse_constant=_no_constant)
            text = value
        else:
            parsed = value
            text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        _check_json_strings(parsed, binary)
        return text

    return encode


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON (PostgreSQL refuses it)")


def _check_json_strings(value: object, binary: bool) -> None:
    """JSONB cannot hold ``\\u0000``, and no JSON text a lone surrogate."""
    if isinstance(value, str):
        if binary and "\x00" in value:
            raise ValueError("JSONB cannot hold the character \\u0000")
        checked_text(value.replace("\x00", ""))
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json_strings(key, binary)
            _check_json_strings(item, binary)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_json_strings(item, binary)


def _temporal(kind: type, zoned: bool | None) -> Callable[[object, str | None], str]:
    """Dates and times as ISO 8601, sent in Python's canonical form.

    Text is parsed here and its canonical form sent, so text Python reads differently from
    PostgreSQL (an ISO week date, the basic format) is stored as the value Python read.  A
    column without time zone would silently drop an offset: such a value is refused.
    """

    def encode(value: object, _args: str | None) -> str:
        if isinstance(value, str):
            text = value.strip()
            parse = getattr(kind, "fromisoformat")  # noqa: B009 - one code path for the three
            try:
                value = parse(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
            except ValueError:
                raise ValueError(f"not an ISO 8601 {kind.__name__}") from None
        if kind is datetime.date and isinstance(value, datetime.datetime):
            raise TypeError("a DATE setting takes a date, got a datetime")
        if not isinstance(value, kind):
            raise TypeError(f"needs {kind.__name__} or ISO 8601 text, got {type(value).__name__}")
        if zoned is False and getattr(value, "tzinfo", None) is not None:
            raise ValueError(
                "has a time zone offset, which a column WITHOUT TIME ZONE would drop; pass a "
                "naive value or declare the column with timezone=True"
            )
        return value.isoformat()  # type: ignore[no-any-return, attr-defined]

    return encode


def _interval(value: object, _args: str | None) -> str:
    """A ``timedelta`` in units PostgreSQL adds up exactly; text is left to the trigger."""
    if isinstance(value, datetime.timedelta):
        return f"{value.days} days {value.seconds} seconds {value.microseconds} microseconds"
    if isinstance(value, str):
        return value
    raise TypeError(f"an INTERVAL takes a timedelta or text, got {type(value).__name__}")


_ADDRESSES = (ipaddress.IPv4Address, ipaddress.IPv6Address)
_INTERFACES = (ipaddress.IPv4Interface, ipaddress.IPv6Interface)
_NETWORKS = (ipaddress.IPv4Network, ipaddress.IPv6Network)


def _address_text(value: object) -> str:
    """Address text PostgreSQL reads as Python does: no zone id, a prefix length (not a mask)."""
    if isinstance(value, (*_ADDRESSES, *_INTERFACES, *_NETWORKS)):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise TypeError(f"an IP address needs str or ipaddress, got {type(value).__name__}")
    address, slash, prefix = text.partition("/")
    if "%" in address:
        raise ValueError("has an IPv6 zone id (%...), which PostgreSQL does not store")
    if slash and not (prefix.isascii() and prefix.isdigit()):
        raise ValueError("has a netmask: write the prefix length (e.g. /24)")
    return text


def _inet(value: object, _args: str | None) -> str:
    text = _address_text(value)
    try:
        ipaddress.ip_interface(text)
    except ValueError:
        raise ValueError("not an IP address") from None
    return text


def _cidr(value: object, _args: str | None) -> str:
    text = _address_text(value)
    try:
        ipaddress.ip_network(text, strict=True)
    except ValueError as error:
        if "host bits" in str(error):
            raise ValueError("has bits set right of the prefix, which CIDR refuses") from None
        raise ValueError("not an IP network") from None
    return text


_ENCODERS: dict[str, Callable[[object, str | None], str]] = {
    **{name: _integer(name) for name in _INT_RANGES},
    "INT": _integer("INTEGER"),
    "NUMERIC": _numeric,
    "DECIMAL": _numeric,
    "FLOAT": _float(single=False),
    "REAL": _float(single=True),
    "DOUBLE PRECISION": _float(single=False),
    "UUID": _uuid,
    "BOOLEAN": _boolean,
    "JSON": _json(binary=False),
    "JSONB": _json(binary=True),
    "DATE": _temporal(datetime.date, None),
    "TIMESTAMP": _temporal(datetime.datetime, False),
    "TIMESTAMP WITHOUT TIME ZONE": _temporal(datetime.datetime, False),
    "TIMESTAMP WITH TIME ZONE": _temporal(datetime.datetime, True),
    "TIME": _temporal(datetime.time, False),
    "TIME WITHOUT TIME ZONE": _temporal(datetime.time, False),
    "TIME WITH TIME ZONE": _temporal(datetime.time, True),
    "INTERVAL": _interval,
    "INET": _inet,
    "CIDR": _cidr,
}
