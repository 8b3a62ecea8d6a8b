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
the table had, and a table declared ``full`` but not installed again is still ``DEFAULT``.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..declare.cdc import cdc_names
from ..declare.spec import AuditSpec
from ..errors import AuditError
from ..install.catalog import replica_identity_code
from ..render import cdc as sql
from ..render.sql import name_text

_PUBLISHED = sa.text(sql.PUBLISHED).bindparams(sa.bindparam("tables", type_=sa.ARRAY(sa.Text())))


def rebuilt_from_here(connection: sa.Connection, table: sa.Table, spec: AuditSpec) -> str | None:
    """The publication through which this database's decoder reads ``table`` (``spec``:
    resolved) and rebuilds its old rows from its audit table, or None when it does not."""
    if not spec.cdc:
        return None
    publication = cdc_names(table.metadata).publication
    name = name_text(spec.schema, spec.table)
    published = connection.execute(_PUBLISHED, {"publication": publication, "tables": [name]})
    if published.first() is None:
        return None
    code = replica_identity_code(connection, spec.schema, spec.table)
    return None if code in (None, "f") else publication


def refuse_removal(connection: sa.Connection, table: sa.Table, spec: AuditSpec, what: str) -> None:
    """Raise ``AuditError`` when the decoder rebuilds ``table``'s old rows from the history
    ``what`` (the call, for the message) would remove; ``spec`` resolved."""
    publication = rebuilt_from_here(connection, table, spec)
    if publication is None:
        return
    raise AuditError(
        f"{what}: refused for {table.fullname!r}, nothing was removed.  It is published "
        f"({publication!r}) with REPLICA IDENTITY DEFAULT, so the change-data-capture decoder "
        "of this database rebuilds the old rows of its UPDATEs and DELETEs from this history, "
        "and would stop for good at the next change of a row whose versions were removed.  "
        "Declare replica_identity='full' in its audit options, install again (old rows then "
        "come from the WAL), run the consumer past that point (cdc run --once), then remove"
    )
