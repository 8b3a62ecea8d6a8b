"""Design 1's watch: the subscription applies and the target's triggers write the trail; this
module tells when they have done so.

``run_once`` commits an empty context row (a fence) on the source and waits until the target
has applied it, which in commit order means everything committed before it (``.fence``);
reconciles the replica with the source where the source changed outside the stream
(``.seed``); then it deletes the context rows up to its fences on both sides and counts the
audit rows written meanwhile.  When the apply worker fails while it waits, and the source lost
rows outside the stream, the stale-row replacement is switched on until the comparison ran
(``.stale``).
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, MetaData, Table, func, select, text

from ..declare.audit_table import AUDIT_TABLE_KEY
from ..declare.spec import AUDIT_ID
from ..install.ddl import audited_tables
from ..render import cdc_replica as replica_sql
from ..render.sql import name_text
from .apply_errors import ApplyFailed, acknowledge_apply_errors
from .fence import commit_fence, delete_context, wait_for
from .join_seed import joins_subscribed, seed_pending_joins
from .replica import Replica
from .seed import seed_replicas
from .stale import changed_outside_the_stream, start_replacing, stop_replacing


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
        #: A new subscription: every table is compared at the next seed.
        self._compare_all = False
        #: Tables refreshed into the subscription since the last seed: its apply worker skipped
        #: their changes until then (tables published before the joins existed, or joins it
        #: went past), so each is compared at the next seed; the other tables are not.
        self._refreshed: set[str] = set()
        #: A new subscription: the stream may have lost changes (a lost slot's gap).
        self._after_gap = False

    def run_once(self) -> int:
        """The audit rows written since the previous call, once everything committed on the
        source before this call is in the trail."""
        audit_tables = _audit_tables(self.metadata)
        if self._replica is None:
            replica = Replica(self.source, self.target, self.metadata)
            with self.target.connect() as connection:
                before = _highest(connection, audit_tables)
            # A new subscription (again, after a lost slot) may have missed rows of any table;
            # so may one whose consumer was killed before its first comparison.
            new = replica.prepare()
            self._compare_all = self._after_gap = new or replica.first_comparison_pending()
            if new:
                self._seen = before
            self._replica = replica
        replica = self._replica
        refreshed = replica.refresh()
        self._refreshed |= refreshed
        with self.target.connect() as connection:
            if self._seen is None:
                self._seen = _highest(connection, audit_tables)
        # Before the fence: the subscription is held at a join until it is seeded.
        seed_pending_joins(replica, passed=joins_subscribed(replica, refreshed))
        fence = commit_fence(self.source, replica.names)
        # A new subscription's gap may have deleted keys that come back in the stream.
        replacing: set[str] | None = None if self._after_gap else set()
        if replacing is None:
            start_replacing(replica)
        try:
            try:
                wait_for(replica, fence, self.timeout)
            except ApplyFailed:
                changed = changed_outside_the_stream(replica)
                if replacing is None or not changed:
                    raise
                replacing = changed
                start_replacing(replica, changed)  # the worker's next try replaces the row
                wait_for(replica, fence, self.timeout)
            seeded = seed_replicas(
                replica,
                self.timeout,
                compare_all=self._compare_all,
                refreshed=self._refreshed,
                after_gap=self._after_gap,
            )
        finally:
            if replacing is None or replacing:
                stop_replacing(replica, replacing)
        if self._after_gap:
            replica.first_comparison_done()
        self._compare_all = self._after_gap = False
        self._refreshed = set()
        for engine in (self.source, self.target):
            delete_context(engine, replica.names, max(fence.id, seeded))
        with self.target.begin() as connection:
            acknowledge_apply_errors(connection, replica.names.context_schema, replica.subscription)
        with self.target.connect() as connection:
            now = _highest(connection, audit_tables)
            written = _written_since(connection, audit_tables, self._seen, now)
        self._seen = now
        return written


def _audit_tables(metadata: MetaData) -> dict[str, Table]:
    return {
        spec.audit_table: table.info[AUDIT_TABLE_KEY]
        for table, spec in audited_tables(metadata)
        if spec.cdc
    }


def _highest(connection: Connection, audit_tables: dict[str, Table]) -> dict[str, int]:
    """The highest ``audit_id`` of each audit table (0 when empty or not there yet; a table
    not there yet is not probed, which would log an error in the target's server log)."""
    names = {name: name_text(table.schema, table.name) for name, table in audit_tables.items()}
    existing = set(
        connection.execute(text(replica_sql.EXISTING), {"names": list(names.values())}).scalars()
    )
    highest: dict[str, int] = {}
    for name, table in audit_tables.items():
        value = None
        if names[name] in existing:
            value = connection.execute(select(func.max(table.c[AUDIT_ID]))).scalar()
        highest[name] = int(value or 0)
    connection.rollback()
    return highest


def _written_since(
    connection: Connection,
    audit_tables: dict[str, Table],
    seen: dict[str, int],
    now: dict[str, int],
) -> int:
    """The audit rows between ``seen`` and ``now`` (highest ids): counted, not subtracted, as
    a replaced stale row's version takes an id and is dropped (``render.cdc_stale``)."""
    written = 0
    for name, table in audit_tables.items():
        low, high = seen.get(name, 0), now[name]
        if high > low:
            column = table.c[AUDIT_ID]
            query = select(func.count()).where(column > low, column <= high)
            written += int(connection.execute(query).scalar_one())
    connection.rollback()
    return written
