"""Encoders of one scalar value per PostgreSQL base type: the text that type reads back.

Each takes the value and the type's arguments (``"5, 2"`` of ``NUMERIC(5, 2)``) and returns
the text to send, or raises ``TypeError`` / ``ValueError`` saying why the type cannot hold the
value exactly.  Where Python reads text more leniently than PostgreSQL (a netmask, a zone id,
an ISO week date), the value is refused or sent in the canonical form both read alike.
"""

from __future__ import annotations

import datetime
import decimal
import ipaddress
import json
import math
import struct
import uuid
from collections.abc import Callable

_INT_RANGES = {"SMALLINT": 2**15, "INTEGER": 2**31, "BIGINT": 2**63}
_BOOLEAN_TEXT = frozenset({"t", "true", "y", "yes", "on", "1", "f", "false", "n", "no", "off", "0"})


def checked_text(text: str) -> str:
    """``text`` if PostgreSQL can receive it: no NUL character, no lone surrogate."""
    if "\x00" in text:
        raise ValueError("contains a NUL character, which PostgreSQL text cannot hold")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode (a lone surrogate)") from None
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
            value.strip()
            if isinstance(value, str)
            else repr(value)
            if isinstance(value, float)
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
    column without time zone would silently drop an offset, and a column with time zone would
    read a value without one in the session's ``TimeZone`` (recorded shifted): both are refused.
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
        if zoned and _naive(value):
            raise ValueError(
                "has no time zone offset, which a column WITH TIME ZONE would read in the "
                "session's TimeZone; pass an aware value (e.g. tzinfo=datetime.timezone.utc)"
            )
        return value.isoformat()  # type: ignore[no-any-return, attr-defined]

    return encode


def _naive(value: object) -> bool:
    """Whether ``value`` has no UTC offset (a tzinfo that answers ``None`` counts as none)."""
    return isinstance(value, (datetime.datetime, datetime.time)) and value.utcoffset() is None


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


#: Encoder by base type name (upper case, without arguments).
ENCODERS: dict[str, Callable[[object, str | None], str]] = {
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
