"""Whether this database's change-data-capture decoder rebuilds old rows from an audit table,
and so whether history may be removed from it.

A CDC table published here with ``REPLICA IDENTITY DEFAULT`` has the decoder (design 2, which
writes into the database it reads) take the old row of each UPDATE and DELETE from the key's
newest version in the trail: the WAL holds only the key.  Removing versions (a purge, a
retention that drops or detaches partitions holding rows) would leave keys with no version,
and the decoder would stop for good at the next change of such a row: the WAL of a DELETE of a
removed row can never be rebuilt, not by a baseline nor by ``FULL`` set afterwards.  So the
library's removals refuse such a table before removing anything.  Erasure is not refused (a
legal duty); it leaves the versions, with NULLs, which the decoder then carries into the old
rows it rebuilds.

Checked on the catalog, not on the declaration: the decoder follows the identity the WAL says
the table had, and a table declared ``full`` but not installed again is still ``DEFAULT``.  And
the catalog says only what the identity is now: changes logged before it became ``FULL`` still
carry only the key.  So under ``FULL``, while the slot may not have passed the table's last
catalog change (its ``xmin`` is not older than the slot's ``catalog_xmin``), a removal waits
until the slot has passed the WAL written before it (the decoder's progress is committed
before the slot moves), and is refused, naming the slot, when the consumer does not get there.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from ..declare.cdc import cdc_names
from ..declare.spec import AuditSpec
from ..errors import AuditError
from ..install.catalog import replica_identity_code
from ..render import cdc as sql
from ..render.sql import name_text

_PUBLISHED = sa.text(sql.PUBLISHED).bindparams(sa.bindparam("tables", type_=sa.ARRAY(sa.Text())))
#: The slot's confirmed position against the WAL position ``:lsn`` (read before the first
#: call), after a pause of ``:pause`` seconds.
_PASSED = sa.text(
    "SELECT s.confirmed_flush_lsn OPERATOR(pg_catalog.>=) CAST(:lsn AS pg_catalog.pg_lsn), "
    "s.confirmed_flush_lsn, s.wal_status, pg_catalog.pg_sleep(:pause) "
    "FROM pg_catalog.pg_replication_slots s WHERE s.slot_name OPERATOR(pg_catalog.=) :slot "
    "AND s.database OPERATOR(pg_catalog.=) pg_catalog.current_database()"
).bindparams(sa.bindparam("pause", type_=None))

#: The WAL position now, when the slot may not have passed the transaction that last changed
#: ``:table``'s catalog row (its switch to FULL among them): that row's ``xmin`` is not older
#: than the slot's ``catalog_xmin``.  Every change logged under the old identity belongs to a
#: transaction that committed before the switch took its lock, and so got an older ``xmin``.
_SWITCH_PENDING = sa.text(
    "SELECT pg_catalog.pg_current_wal_lsn() FROM pg_catalog.pg_replication_slots s "
    "JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(:table) "
    "WHERE s.slot_name OPERATOR(pg_catalog.=) :slot "
    "AND s.database OPERATOR(pg_catalog.=) pg_catalog.current_database() "
    "AND s.wal_status OPERATOR(pg_catalog.<>) 'lost' "
    "AND pg_catalog.age(c.xmin) OPERATOR(pg_catalog.<=) pg_catalog.age(s.catalog_xmin)"
)

#: How long a removal waits for the consumer to pass what the WAL holds, by default, in seconds.
DEFAULT_TIMEOUT = 30.0


def published_here(connection: sa.Connection, table: sa.Table, spec: AuditSpec) -> str | None:
    """The publication through which this database's slot reads ``table`` (``spec``:
    resolved), or None when it is not a CDC table published here."""
    if not spec.cdc:
        return None
    publication = cdc_names(table.metadata).publication
    name = name_text(spec.schema, spec.table)
    published = connection.execute(_PUBLISHED, {"publication": publication, "tables": [name]})
    return None if published.first() is None else publication


def refuse_removal(
    connection: sa.Connection,
    table: sa.Table,
    spec: AuditSpec,
    what: str,
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Raise ``AuditError`` when the decoder rebuilds, or may still rebuild, ``table``'s old
    rows from the history ``what`` (the call, for the message) would remove; ``spec``
    resolved.  Under ``FULL`` it first waits up to ``timeout`` seconds for the slot to pass
    the WAL written so far: changes logged while the identity was still ``DEFAULT`` carry
    only the key, and the identity the catalog shows now says nothing of them."""
    publication = published_here(connection, table, spec)
    if publication is None:
        return
    if replica_identity_code(connection, spec.schema, spec.table) != "f":
        raise AuditError(
            f"{what}: refused for {table.fullname!r}, nothing was removed.  It is published "
            f"({publication!r}) with REPLICA IDENTITY DEFAULT, so the change-data-capture "
            "decoder of this database rebuilds the old rows of its UPDATEs and DELETEs from "
            "this history, and would stop for good at the next change of a row whose versions "
            "were removed.  Declare replica_identity='full' in its audit options, install "
            "again (old rows then come from the WAL), run the consumer past that point (cdc "
            "run --once), then remove"
        )
    slot = cdc_names(table.metadata).slot
    name = name_text(spec.schema, spec.table)
    lsn = connection.execute(_SWITCH_PENDING, {"slot": slot, "table": name}).scalar()
    if lsn is None:
        return
    deadline = time.monotonic() + timeout
    pause = 0.0
    while True:
        row = connection.execute(_PASSED, {"lsn": lsn, "slot": slot, "pause": pause}).first()
        if row is None or row[0] or row[2] == "lost":
            return
        if time.monotonic() >= deadline:
            raise AuditError(
                f"{what}: refused for {table.fullname!r}, nothing was removed.  Its slot "
                f"{slot!r} has not passed the WAL written before this call (confirmed "
                f"{row[1]}, needed {lsn}) within {timeout:g} s, and changes logged while its "
                "REPLICA IDENTITY was still DEFAULT carry only the key: the decoder rebuilds "
                "their old rows from this history.  Run the consumer until it has caught up "
                "(cdc run --once, or while Consumer.run() runs), then remove"
            )
        pause = 0.05
