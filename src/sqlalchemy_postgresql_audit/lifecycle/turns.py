"""An audit table's turn: the transaction-level advisory lock that ``maintain``, a conversion
to partitions and an erasure of the table take, so that one waits for the other.

``maintain`` copies the DEFAULT partition's rows of ended periods before the lock writers
wait for, and checks the copy under it by count and sum of ``audit_id``, which an UPDATE
leaves as they were: an erasure committed in between would be undone when the copy replaces
the erased rows.  Taking the turn first, an erasure waits for a drain in flight and a drain
for an erasure in flight.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import sqlalchemy as sa

from ..declare.spec import AuditSpec

#: First key of the turn locks (the second is the audit table's).
_LOCK_CLASS = 0x4155_4454  # "AUDT"


def turn_key(spec: AuditSpec) -> tuple[int, int]:
    """The advisory lock of an audit table's turn."""
    name = f"{spec.schema}.{spec.audit_table}"
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)
    return _LOCK_CLASS, key


def take_turns(connection: sa.Connection, specs: Iterable[AuditSpec]) -> None:
    """Wait for the turn of each audit table, until the transaction ends; in the order of
    their keys, so that two callers taking several never wait for each other in a cycle."""
    for key in sorted({turn_key(spec) for spec in specs}):
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(*key)))
