"""Design 1: what decides the rows the stream carried for a source table, now and when its
replica was last compared (``render.cdc_replica.SOURCE_SIGNATURE``: the table's oid, its
``pg_publication_rel`` oid, then its leaf partitions as ``oid@version``, the last part always
present).

Comparing the two says what happened on the source outside the stream: leaves that left (a
partition detached or dropped, whose rows the replica keeps), joined (an attached one may
bring rows the replica lacks), or stayed with another version (detached, edited and attached
again, or truncated: a TRUNCATE of a partition is not published).  A signature recorded by an
older release has leaves without versions (or names, not oids): unknown, so compared once.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

from sqlalchemy import text

from ..render import cdc_replica as sql
from ..render.sql import name_text
from .replica import Replica


@dataclass(frozen=True, slots=True)
class Signature:
    text: str

    @property
    def oid(self) -> int:
        """The source table's oid (a signature read now, not recorded by an older release)."""
        return int(self.text.partition(":")[0])

    @property
    def table(self) -> str:
        """The table's and its publication membership's part."""
        return self.text.rpartition(":")[0]

    @property
    def leaf_versions(self) -> dict[int, str] | None:
        """Each leaf partition's oid and version (``""``: recorded by an older release, without
        one: unknown); ``None`` when not oids (recorded by name): unknown."""
        listed = self.text.rpartition(":")[2]
        versions = {}
        for leaf in filter(None, listed.split(",")):
            oid, _, version = leaf.partition("@")
            if not oid.isdigit():
                return None
            versions[int(oid)] = version
        return versions

    @property
    def leaves(self) -> frozenset[int] | None:
        """The leaf partitions' oids; ``None`` when unknown."""
        versions = self.leaf_versions
        return None if versions is None else frozenset(versions)


def oid_array(oids: Set[int]) -> str:
    """``oids`` as the text of a PostgreSQL array, for a bound parameter."""
    return "{" + ",".join(str(oid) for oid in sorted(oids)) + "}"


def oids(replica: Replica, names: Set[str]) -> frozenset[int]:
    """The source's oids of the tables ``names`` (regclass texts) that exist."""
    if not names:
        return frozenset()
    with replica.source.connect() as source:
        found = source.execute(text(sql.OIDS), {"names": sorted(names)}).scalars()
        return frozenset(int(oid) for oid in found)


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
