"""``cdc status``: how far behind the trail is, what the slot holds back, what went wrong.

The slot is the one thing that can lose changes for good: a slot invalidated because it held
more WAL than ``max_slot_wal_keep_size`` allows (``wal_status = 'lost'``) can never deliver the
changes it lost, so it is reported with how to recover, never as a mere lag.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine, MetaData, text

from ..declare.cdc import cdc_names
from ..render import cdc as sql

#: What to do about a lost slot.
RECOVER_LOST_SLOT = (
    "the slot is invalidated (wal_status 'lost'): the source removed WAL it still needed, so "
    "changes since its confirmed position never reached the trail.  Recover: drop the slot on "
    "the source (pg_drop_replication_slot), create a new one (sqlalchemy-postgresql-audit cdc "
    "create-slot, or install again), and record a baseline of each CDC table where the trail "
    "is written (sqlalchemy-postgresql-audit baseline) so the gap is visible in its history.  "
    "With a trail on another database (cdc run --target), first drop the subscription there "
    "(Consumer.drop) and re-seed the target's replica tables from the source while writes are "
    "paused"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CdcStatus:
    slot: str
    #: The source database asked about.
    database: str
    slot_exists: bool
    #: The database the slot decodes (slot names are the server's).
    slot_database: str | None = None
    active: bool = False
    wal_status: str | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    retained_bytes: int | None = None
    subscription: str | None = None
    subscription_enabled: bool | None = None
    apply_worker_pid: int | None = None
    apply_error_count: int | None = None
    sync_error_count: int | None = None
    #: A target database other than the source was asked about (design 1).
    target_given: bool = False

    @property
    def problems(self) -> tuple[str, ...]:
        found = []
        if not self.slot_exists:
            found.append(f"slot {self.slot!r} does not exist: CDC writes are not captured")
        elif self.slot_database != self.database:
            found.append(
                f"slot {self.slot!r} decodes database {self.slot_database!r}, not "
                f"{self.database!r}: CDC writes here are not captured"
            )
        elif self.wal_status == "lost":
            found.append(f"slot {self.slot!r}: {RECOVER_LOST_SLOT}")
        elif self.wal_status == "unreserved":
            found.append(
                f"slot {self.slot!r} holds more WAL than max_slot_wal_keep_size: it will be "
                "invalidated at the next checkpoint unless the consumer catches up"
            )
        if self.target_given and self.slot_exists and self.subscription is None:
            found.append(
                f"the target has no subscription {self.slot!r}: the trail is not being written "
                "there.  Start the consumer (sqlalchemy-postgresql-audit cdc run MODULE:METADATA "
                "--source URL --target URL)"
            )
        if self.subscription_enabled is False:
            found.append(f"subscription {self.subscription!r} is disabled")
        if self.apply_error_count:
            found.append(
                f"subscription {self.subscription!r}: {self.apply_error_count} apply errors "
                "(the messages are in the target's server log)"
            )
        return tuple(found)


def cdc_status(source: Engine, metadata: MetaData, target: Engine | None = None) -> CdcStatus:
    names = cdc_names(metadata)
    with source.connect() as connection:
        slot = connection.execute(text(sql.SLOT_STATUS), {"slot": names.slot}).first()
        database = str(connection.execute(text("SELECT pg_catalog.current_database()")).scalar())
    if slot is None:
        return CdcStatus(slot=names.slot, database=database, slot_exists=False)
    found = CdcStatus(
        slot=names.slot,
        database=database,
        slot_exists=True,
        slot_database=slot.database,
        active=bool(slot.active),
        wal_status=slot.wal_status,
        lag_bytes=None if slot.lag_bytes is None else int(slot.lag_bytes),
        lag_seconds=_seconds(slot.lag_seconds, slot.lag_bytes),
        retained_bytes=None if slot.retained_bytes is None else int(slot.retained_bytes),
    )
    if target is None or _identity(target) == _identity(source):
        return found
    found = replace(found, target_given=True)
    with target.connect() as connection:
        subscription = connection.execute(
            text(sql.SUBSCRIPTION_STATUS), {"subscription": names.slot}
        ).first()
        errors = None
        if (connection.dialect.server_version_info or (0,)) >= (15,):
            errors = connection.execute(
                text(sql.SUBSCRIPTION_ERRORS), {"subscription": names.slot}
            ).first()
    if subscription is None:
        return found
    return replace(
        found,
        subscription=names.slot,
        subscription_enabled=bool(subscription.enabled),
        apply_worker_pid=subscription.pid,
        apply_error_count=None if errors is None else int(errors.apply_error_count),
        sync_error_count=None if errors is None else int(errors.sync_error_count),
    )


#: Bound: ``slot``.  Who holds the slot: the server process reading it, and its client.
_SLOT_HOLDER = (
    "SELECT a.pid, a.backend_type, a.application_name, CAST(a.client_addr AS text) AS client "
    "FROM pg_catalog.pg_replication_slots s JOIN pg_catalog.pg_stat_activity a "
    "ON a.pid OPERATOR(pg_catalog.=) s.active_pid "
    "WHERE s.slot_name OPERATOR(pg_catalog.=) :slot"
)


def slot_holder(source: Engine, slot: str) -> str | None:
    """Who reads ``slot`` now, in words (``None``: nobody): a subscription's walsender names
    the subscription in its ``application_name``."""
    with source.connect() as connection:
        row = connection.execute(text(_SLOT_HOLDER), {"slot": slot}).first()
    if row is None:
        return None
    client = f" from {row.client}" if row.client else ""
    if row.backend_type == "walsender":
        return (
            f"a replication connection{client} (pid {row.pid}, application {row.application_name!r}"
            "; a subscription on another database reads the slot under its own name)"
        )
    return f"another session{client} (pid {row.pid}, application {row.application_name!r})"


def _identity(engine: Engine) -> tuple[object, ...]:
    """Which database ``engine`` reaches, whatever its URL says."""
    with engine.connect() as connection:
        return tuple(connection.execute(text(sql.DATABASE_IDENTITY)).one())


def _seconds(lag: Any, lag_bytes: Any) -> float | None:
    """The walsender's flush lag; none reported while idle, which is no lag when caught up."""
    if lag is not None:
        return float(lag)
    return 0.0 if lag_bytes is not None and int(lag_bytes) <= 0 else None
