"""Design 1: what decides the rows the stream carried for a source table, now and when its
replica was last compared (``render.cdc_replica.SOURCE_SIGNATURE``: the table's oid, its
``pg_publication_rel`` oid, then its leaf partitions' oids, the last part always present).

Comparing the two says what happened on the source outside the stream: leaves that left (a
partition detached or dropped, whose rows the replica keeps) or joined (an attached one may
bring rows the replica lacks).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from ..render import cdc_replica as sql
from ..render.sql import name_text
from .replica import Replica


@dataclass(frozen=True, slots=True)
class Signature:
    text: str

    @property
    def table(self) -> str:
        """The table's and its publication membership's part."""
        return self.text.rpartition(":")[0]

    @property
    def leaves(self) -> frozenset[int] | None:
        """``None`` when not oids (recorded by an older release, by name): unknown."""
        listed = self.text.rpartition(":")[2]
        oids = [oid for oid in listed.split(",") if oid]
        if not all(oid.isdigit() for oid in oids):
            return None
        return frozenset(int(oid) for oid in oids)


def oid_array(oids: frozenset[int]) -> str:
    """``oids`` as the text of a PostgreSQL array, for a bound parameter."""
    return "{" + ",".join(str(oid) for oid in sorted(oids)) + "}"


def signatures(replica: Replica) -> tuple[dict[str, Signature | None], dict[str, Signature]]:
    """``(now on the source, recorded on the target)``, by table (regclass text); ``None``
    for a table the source does not have (yet)."""
    names = replica.names
    with replica.source.connect() as source:
        now = {}
        for table, _ in replica.pairs():
            name = name_text(table.schema, table.name)
            value = source.execute(
                text(sql.SOURCE_SIGNATURE), {"table": name, "publication": names.publication}
            ).scalar()
            now[name] = None if value is None else Signature(str(value))
    with replica.target.connect() as target:
        rows = target.execute(text(sql.seeded_signatures(names.context_schema)))
        recorded = {str(row[0]): Signature(str(row[1])) for row in rows}
    return now, recorded
