"""The keyed hash of ``redact: hash`` as SQLAlchemy Core, for statements written in Python.

The trigger's form is SQL text (``render.redaction``); a baseline, which writes audit rows
itself, and ``matches_hash``, which checks a candidate, build the same digest here:
``sha256(outer_pad || sha256(inner_pad || convert_to(value::text, 'UTF8')))``, prefixed with the
key version byte where it is recorded.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..render.redaction import KEY_TABLE, missing_key_setting


def key_table(schema: str | None) -> sa.TableClause:
    return sa.table(
        KEY_TABLE,
        sa.column("version", sa.SmallInteger),
        sa.column("inner_pad", sa.LargeBinary),
        sa.column("outer_pad", sa.LargeBinary),
        schema=schema,
    )


def _joined(left: sa.ColumnElement[Any], right: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """``left || right`` of two bytea values."""
    return left.op("||", return_type=sa.LargeBinary)(right)


def hmac_of(
    inner_pad: sa.ColumnElement[Any], outer_pad: sa.ColumnElement[Any], value: Any
) -> sa.ColumnElement[Any]:
    """HMAC-SHA256 of ``value``'s text form, with the given padded keys."""
    message = sa.func.convert_to(sa.cast(value, sa.Text), sa.literal("UTF8"), type_=sa.LargeBinary)
    inner = sa.func.sha256(_joined(inner_pad, message), type_=sa.LargeBinary)
    return sa.func.sha256(_joined(outer_pad, inner), type_=sa.LargeBinary)


def recorded_hash(schema: str | None, value: Any) -> sa.ColumnElement[Any]:
    """What the trigger records for ``value``: the newest key version's byte, then the HMAC
    with that key; a missing key fails the statement, as it fails the trigger."""
    keys = key_table(schema)

    def newest(expression: sa.ColumnElement[Any]) -> sa.ScalarSelect[Any]:
        return sa.select(expression).order_by(keys.c.version.desc()).limit(1).scalar_subquery()

    missing = sa.func.decode(
        sa.func.current_setting(sa.literal(missing_key_setting(schema))), sa.literal("hex")
    )
    version_byte = sa.func.coalesce(
        newest(sa.func.substr(sa.func.int2send(keys.c.version), 2, type_=sa.LargeBinary)),
        missing,
    )
    digest = hmac_of(newest(keys.c.inner_pad), newest(keys.c.outer_pad), value)
    return _joined(version_byte, digest)
