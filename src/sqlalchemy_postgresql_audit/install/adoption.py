"""Refuse library tables someone else created first, before the library reads or writes them
(``render.adoption`` says why and what counts)."""

from __future__ import annotations

import sqlalchemy as sa

from ..render.adoption import refuse_foreign_table
from ..render.partitioning import HOLDS_COLUMNS, HOLDS_TABLE
from ..render.seals import SEAL_TABLES
from .ddl import AuditDDL


def refuse_foreign_seal_tables(connection: sa.Connection, schema: str | None) -> None:
    """Raise unless each of ``schema``'s seal tables is missing or the library's to use: a
    seal table planted by a writer could run the writer's code as whoever seals, or let the
    writer read the row keys."""
    for table in SEAL_TABLES:
        connection.execute(AuditDDL(refuse_foreign_table(schema, table)))


_HOLDS_HINT = (
    "Whoever made it, or may change it, could run code as whoever uses it or lift a hold. "
    "Revoke what other roles hold on it, or note its holds, drop it (after checking it) and "
    "place them again with hold, which creates it for the audit table's owner."
)


def refuse_foreign_holds_table(
    connection: sa.Connection, schema: str | None, owner: str, *, grants: bool = True
) -> None:
    """Raise unless ``schema``'s holds table is missing or the library's to use, ``owner``
    (the audit table's) being trusted to own it: a planted one would run its planter's code as
    whoever places, lifts or reads a hold, and one that another role may change (``grants``)
    lets that role lift a hold, and so have retention drop held history."""
    refusal = refuse_foreign_table(
        schema,
        HOLDS_TABLE,
        columns=HOLDS_COLUMNS,
        trusted_owner=owner,
        grants=grants,
        hint=_HOLDS_HINT,
    )
    connection.execute(AuditDDL(refusal))
