"""The SQL of ``cdc.record_attached``: a partition attached with rows to a CDC table, recorded in
the transaction that attached it.

Its rows never passed through the slot (written while it was a table of its own), so the stream's
first UPDATE or DELETE of one meets a row neither design 1's replica nor design 2's trail holds.
The ATTACH's transaction records a ``B`` version of each (``render.baseline``, read from the
partition alone) and a joins row (``render.cdc_joins``): the ATTACH's lock on the partition keeps
its writers waiting until that transaction commits, so those rows are exactly what the stream's
first change of each applies to.  On design 1's target the replica may hold a row with one of
those keys (a partition detached before, never removed there): the seed replaces it
(``replace_rows``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..declare.spec import AUDIT_OPERATION
from .baseline import BASELINE_CODE
from .cdc_install_rows import INSTALL_ROWS
from .sql import literal, qualified, quote

_WRAP, _HALF = 1 << 32, 1 << 31


def written_here(xmin: str) -> str:
    """Whether a visible row whose ``xmin`` is the expression ``xmin`` was written by this
    transaction or one of its savepoints: its id is still in progress (the 32-bit ``xmin``
    widened by its distance from the snapshot's ``xmax``, as ``history._decoded`` does)."""
    newest = (
        "CAST(CAST(pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()) AS text) "
        "AS bigint)"
    )
    behind = (
        f"(({newest} % {_WRAP} - CAST(CAST({xmin} AS text) AS bigint) + {_WRAP + _HALF}) "
        f"% {_WRAP} - {_HALF})"
    )
    full = f"CAST(CAST(GREATEST({newest} - {behind}, 0) AS text) AS xid8)"
    status = f"pg_catalog.pg_xact_status({full})"
    return f"COALESCE({status} OPERATOR(pg_catalog.=) 'in progress', false)"


#: Bound: ``table``, ``partition`` (regclass text).  The partition's schema and name; whether it
#: is a partition of the table (at any depth); whether this transaction attached it (its
#: ``pg_inherits`` row is this transaction's); whether this session holds the ATTACH's lock on
#: it (``ACCESS EXCLUSIVE``: no other session reads or writes it until the commit).
ATTACHED = (
    "SELECT n.nspname, c.relname, "
    "EXISTS (SELECT FROM pg_catalog.pg_partition_ancestors(c.oid) AS a(relid) "
    "WHERE a.relid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(:table) "
    "AND a.relid OPERATOR(pg_catalog.<>) c.oid) AS under, "
    "EXISTS (SELECT FROM pg_catalog.pg_inherits AS i "
    f"WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid AND {written_here('i.xmin')}) AS here, "
    "EXISTS (SELECT FROM pg_catalog.pg_locks AS l "
    "WHERE l.locktype OPERATOR(pg_catalog.=) 'relation' "
    "AND l.relation OPERATOR(pg_catalog.=) c.oid "
    "AND l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid() "
    "AND l.mode OPERATOR(pg_catalog.=) 'AccessExclusiveLock' AND l.granted) AS locked "
    "FROM pg_catalog.pg_class AS c "
    "JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
    "WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(:partition)"
)


def written_since_attached(schema: str, partition: str) -> str:
    """Whether a row of the partition was written by this transaction after it became a
    partition (a later command than its ``pg_inherits`` row: command ids count across
    savepoints): such a change is in the stream too, and its row in the baseline would be
    applied twice."""
    since = (
        "SELECT CAST(CAST(i.cmin AS text) AS bigint) FROM pg_catalog.pg_inherits AS i "
        "WHERE i.inhrelid OPERATOR(pg_catalog.=) CAST(:partition AS pg_catalog.regclass)"
    )
    return (
        f"SELECT EXISTS (SELECT FROM {qualified(schema, partition)} AS s "
        f"WHERE {written_here('s.xmin')} "
        f"AND CAST(CAST(s.cmin AS text) AS bigint) OPERATOR(pg_catalog.>) ({since}))"
    )


#: Bound: ``partition`` (regclass text).  Whether this transaction deleted rows of the
#: partition (a DELETE, or an UPDATE that moved a row to another partition): a deleted row
#: leaves nothing to see, and if it was deleted after the ATTACH its DELETE is in the stream
#: while its row is in no baseline.
DELETED_HERE = (
    "SELECT COALESCE(n_tup_del OPERATOR(pg_catalog.>) 0, false) "
    "FROM pg_catalog.pg_stat_xact_all_tables "
    "WHERE relid OPERATOR(pg_catalog.=) CAST(:partition AS pg_catalog.regclass)"
)


def recorded_here(
    schema: str | None, audit_table: str, partition_schema: str, partition: str, key: Sequence[str]
) -> str:
    """Whether this transaction already recorded a ``B`` version of a row of the partition (a
    second call, or an install in the same transaction, which records every row)."""
    same_key = " AND ".join(f"a.{quote(k)} = s.{quote(k)}" for k in key)
    return (
        f"SELECT EXISTS (SELECT FROM {qualified(schema, audit_table)} AS a "
        f"JOIN {qualified(partition_schema, partition)} AS s ON {same_key} "
        f"WHERE a.{quote(AUDIT_OPERATION)} = {literal(BASELINE_CODE)} "
        f"AND {written_here('a.xmin')})"
    )


def replace_rows(schema: str | None, table: str, key: Sequence[str]) -> str:
    """Target side, before the attach's versions go in: remove the replica's rows with their
    keys (stale rows of a partition detached earlier, never carried by the stream)."""
    same_key = " AND ".join(f"r.{quote(k)} = i.{quote(k)}" for k in key)
    return (
        f"DELETE FROM {qualified(schema, table)} AS r "
        f"USING {quote(INSTALL_ROWS)} AS i WHERE {same_key}"
    )
