"""Which audited table ``history`` and ``as-of`` read, and the key and moment typed on the line.

The table comes from the models (``MODULE:METADATA``) when they declare it audited, else it is
read from the database by ``..install.kept.reflect_audited``: the installed audit function's
spec (the definition the triggers really run), or, once auditing ended, the audit table that was
kept.  So an operator needs only ``--url``.
"""

from __future__ import annotations

import datetime
import decimal
import re
import uuid
from collections.abc import Callable

import sqlalchemy as sa

from ..declare.audit_table import AUDIT_TABLE_KEY, IS_AUDIT_TABLE_KEY, SPEC_KEY
from ..declare.spec import AUDIT_TIMESTAMP
from ..errors import AuditError
from ..install.catalog import default_schema
from ..install.kept import reflect_audited
from .base import CliError
from .names import split_table_name, table_key
from .target import audited, load_metadata

#: ``package.module:attribute``: what tells the optional models argument from a table name.
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def split_target(words: list[str]) -> tuple[str | None, list[str]]:
    """``[MODULE:METADATA] rest...``: the models reference, if the first word is one."""
    if words and _TARGET.match(words[0]):
        return words[0], words[1:]
    return None, words


def find_table(connection: sa.Connection, target: str | None, name: str) -> sa.Table:
    """The audited table ``name`` (``.names`` syntax): from the models when they declare it
    audited, else as the database records it, including a history kept after auditing ended
    (``..install.kept.reflect_audited``)."""
    schema, table_name = split_table_name(name)
    if target is not None:
        metadata = load_metadata(target)
        table = metadata.tables.get(name)
        if table is None:
            table = metadata.tables.get(table_key(name))
        if table is not None and (SPEC_KEY in table.info or IS_AUDIT_TABLE_KEY in table.info):
            [(table, _)] = audited(metadata, target, [name])
            return table
        if table is None:
            return _reflect(connection, schema, table_name, name, f"{target} has no table {name!r}")
    return _reflect(connection, schema, table_name, name)


def _reflect(
    connection: sa.Connection,
    schema: str | None,
    table_name: str,
    typed: str,
    models: str | None = None,
) -> sa.Table:
    try:
        return reflect_audited(connection, table_name, schema=schema)
    except AuditError as error:
        message = str(error) if models is None else f"{models}, and {error}"
        if schema is not None and '"' not in typed:
            dotted = typed.replace('"', '""')
            message += f' (a table whose name holds a dot is written "{dotted}")'
        raise CliError(message) from None


def parse_key(table: sa.Table, text: str) -> dict[str, object]:
    """``value`` for a one-column key, or ``col=value,col=value``; each typed like its column."""
    keys = [column.name for column in table.primary_key.columns]
    if not keys:
        raise CliError(f"table {table.fullname!r} has no primary key")
    if len(keys) == 1:
        return {keys[0]: _one_column_key(table, keys[0], text)}
    given: dict[str, str] = {}
    for part in text.split(","):
        column, sep, value = part.partition("=")
        if not sep or column.strip() not in keys:
            raise CliError(_key_usage(table, keys, text))
        given[column.strip()] = value
    if set(given) != set(keys):
        raise CliError(_key_usage(table, keys, text))
    return {column: typed_value(table.c[column], given[column], table) for column in keys}


def _one_column_key(table: sa.Table, column: str, text: str) -> object:
    """The value as typed: ``code=x`` on a text key ``code`` is the text ``code=x``.

    ``col=value`` is the form of composite keys; on a one-column key whose type the text cannot
    be (``id=5`` for an integer), it is read as that form, since it cannot mean anything else.
    """
    try:
        return typed_value(table.c[column], text, table)
    except CliError:
        prefix = f"{column}="
        if not text.startswith(prefix):
            raise
        return typed_value(table.c[column], text[len(prefix) :], table)


def _key_usage(table: sa.Table, keys: list[str], text: str) -> str:
    example = ",".join(f"{k}=..." for k in keys)
    return f"table {table.fullname!r}: key {text!r} is not {example} (its primary key)"


#: How a key's text becomes the column's Python type; types not listed stay text.
_PARSERS: dict[type, Callable[[str], object]] = {
    int: int,
    decimal.Decimal: decimal.Decimal,
    float: float,
    uuid.UUID: uuid.UUID,
    datetime.date: datetime.date.fromisoformat,
    datetime.datetime: datetime.datetime.fromisoformat,
    bool: lambda text: {"true": True, "false": False}[text.lower()],
}


def typed_value(column: sa.Column[object], text: str, table: sa.Table) -> object:
    """``text`` as ``column``'s Python type (a key, a session setting's value)."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return text
    parse = _PARSERS.get(python_type)
    if parse is None:
        return text
    try:
        return parse(text)
    except (ValueError, KeyError, decimal.InvalidOperation):
        raise CliError(
            f"table {table.fullname!r}: key column {column.name!r} is {column.type}, "
            f"and {text!r} is not a {python_type.__name__}"
        ) from None


def parse_time(text: str) -> datetime.datetime:
    """ISO 8601 with a time zone; a time without one is refused (its meaning would depend on
    the server's TimeZone setting)."""
    try:
        moment = datetime.datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", text))
    except ValueError:
        raise CliError(
            f"TIME {text!r} is not ISO 8601 (for example 2026-12-01T10:00:00+00:00)"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CliError(
            f"TIME {text!r} has no time zone: add one (for example {moment.isoformat()}+00:00 "
            "or Z for UTC)"
        )
    return moment


def qualified_name(connection: sa.Connection, table: sa.Table) -> str:
    """``schema.name``, with the schema an unqualified table resolves to."""
    return f"{table.schema or default_schema(connection)}.{table.name}"


def moment_for(
    connection: sa.Connection, table: sa.Table, at: datetime.datetime
) -> datetime.datetime:
    """``at`` as ``table``'s audit timestamps compare: unchanged for timestamptz; for a
    ``legacy_timestamp`` table the wall-clock time in this session's TimeZone, which is what
    ``now()`` stored there when the writers ran with the same setting."""
    audit_table: sa.Table = table.info[AUDIT_TABLE_KEY]
    if getattr(audit_table.c[AUDIT_TIMESTAMP].type, "timezone", False):
        return at
    local = sa.func.timezone(sa.func.current_setting("TimeZone"), sa.literal(at, sa.DateTime(True)))
    naive: datetime.datetime = connection.execute(sa.select(local)).scalar_one()
    return naive
