"""Design 1: each run seeds the tables whose join holds the subscription.

A table published after the subscription exists holds the apply worker at the transaction
that published it (``render.cdc_joins``), from the install until a consumer with models that
declare it runs: no change of it, nor any later change of another table, is applied meanwhile,
so none is skipped.  The run refreshes the subscription (``.replica.Replica.refresh``), then,
for each join it finds not seeded whose table the subscription now applies, copies the
install's baseline into the replica and the trail and records the join seeded in one target
transaction (``.install_rows.seed_join``).  A consumer killed between the refresh and the seed
leaves the join waiting, and the next run seeds it: the step runs at every run, whether or not
that run refreshed.
"""

from __future__ import annotations

from sqlalchemy import Connection, Table, text

from ..declare.spec import AuditSpec
from ..render import cdc_joins as sql
from ..render.sql import name_text
from .install_rows import seed_join
from .joins import Join, pending, record_seeded
from .replica import Replica

_OID = text("SELECT CAST(pg_catalog.to_regclass(:table) AS oid)")


def seed_pending_joins(replica: Replica, *, passed: bool = False) -> int:
    """Seed the joins the target has not; returns how many versions were copied.  A join of a
    table this consumer's metadata does not declare, or that the subscription does not apply
    yet, is left waiting (``cdc status`` names it).

    ``passed``: the refresh just made the subscription apply the joins table itself (a source
    installed by an older release meanwhile), so the apply worker skipped these joins and went
    on: the install's rows are no longer the state its next change applies to, and the joins are
    only recorded, leaving the rows to ``.seed``'s copy.  So is the join of a table no longer
    on the source: nothing to copy, and nothing to wait for."""
    names = replica.names
    copied = 0
    with replica.source.connect() as source, replica.target.connect() as target:
        waiting = pending(source, target, names)
        target.rollback()
        if not waiting:
            return 0
        declared = {_oid(source, name_text(t.schema, t.name)): (t, s) for t, s in replica.pairs()}
        for join in waiting:
            oid = _oid(source, join.table_name)
            if passed or oid is None:
                record_seeded(target, names, join, 0)
                target.commit()
                continue
            pair = declared.get(oid)
            if pair is None or not _applied(target, replica, pair[0]):
                continue
            copied += _seed(source, target, replica, pair, join)
    return copied


def joins_subscribed(replica: Replica, refreshed: set[str]) -> bool:
    """Whether ``refreshed`` (``Replica.refresh``'s tables) holds the joins table."""
    joins = sql.joins_table(replica.names.context_table)
    return any(name.rsplit(".", 1)[-1].strip('"') == joins for name in refreshed)


def _seed(
    source: Connection,
    target: Connection,
    replica: Replica,
    pair: tuple[Table, AuditSpec],
    join: Join,
) -> int:
    table, spec = pair
    rows = seed_join(source, target, table, spec, join, names=replica.names)
    target.commit()
    source.rollback()
    return rows


def _oid(connection: Connection, table: str) -> int | None:
    oid = connection.execute(_OID, {"table": table}).scalar()
    return None if oid is None else int(oid)


def _applied(target: Connection, replica: Replica, table: Table) -> bool:
    found = target.execute(
        text(sql.SUBSCRIBES),
        {"subscription": replica.subscription, "table": name_text(table.schema, table.name)},
    ).scalar()
    target.rollback()
    return bool(found)
