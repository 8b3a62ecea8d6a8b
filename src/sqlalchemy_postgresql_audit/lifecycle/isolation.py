"""The transactions of ``maintain``, retention and ``hold``/``release`` run at READ COMMITTED.

Each reads what it acts on (the DEFAULT partition's rows, the holds, the lowest ``audit_id``
that stays) only after taking the locks that keep writers and other callers out.  That holds
only at READ COMMITTED, where every statement reads what is committed when it starts.  At
REPEATABLE READ or SERIALIZABLE the transaction's snapshot is taken by its first statement,
before it waited for those locks: a row committed meanwhile would be missed and dropped with
the DEFAULT partition, and a hold committed meanwhile ignored.  So on an Engine the
transaction is opened at READ COMMITTED whatever the Engine's (or the server's) default, and a
Connection at another level is refused, naming it, before anything runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa

from ..errors import AuditError

READ_COMMITTED = "READ COMMITTED"
#: PostgreSQL runs READ UNCOMMITTED as READ COMMITTED.
_FRESH_READS = frozenset({READ_COMMITTED, "READ UNCOMMITTED", "AUTOCOMMIT"})


@contextlib.contextmanager
def read_committed(
    bind: sa.Engine | sa.Connection, what: str, *, nested: bool = False
) -> Iterator[sa.Connection]:
    """One READ COMMITTED transaction on an Engine; on a Connection its own transaction (a
    savepoint of it with ``nested``) once ``refuse_other_level`` let it through."""
    if isinstance(bind, sa.Engine):
        with bind.connect() as connection:
            connection.execution_options(isolation_level=READ_COMMITTED)
            with connection.begin():
                yield connection
        return
    refuse_other_level(bind, what)
    if nested:
        with bind.begin_nested():
            yield bind
    else:
        yield bind


def refuse_other_level(connection: sa.Connection, what: str) -> None:
    """``AuditError`` naming the level when ``connection`` runs above READ COMMITTED."""
    level = str(connection.get_isolation_level()).upper()
    if level not in _FRESH_READS:
        raise AuditError(
            f"{what} needs READ COMMITTED: it reads what it acts on after taking its locks, "
            f"and this connection's transaction is at {level}, whose snapshot was taken before "
            "them (rows or holds committed meanwhile would be missed); pass the Engine, or a "
            "connection with execution_options(isolation_level='READ COMMITTED')"
        )
