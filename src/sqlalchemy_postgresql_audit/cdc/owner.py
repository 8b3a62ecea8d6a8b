"""Design 1: one target database holds the trail of one source database.

Two sources subscribed into one target would share its replica, audit and context tables:
their keys collide in the replica (the apply worker then stops at every retry), their context
rows' ids collide, each consumer deletes the other's context rows, and the trails mix where keys
do not collide, with nothing telling one source's versions from the other's.  So the target
records which source it belongs to (the source cluster's system identifier and the database's
name, in ``audit_cdc_source`` next to the context table) and a consumer of another source is
refused, naming both.  The claim covers the whole target database: the claim tables of every
schema are read, since consumers whose context tables live in different schemas (another
``MetaData.schema``) may still feed the same replica and audit tables.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

from ..declare.cdc import CdcNames
from ..render import cdc_replica as sql
from .errors import CdcError


def claim_target(source: Engine, target: Connection, names: CdcNames) -> None:
    """Record ``source`` as the target's source, or refuse when another one is recorded (its
    claim table made by the caller, ``replica.Replica.prepare``, with the others it checks)."""
    with source.connect() as connection:
        identity = connection.execute(text(sql.SOURCE_IDENTITY)).one()
    schema = names.context_schema
    claims = target.execute(text(sql.CLAIM_SCHEMAS), {"table": sql.SOURCE_TABLE}).scalars()
    recorded = [
        row for claim in claims for row in target.execute(text(sql.recorded_sources(claim)))
    ]
    others = [r for r in recorded if tuple(r) != tuple(identity)]
    if others:
        other = others[0]
        raise CdcError(
            f"target database {target.engine.url.database!r} holds the trail of database "
            f"{other.database!r} (system {other.system_identifier}), not of this consumer's "
            f"source, database {identity.database!r} (system {identity.system_identifier}): "
            "two sources in one target would share its replica, audit and context tables and "
            "mix their trails.  Use another database as this source's target"
        )
    target.execute(
        text(sql.claim_source(schema)),
        {"system_identifier": identity.system_identifier, "database": identity.database},
    )


def refuse_slot_read_elsewhere(source: Engine, target: Connection, names: CdcNames) -> None:
    """Before a target subscribes to the slot, unless it reads it already (its record of the
    slot, kept from its subscription's creation until ``Consumer.drop()``): refuse a slot
    something else reads, or has read.  A second target on one slot is not refused by
    PostgreSQL: its subscription waits while the first streams, takes the slot whenever the
    first is down, and each trail silently lacks what the other got."""
    recorded = text(sql.slot_recorded(names.context_schema))
    if target.execute(recorded, {"slot": names.slot}).scalar():
        return
    with source.connect() as connection:
        found = connection.execute(text(sql.SLOT_READ), {"slot": names.slot}).first()
    if found is None or (found.active_pid is None and not found.decoded):
        return
    now = (
        f"is streamed now (walsender pid {found.active_pid})"
        if found.active_pid is not None
        else f"has been read before ({found.decoded} transactions decoded)"
    )
    raise CdcError(
        f"slot {names.slot!r} of database {source.url.database!r} {now}, by another "
        f"subscription or consumer, and target database {target.engine.url.database!r} does "
        "not read it: two readers of one slot split the trail between them, each "
        "missing what the other got.  Run the consumer against the target that holds the "
        "trail; to move the trail here, drop that subscription (Consumer.drop() with the old "
        "target), then drop the slot and create it again (cdc create-slot): this target then "
        "starts from the source's rows"
    )
