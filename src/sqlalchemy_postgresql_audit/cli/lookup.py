"""Which audited table ``history`` and ``as-of`` read, and the key and moment typed on the line.

The table comes from the models (``MODULE:METADATA``) when they are given, else it is reflected
from the database: the source table, the spec kept as JSON in its installed audit function's
comment (the definition the triggers really run), and the audit table that spec names.  So an
operator needs only ``--url``; the models are needed only for a history whose triggers were
uninstalled.
"""

from __future__ import annotations

import datetime
import decimal
import re
import uuid
from collections.abc import Callable

import sqlalchemy as sa

from ..audit_table import AUDIT_TABLE_KEY, SPEC_KEY, is_audit_table
from ..catalog import default_schema, installed_audits
from ..spec import AUDIT_TIMESTAMP
from .base import CliError
from .target import audited, load_metadata

#: ``package.module:attribute``: what tells the optional models argument from a table name.
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def split_target(words: list[str]) -> tuple[str | None, list[str]]:
    """``[MODULE:METADATA] rest...``: the models reference, if the first word is one."""
    if words and _TARGET.match(words[0]):
        return words[0], words[1:]
    return None, words


def find_table(connection: sa.Connection, target: str | None, name: str) -> sa.Table:
    """The audited table ``name`` (``schema.name`` or ``name``), from the models or reflected."""
    if target is not None:
        [(table, _)] = audited(load_metadata(target), target, [name])
        return table
    return reflect(connection, name)


def reflect(connection: sa.Connection, name: str) -> sa.Table:
    given, _, table_name = name.rpartition(".")
    schema = given or default_schema(connection)
    # Without a schema the names stay unqualified, as the models would declare them.
    metadata = sa.MetaData(schema=given or None)
    try:
        source = sa.Table(table_name, metadata, autoload_with=connection, resolve_fks=False)
    except sa.exc.NoSuchTableError:
        raise CliError(f"no table {name!r} in the database (schema {schema})") from None
    if is_audit_table(source):
        raise CliError(f"table {name!r} is an audit table; name the table it audits")
    found = [
        item.spec
        for item in installed_audits(connection, [schema])
        if item.spec is not None and item.schema == schema and item.spec.table == table_name
    ]
    if not found:
        raise CliError(
            f"table {name!r} is not audited in the database (no audit function installed); "
            "to read a history kept after uninstalling, give MODULE:METADATA"
        )
    spec = found[0]
    try:
        audit_table = sa.Table(spec.audit_table, metadata, schema=schema, autoload_with=connection)
    except sa.exc.NoSuchTableError:
        raise CliError(
            f"the audit table {schema}.{spec.audit_table} of {name!r} is not in the database"
        ) from None
    source.info = {**source.info, SPEC_KEY: spec, AUDIT_TABLE_KEY: audit_table}
    return source


def parse_key(table: sa.Table, text: str) -> dict[str, object]:
    """``value`` for a one-column key, or ``col=value,col=value``; each typed like its column."""
    keys = [column.name for column in table.primary_key.columns]
    if not keys:
        raise CliError(f"table {table.fullname!r} has no primary key")
    if len(keys) == 1 and not text.startswith(f"{keys[0]}="):
        return {keys[0]: _typed(table.c[keys[0]], text, table)}
    given: dict[str, str] = {}
    for part in text.split(","):
        column, sep, value = part.partition("=")
        if not sep or column.strip() not in keys:
            raise CliError(_key_usage(table, keys, text))
        given[column.strip()] = value
    if set(given) != set(keys):
        raise CliError(_key_usage(table, keys, text))
    return {column: _typed(table.c[column], given[column], table) for column in keys}


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


def _typed(column: sa.Column[object], text: str, table: sa.Table) -> object:
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
