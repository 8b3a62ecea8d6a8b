"""Design 1: what the source says joined change-data-capture, and what the target seeded.

A table published for the first time gets a row in the source's joins table, written by the
transaction that published it and recorded the ``B`` version of each of its rows
(``install.publication.baseline_statements``).  The row is replicated with everything else,
and the target's trigger holds the apply worker at it until the target records the join as
seeded (``render.cdc_joins``).  So every path that gives a replica its rows records the joins
of its table as seeded: the new subscription's seed (``.install_rows``), the seed of a join
after a refresh, and the locked copy's fallback (``.seed``); a join left unrecorded would hold
the trail for good.

A source installed before joins existed has no joins table: nothing is held, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from ..declare.cdc import CdcNames
from ..render import cdc_joins as sql
from ..render import cdc_replica as replica_sql
from ..render.sql import name_text


@dataclass(frozen=True, slots=True)
class Join:
    """A table (``table_name``: as the source recorded it) published by transaction ``xact``."""

    table_name: str
    xact: int


def committed_after(xact: int, other: int) -> bool:
    """Whether 32-bit transaction id ``xact`` is later than ``other``, as PostgreSQL compares
    them: modulo 2^32, within 2^31 (a join recorded after the counter wrapped is later)."""
    return 0 < (xact - other) % 2**32 < 2**31


def _exists(connection: Connection, schema: str | None, table: str) -> bool:
    found = connection.execute(text(replica_sql.EXISTING), {"names": [name_text(schema, table)]})
    return found.first() is not None


def joins_of(source: Connection, names: CdcNames, table: str) -> list[Join]:
    """The source's joins of ``table`` (regclass text), oldest first."""
    schema, context = names.context_schema, names.context_table
    if not _exists(source, schema, sql.joins_table(context)):
        return []
    rows = source.execute(text(sql.joins_of(schema, context)), {"table": table})
    return [Join(str(name), int(xact)) for name, xact in rows]


def all_joins(source: Connection, names: CdcNames) -> list[Join]:
    schema, context = names.context_schema, names.context_table
    if not _exists(source, schema, sql.joins_table(context)):
        return []
    rows = source.execute(text(sql.all_joins(schema, context)))
    return [Join(str(n), int(x)) for n, x in rows]


def seeded(target: Connection, names: CdcNames) -> set[Join]:
    """The joins the target seeded (none before the consumer made its table)."""
    schema = names.context_schema
    if not _exists(target, schema, sql.SEEDED_JOINS_TABLE):
        return set()
    return {Join(str(n), int(x)) for n, x in target.execute(text(sql.seeded_joins(schema)))}


def pending(source: Connection, target: Connection, names: CdcNames) -> list[Join]:
    """The source's joins the target has not seeded: the subscription is held at the first."""
    done = seeded(target, names)
    return sorted(
        (join for join in all_joins(source, names) if join not in done), key=lambda j: j.xact
    )


def record_seeded(target: Connection, names: CdcNames, join: Join, rows: int) -> None:
    """In the target transaction that gave the replica the table's rows (or left them to the
    locked copy): the apply worker's next retry of the join passes."""
    target.execute(
        text(sql.record_seeded(names.context_schema)),
        {"table_name": join.table_name, "xact": join.xact, "seeded_rows": rows},
    )
