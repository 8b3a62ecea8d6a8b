"""Design 1's watch: the subscription applies and the target's triggers write the trail; this
module tells when they have done so.

``run_once`` commits an empty context row (a fence) on the source and waits until the target
has applied it, which in commit order means everything committed before it; then it deletes the
context rows up to the fence on both sides and counts the audit rows written meanwhile.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, Engine, MetaData, Table, func, select, text
from sqlalchemy.exc import DBAPIError

from ..declare.audit_table import AUDIT_TABLE_KEY
from ..declare.cdc import CdcNames
from ..declare.spec import AUDIT_ID
from ..install.ddl import audited_tables
from ..render import cdc as sql
from .errors import CdcError
from .replica import Replica

#: How often the watch looks at the target while it waits.
POLL_SECONDS = 0.05


class Apply:
    """The trail of ``metadata``'s CDC tables, written on ``target`` by a subscription."""

    def __init__(
        self, source: Engine, target: Engine, metadata: MetaData, *, timeout: float
    ) -> None:
        self.source = source
        self.target = target
        self.metadata = metadata
        self.timeout = timeout
        self._replica: Replica | None = None
        self._seen: dict[str, int] | None = None

    def run_once(self) -> int:
        """The audit rows written since the previous call, once everything committed on the
        source before this call is in the trail."""
        audit_tables = _audit_tables(self.metadata)
        if self._replica is None:
            replica = Replica(self.source, self.target, self.metadata)
            with self.target.connect() as connection:
                before = _highest(connection, audit_tables)
            if replica.prepare():
                self._seen = before
            self._replica = replica
        replica = self._replica
        with self.target.connect() as connection:
            if self._seen is None:
                self._seen = _highest(connection, audit_tables)
        fence = _fence(self.source, replica)
        self._wait(replica, fence)
        for engine in (self.source, self.target):
            delete_context(engine, replica.names, fence)
        with self.target.connect() as connection:
            now = _highest(connection, audit_tables)
        written = sum(now[name] - self._seen.get(name, 0) for name in now)
        self._seen = now
        return written

    def _wait(self, replica: Replica, fence: int) -> None:
        """Until the target applied the fence, and so, in commit order, all before it."""
        names = replica.names
        arrived = text(sql.context_arrived(names.context_schema, names.context_table))
        deadline = time.monotonic() + self.timeout
        with self.target.connect() as connection:
            while not connection.execute(arrived, {"id": fence}).scalar():
                connection.rollback()
                if time.monotonic() > deadline:
                    raise CdcError(
                        f"subscription {replica.subscription!r} did not apply the source's "
                        f"changes within {self.timeout} s; see 'sqlalchemy-postgresql-audit cdc "
                        "status' and the target's server log"
                    )
                time.sleep(POLL_SECONDS)


def _fence(source: Engine, replica: Replica) -> int:
    """Commit one empty context row, after everything committed before the call; its id."""
    names = replica.names
    insert = sql.insert_context(names.context_schema, names.context_table) + " RETURNING id"
    with source.begin() as connection:
        fence = connection.execute(text(insert), {"_audit_ctx_settings": "{}"}).scalar_one()
    return int(fence)


def delete_context(engine: Engine, names: CdcNames, upto: int) -> None:
    """Delete the context rows up to ``upto``: the consumer is past them, progress committed."""
    delete = text(sql.delete_context(names.context_schema, names.context_table))
    with engine.begin() as connection:
        connection.execute(delete, {"upto": upto})


def _audit_tables(metadata: MetaData) -> dict[str, Table]:
    return {
        spec.audit_table: table.info[AUDIT_TABLE_KEY]
        for table, spec in audited_tables(metadata)
        if spec.cdc
    }


def _highest(connection: Connection, audit_tables: dict[str, Table]) -> dict[str, int]:
    """The highest ``audit_id`` of each audit table (0 when empty or not there yet)."""
    highest: dict[str, int] = {}
    for name, table in audit_tables.items():
        try:
            with connection.begin_nested():
                value = connection.execute(select(func.max(table.c[AUDIT_ID]))).scalar()
        except DBAPIError:
            value = None
        highest[name] = int(value or 0)
    connection.rollback()
    return highest
