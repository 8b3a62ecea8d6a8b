"""Refuse library tables someone else created first, before the library reads or writes them
(``render.adoption`` says why and what counts)."""

from __future__ import annotations

import sqlalchemy as sa

from ..render.adoption import refuse_foreign_table
from ..render.seals import SEAL_TABLES
from .ddl import AuditDDL


def refuse_foreign_seal_tables(connection: sa.Connection, schema: str | None) -> None:
    """Raise unless each of ``schema``'s seal tables is missing or the library's to use: a
    seal table planted by a writer could run the writer's code as whoever seals, or let the
    writer read the row keys."""
    for table in SEAL_TABLES:
        connection.execute(AuditDDL(refuse_foreign_table(schema, table)))
