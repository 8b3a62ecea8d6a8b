"""Whether a consumer writes the CDC tables' trail in this database, or only somewhere else.

Install creates every audit table, CDC tables' included, and records a baseline of the rows a
table already holds; for design 1 the consumer's subscription then writes the trail on the
target, and nothing ever updates the source's audit table again.  History read there is what
it was when capture moved to CDC: true once, stale since.  The readers say so (``cli``), and
this is how they know: a design-1 target has the subscription named after the slot reading the
CDC publication, and every consumer records its runs in the progress table of the database
holding its trail (``.progress``: the decoder's position, or, for design 1, the health row).
"""

from __future__ import annotations

from sqlalchemy import Connection, MetaData

from ..declare.cdc import cdc_names
from ..install.cdc_target import subscriptions
from ..render.cdc_decoder import progress_readable, progress_recorded


def trail_written_here(connection: Connection, metadata: MetaData) -> bool | None:
    """``True`` when a consumer of ``metadata``'s slot writes the trail in ``connection``'s
    database (design 1's target, or design 2's decoder), ``False`` when none does (yet),
    ``None`` when this role may not read the progress table that would tell."""
    names = cdc_names(metadata)
    if names.publication in subscriptions(connection).get(names.slot, ()):
        return True
    readable = connection.exec_driver_sql(progress_readable(None)).scalar()
    if readable is None:
        return False
    if not readable:
        return None
    recorded = connection.exec_driver_sql(progress_recorded(None), {"slot": names.slot})
    return bool(recorded.scalar())
