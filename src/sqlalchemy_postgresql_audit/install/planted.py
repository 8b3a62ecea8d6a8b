"""Refuse a source's context or joins table another role made first (``render.cdc_planted``).

Installing makes both with ``IF NOT EXISTS``; whoever made one first decides what runs when the
installer, each writer and the consumer write to it.  So, after creating them and before
anything writes to them, installing refuses one whose owner is neither the installing role nor
a role it was granted (the installing role may change between migrations: granted the first
one's role, it may go on), and one carrying a trigger, a rule, a row-level security policy,
children or another relkind, which the library never makes there: a superuser is a member of
every role, so ownership alone would let a table planted with a trigger through it.  The
consumer, whose role may differ from the installer's, refuses the latter at its start.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Connection, text

from ..declare.cdc import CdcNames
from ..render import cdc_planted as sql
from ..render.cdc_joins import joins_table
from ..render.sql import name_text


class SourceTable(NamedTuple):
    """One of the source's context and joins tables as the catalog has it."""

    name: str
    owner: str
    owned: bool
    foreign_code: list[str]


def source_tables(connection: Connection, names: CdcNames) -> list[SourceTable]:
    """The context and joins tables of ``names`` that exist."""
    return catalog_tables(
        connection,
        [
            name_text(names.context_schema, names.context_table),
            name_text(names.context_schema, joins_table(names.context_table)),
        ],
    )


def catalog_tables(connection: Connection, tables: list[str]) -> list[SourceTable]:
    """Those of ``tables`` (regclass texts) that exist, as the catalog has them."""
    rows: Any = connection.execute(text(sql.SOURCE_TABLES), {"tables": tables})
    return [SourceTable(*row) for row in rows]


def foreign_code(table: SourceTable) -> str | None:
    """What runs on ``table`` that the library did not make, said in a sentence; None: none."""
    if not table.foreign_code:
        return None
    return (
        f"table {table.name} on the source carries {', '.join(table.foreign_code)}, which "
        "change-data-capture never makes there: it would run as every writer adding a context "
        "row, as the installer and as the consumer deleting consumed rows"
    )


def planted(connection: Connection, names: CdcNames) -> str | None:
    """For installing: why the first of ``names``' source tables must not be written to
    (owned by a role the installing one was not granted, or carrying foreign code), with the
    remedy, as an ``AuditConfigurationError`` says it of the ``mode``; None when both are the
    library's."""
    for table in source_tables(connection, names):
        if not table.owned:
            return (
                f"is 'cdc', but table {table.name} on the source is owned by role "
                f"{table.owner!r}, which the installing role neither is nor was granted: made "
                "first under the name, its triggers would run as every writer, the installer "
                f"and the consumer.  Drop it, or ALTER TABLE {table.name} OWNER TO the "
                "installing role; nothing was written to it"
            )
        found = foreign_code(table)
        if found is not None:
            return (
                f"is 'cdc', but {found}.  Drop what is not the library's; nothing was written to it"
            )
    return None
