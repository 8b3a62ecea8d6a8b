"""How the history API shows a value the trail holds redacted (option ``redact``).

A masked or omitted value reads as ``REDACTED``, a hashed one as a ``Hashed`` object: never as
``None``, which would claim the value was NULL.  The conversion is a result type applied to the
selected column, so it works alike for Core rows, ORM versions and composed selects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, final

from sqlalchemy import ColumnElement, LargeBinary, case, func, literal, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import Boolean, TypeDecorator

from ..declare.spec import AuditSpec


@final
class Redacted:
    """The type of ``REDACTED``: a value the trail records only as having changed."""

    __slots__ = ()

    def __new__(cls) -> Redacted:
        return REDACTED

    def __repr__(self) -> str:
        return "REDACTED"

    def __str__(self) -> str:
        return "[redacted]"

    def __reduce__(self) -> str:
        return "REDACTED"


REDACTED: Redacted = object.__new__(Redacted)


@dataclass(frozen=True, slots=True)
class Hashed:
    """A hashed value as recorded: the key version and the HMAC-SHA256 digest.  Equal values
    hashed with one key version compare equal; ``matches_hash`` checks a candidate value."""

    key_version: int
    digest: bytes

    @classmethod
    def from_recorded(cls, recorded: bytes) -> Hashed:
        """Split a recorded value: its first byte is the key version."""
        return cls(key_version=recorded[0], digest=bytes(recorded[1:]))

    @property
    def recorded(self) -> bytes:
        """The value as the audit table holds it."""
        return bytes([self.key_version]) + self.digest

    def __str__(self) -> str:
        return f"[hash:v{self.key_version}:{self.digest.hex()[:8]}…]"

    def __repr__(self) -> str:
        return f"Hashed(key_version={self.key_version}, digest={self.digest.hex()[:8]!r}…)"


class ShownRedacted(TypeDecorator[Any]):
    """Reads true as ``REDACTED``; false or NULL (a marker row: no values) as None."""

    impl = Boolean
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return REDACTED if value else None


class ShownHashed(TypeDecorator[Any]):
    """Reads a recorded digest as a ``Hashed`` (a NULL value was recorded as NULL)."""

    impl = LargeBinary
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else Hashed.from_recorded(bytes(value))


def shown(
    spec: AuditSpec, name: str, value: ColumnElement[Any], present: ColumnElement[bool]
) -> ColumnElement[Any]:
    """Column ``name`` as the history API shows it: ``value`` itself, or, for a redacted
    column, ``REDACTED`` where ``present`` (the row holds values) and a ``Hashed`` digest."""
    form = spec.redaction(name)
    if form == "hash":
        return type_coerce(value, ShownHashed())
    if form is not None:
        return type_coerce(present, ShownRedacted())
    return value


#: The key of the JSON object ``changes()`` writes for a redacted value; ``ShownJson`` reads
#: such an object back as ``REDACTED`` or a ``Hashed``.  Only a table with redacted columns
#: reads it, where a JSON column's value of exactly this shape would read as redacted too.
JSON_MARKER = "sqlalchemy_postgresql_audit.redacted"


def shown_json(spec: AuditSpec, name: str, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """``to_jsonb(value)``, or for a redacted column the marker object ``ShownJson`` reads:
    ``{JSON_MARKER: "mask"}`` where a value was, ``{JSON_MARKER: "<hex of the digest>"}``."""
    form = spec.redaction(name)
    if form == "hash":
        recorded = func.encode(value, literal("hex"))
        marker = func.jsonb_build_object(literal(JSON_MARKER), recorded, type_=JSONB)
        return case((value.is_not(None), marker))
    if form is not None:
        marker = func.jsonb_build_object(literal(JSON_MARKER), literal(form), type_=JSONB)
        return case((value, marker))
    return func.to_jsonb(value)


class ShownJson(TypeDecorator[Any]):
    """``changes()``'s before and after where the table has redacted columns."""

    impl = JSONB
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return from_json(value)


def from_json(value: Any) -> Any:
    """A value of ``changes()``'s before or after, parsed: a redaction marker object read as
    ``REDACTED`` or a ``Hashed``, any other value as it is."""
    if isinstance(value, dict) and len(value) == 1 and JSON_MARKER in value:
        form = value[JSON_MARKER]
        if form in ("mask", "omit"):
            return REDACTED
        if isinstance(form, str):
            return Hashed.from_recorded(bytes.fromhex(form))
    return value
