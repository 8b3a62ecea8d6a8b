"""Table names typed on the command line: ``name``, ``schema.name``, and SQL's double quotes.

A dot separates the schema from the table, so a name holding a dot is written as SQL writes it:
``"my.table"`` or ``schema."my.table"``, with ``""`` for a double quote inside the quotes.  A
name without quotes is taken as typed (no case folding), as the models name their tables.
"""

from __future__ import annotations

import re

from .base import CliError

#: One part: double-quoted (``""`` inside is one ``"``), or bare: up to the next dot, not
#: starting with a quote (so ``Sales "Dept".items`` is still schema ``Sales "Dept"``).
_PART = re.compile(r'"((?:[^"]|"")+)"|([^".][^.]*)')

SYNTAX = 'NAME, SCHEMA.NAME, or with double quotes for a name holding a dot: "my.table"'


def split_table_name(text: str) -> tuple[str | None, str]:
    """``(schema, table)``; ``schema`` is None when the name has no schema part."""
    parts: list[str] = []
    position = 0
    while True:
        match = _PART.match(text, position)
        if match is None:
            break
        quoted, bare = match.groups()
        parts.append(quoted.replace('""', '"') if quoted is not None else bare)
        position = match.end()
        if position == len(text) or text[position] != ".":
            break
        position += 1
    if position != len(text) or not parts or len(parts) > 2:
        raise CliError(f"table {text!r} is not {SYNTAX}")
    if len(parts) == 1:
        return None, parts[0]
    return parts[0], parts[1]


def table_key(text: str) -> str:
    """The ``MetaData.tables`` key of a typed name: ``schema.name`` or ``name``."""
    schema, name = split_table_name(text)
    return name if schema is None else f"{schema}.{name}"
