"""``cdc status``: how far behind the trail is, what the slot holds back, what went wrong.

The slot is the one thing that can lose changes for good: a slot invalidated because it held
more WAL than ``max_slot_wal_keep_size`` allows (``wal_status = 'lost'``) can never deliver the
changes it lost, so it is reported with how to recover, never as a mere lag.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, text
from sqlalchemy.exc import DBAPIError

from ..declare.cdc import cdc_names
from ..declare.naming import SLOT_FAILOVER_KEY
from ..install.ddl import audited_tables
from ..install.publication import FAILOVER_VERSION, context_drifts
from ..render import cdc as sql
from .apply_errors import apply_errors_since_success, missing_row_conflicts
from .claim import claim_holder
from .errors import INSUFFICIENT_PRIVILEGE, sqlstate
from .joins import pending
from .progress import Health, load_health
from .subscription_guard import (
    disable_on_error_problem,
    disabled_at_join_problem,
    subscription_settings,
)

#: How long the trail may stand still while the slot holds WAL it has not confirmed before
#: ``cdc status`` calls the consumer stalled.  A running consumer moves it every few seconds
#: (a batch written, or a caught-up run recorded every ``consumer.CAUGHT_UP_EVERY`` s), and
#: design 1's ``run_once`` gives up after its default timeout, also 10 minutes; a consumer
#: started by cron less often than this is reported too, rightly: its trail is that far behind.
STALLED_AFTER_SECONDS = 600.0

#: What to do about a lost slot, in either design.
RECOVER_LOST_SLOT = (
    "the slot is invalidated (wal_status 'lost'): the source removed WAL it still needed, so "
    "changes since its confirmed position never reached the trail, and never will.  Recover: "
    "stop the consumer and, with a subscription (design 1), the writers of the CDC tables "
    "until the new consumer's first run has ended (a change made before that run is applied "
    "onto the old replica: an UPDATE of a row inserted in the gap is skipped, shown only as "
    "its B version); with a subscription, drop it on the "
    "target "
    "(Consumer.drop); drop the slot on the source (pg_drop_replication_slot); install again "
    "(install_audit_triggers or cdc.create_slot creates a new slot); with the decoder "
    "(design 2), delete its progress row of this slot (table audit_cdc_progress), which it "
    "otherwise refuses as a gap; with a subscription, the consumer's next run (its new "
    "subscription) compares each replica table with the source by key and values and records "
    "the gap's result: rows changed or inserted in the gap as B versions, rows deleted in it "
    "as D versions with the values the replica held (it logs how many), so the history shows "
    "the gap; with the decoder, record a baseline of each CDC table (record_baseline), so the "
    "gap is visible in its history.  Raise max_slot_wal_keep_size, or watch 'cdc status', so "
    "it does not happen again"
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
    #: Whether an apply error disables the subscription (PostgreSQL 15+): a join's hold then
    #: stops the trail (``.subscription_guard``).
    disable_on_error: bool | None = None
    apply_worker_pid: int | None = None
    apply_error_count: int | None = None
    sync_error_count: int | None = None
    #: A target database other than the source was asked about (design 1).
    target_given: bool = False
    #: The source server's version (``server_version``).
    server_version: str | None = None
    #: Whether the naming convention asks for a failover slot (``audit.slot_failover``).
    failover_wanted: bool = False
    #: Whether the slot is a failover slot (``None``: PostgreSQL before 17 has none).
    failover: bool | None = None
    #: The source's ``synchronized_standby_slots`` (17+): the standbys' physical slots that
    #: logical consumers wait for, so the trail never gets ahead of a standby.
    synchronized_standby_slots: str | None = None
    #: Whether the subscription (design 1, PostgreSQL 17+ target) keeps the slot a failover one.
    subscription_failover: bool | None = None
    #: Design 1: what the target's subscription statistics report (``.apply_errors``).
    replica_problems: tuple[str, ...] = ()
    #: Design 1: tables that joined CDC and whose replica the consumer has not seeded yet: the
    #: subscription is held at the first one's join (``.join_seed``), on purpose.
    waiting_joins: tuple[str, ...] = ()
    #: The consumer's last error, of the runs that failed in a row since one succeeded.
    last_error: str | None = None
    last_error_at: datetime | None = None
    #: How many of the consumer's runs in a row failed.
    failures: int | None = None
    #: Seconds since the trail last moved (a batch written, or a run that caught up).
    idle_seconds: float | None = None
    #: Whether a consumer runs on the slot, and which (it holds the slot's claim, ``.claim``,
    #: in either design; ``active`` says only whether a walsender reads the slot, which the
    #: decoder's SQL reads never make true).
    consumer: str = "not running"
    #: Whether the metadata declares a CDC table: a slot of a metadata that declares none is
    #: a leftover holding WAL (``leftover_slot``).
    declares_cdc: bool = True
    #: How the context publication fails to carry the request context of writes, taken out or
    #: narrowed by hand (``install.publication.context_drifts``): the trail records none.
    context_problems: tuple[str, ...] = ()

    @property
    def problems(self) -> tuple[str, ...]:
        found = []
        if not self.declares_cdc:
            if self.slot_exists and self.slot_database == self.database:
                found.append(_leftover(self.slot, self.retained_bytes))
            return (*found, *self.replica_problems)
        found += self.context_problems
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
        if self.disable_on_error and self.subscription is not None:
            enabled = bool(self.subscription_enabled)
            found.append(disable_on_error_problem(self.subscription, enabled=enabled))
        elif self.subscription_enabled is False and self.waiting_joins:
            assert self.subscription is not None
            found.append(disabled_at_join_problem(self.subscription, self.waiting_joins))
        elif self.subscription_enabled is False:
            found.append(f"subscription {self.subscription!r} is disabled")
        elif (
            self.subscription_enabled
            and self.apply_worker_pid is None
            and not self.waiting_joins
            and not self.apply_error_count
        ):
            # After an apply error the worker is gone until its retry: that is the error's
            # problem (below), not a lack of worker slots.
            found.append(
                f"subscription {self.subscription!r} is enabled but has no apply worker: "
                "nothing reaches the trail.  When it lasts, the target server is out of "
                "logical replication worker slots (see the WARNING in its log): raise "
                "max_logical_replication_workers and max_worker_processes, then restart it"
            )
        if self.waiting_joins:
            if self.subscription_enabled and not self.disable_on_error:  # else: said above
                found.append(
                    f"subscription {self.subscription!r} is waiting for the consumer to seed "
                    f"{', '.join(self.waiting_joins)}: the table joined change-data-capture, "
                    "and the subscription applies no later change until its rows are in the "
                    "target's replica (none is lost meanwhile).  Run the consumer with models "
                    "that declare it (sqlalchemy-postgresql-audit cdc run)"
                )
        elif self.apply_error_count:
            found.append(
                f"subscription {self.subscription!r}: {self.apply_error_count} apply errors "
                "since the consumer's last successful run (the messages are in the target's "
                "server log); the next run that succeeds clears this, or acknowledge them with "
                "pg_stat_reset_subscription_stats (on the target, given the subscription's oid "
                "in pg_subscription)"
            )
        if self.last_error is not None:
            found.append(
                f"the consumer of slot {self.slot!r} failed {self.failures} time(s) in a row, "
                f"last at {self.last_error_at}: {self.last_error}"
            )
        elif self._stalled():
            found.append(
                f"the trail of slot {self.slot!r} has not moved for {self.idle_seconds:.0f} s "
                f"while the slot holds {self.lag_bytes} bytes of WAL it has not consumed: no "
                "consumer is running, or it is stuck (start one: sqlalchemy-postgresql-audit "
                "cdc run MODULE:METADATA --source URL)"
            )
        if self.slot_exists and self.slot_database == self.database:
            found += self._failover_problems()
        return (*found, *self.replica_problems)

    def _stalled(self) -> bool:
        """No reader on the slot, WAL waiting, and the trail still for a while.  (A slot read
        by a subscription is active; the decoder holds its slot only while it peeks.)"""
        return (
            not self.active
            and bool(self.lag_bytes)
            and self.idle_seconds is not None
            and self.idle_seconds > STALLED_AFTER_SECONDS
        )

    def _failover_problems(self) -> list[str]:
        if self.failover_wanted and self.failover is None:
            return [
                f"naming convention {SLOT_FAILOVER_KEY!r} asks for a failover slot, which "
                f"PostgreSQL makes from version 17 on; this server runs {self.server_version}"
            ]
        if self.failover_wanted and not self.failover:
            return [
                f"slot {self.slot!r} is not a failover slot, though {SLOT_FAILOVER_KEY!r} asks "
                "for one: after a switchover to a standby the trail stops.  Drop the slot "
                "while the consumer is stopped and install again (a new slot: record a "
                "baseline), or with a subscription ALTER SUBSCRIPTION ... DISABLE, SET "
                "(failover = true), ENABLE"
            ]
        if self.failover and not self.synchronized_standby_slots:
            return [
                f"slot {self.slot!r} is a failover slot but synchronized_standby_slots is "
                "empty on the source: the consumer may receive changes a standby has not, and "
                "after a failover the trail would hold transactions the new primary lost.  "
                "Name the standbys' physical slots in synchronized_standby_slots"
            ]
        return []


def leftover_slot(connection: Connection, metadata: MetaData) -> str | None:
    """The problem of a slot named by ``metadata``'s ``audit.slot`` that exists for this
    database though ``metadata`` declares no CDC table (the last one left CDC): nothing reads
    it, and it keeps every byte of WAL written since, until the disk fills or
    ``max_slot_wal_keep_size`` invalidates it.  ``None`` otherwise."""
    if _declares_cdc(metadata):
        return None
    slot = cdc_names(metadata).slot
    found = connection.execute(text(sql.SLOT_STATUS), {"slot": slot}).first()
    if found is None or not found.here:
        return None
    return _leftover(slot, None if found.retained_bytes is None else int(found.retained_bytes))


def slot_on_the_target(target: Connection, slot: str) -> str | None:
    """Design 1: the problem of a slot of the metadata's name for the TARGET database (the
    models installed there too, ``create_all`` on both): no consumer reads it, and it keeps
    the target's WAL for ever.  The consumer makes on the target all it needs, never a slot.
    ``None`` when there is none."""
    found = target.execute(text(sql.SLOT_STATUS), {"slot": slot}).first()
    if found is None or not found.here:
        return None
    database = target.execute(text("SELECT pg_catalog.current_database()")).scalar()
    return (
        f"slot {slot!r} exists in the target database {database!r} too (the models were "
        "installed there as well: create_all or install on the target): nothing consumes it, "
        f"and it retains {found.retained_bytes} bytes of the target's WAL, growing with every "
        "write there, until the disk fills or max_slot_wal_keep_size invalidates it.  The "
        "consumer creates on the target what it needs; drop it there: "
        f"SELECT pg_drop_replication_slot('{slot}')"
    )


def _declares_cdc(metadata: MetaData) -> bool:
    return any(spec.cdc for _, spec in audited_tables(metadata))


def _leftover(slot: str, retained_bytes: int | None) -> str:
    return (
        f"slot {slot!r} exists, but the metadata declares no mode='cdc' table: nothing "
        f"consumes it, and it retains {retained_bytes} bytes of WAL, growing with every write, "
        "until the disk fills or max_slot_wal_keep_size invalidates it.  Once the trail holds "
        "what you need (with a subscription, drop it first: Consumer.drop), drop the slot: "
        f"SELECT pg_drop_replication_slot('{slot}')"
    )


def cdc_status(source: Engine, metadata: MetaData, target: Engine | None = None) -> CdcStatus:
    names = cdc_names(metadata)
    declares = _declares_cdc(metadata)
    with source.connect() as connection:
        slot = connection.execute(text(sql.SLOT_STATUS), {"slot": names.slot}).first()
        database = str(connection.execute(text("SELECT pg_catalog.current_database()")).scalar())
        holder = claim_holder(connection, names.slot)
        consumer = "not running" if holder is None else f"running: {holder}"
        number, version = connection.execute(text(sql.SERVER_VERSION)).one()
        context = tuple(context_drifts(connection, names)) if declares and slot is not None else ()
        failover = None
        if slot is not None and int(number) >= FAILOVER_VERSION:
            failover = connection.execute(text(sql.SLOT_FAILOVER), {"slot": names.slot}).first()
    if slot is None:
        missing = CdcStatus(
            slot=names.slot,
            database=database,
            slot_exists=False,
            server_version=version,
            failover_wanted=names.failover,
            consumer=consumer,
            declares_cdc=declares,
        )
        return _with_health(missing, _health(target or source, names.slot))
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
        server_version=version,
        failover_wanted=names.failover,
        failover=None if failover is None else bool(failover.failover),
        synchronized_standby_slots=None if failover is None else failover.standby_slots,
        consumer=consumer,
        declares_cdc=declares,
        context_problems=context,
    )
    if target is None or _identity(target) == _identity(source):
        health = _health(source, names.slot)
        found = _with_health(found, health)
        if found.lag_seconds is None and health is not None and found.lag_bytes:
            # No walsender to ask (the decoder reads with SQL calls, or none runs): every
            # change missing from the trail came after the last run that caught up began.
            found = replace(found, lag_seconds=health.behind_seconds)
        return found
    found = replace(_with_health(found, _health(target, names.slot)), target_given=True)
    with target.connect() as connection:
        subscription = connection.execute(
            text(sql.SUBSCRIPTION_STATUS), {"subscription": names.slot}
        ).first()
        target_version = connection.dialect.server_version_info or (0,)
        errors = subscription_failover = None
        if target_version >= (15,):
            errors = connection.execute(
                text(sql.SUBSCRIPTION_ERRORS), {"subscription": names.slot}
            ).first()
        if target_version >= (17,):
            subscription_failover = connection.execute(
                text(sql.SUBSCRIPTION_FAILOVER), {"subscription": names.slot}
            ).scalar()
        settings = subscription_settings(connection, names.slot)
        replica_problems = missing_row_conflicts(connection, names.slot)
        left_on_target = slot_on_the_target(connection, names.slot)
        if left_on_target is not None:
            replica_problems = (left_on_target, *replica_problems)
        recent = apply_errors_since_success(connection, names.context_schema, names.slot)
        with source.connect() as on_source:
            waiting = pending(on_source, connection, names)
    if subscription is None:
        return replace(found, replica_problems=(left_on_target,) if left_on_target else ())
    return replace(
        found,
        subscription=names.slot,
        subscription_enabled=bool(subscription.enabled),
        disable_on_error=None if settings is None else bool(settings.disable_on_error),
        apply_worker_pid=subscription.pid,
        apply_error_count=recent,
        sync_error_count=None if errors is None else int(errors.sync_error_count),
        subscription_failover=subscription_failover,
        replica_problems=replica_problems,
        waiting_joins=tuple(dict.fromkeys(join.table_name for join in waiting)),
    )


def _health(engine: Engine, slot: str) -> Health | None:
    """What the consumer recorded in the trail's progress table; nothing when a role that may
    not read that table (only its owner may) asks."""
    with engine.connect() as connection:
        try:
            return load_health(connection, None, slot)
        except DBAPIError as error:
            if sqlstate(error) != INSUFFICIENT_PRIVILEGE:
                raise
            return None


def _with_health(found: CdcStatus, health: Health | None) -> CdcStatus:
    if health is None:
        return found
    return replace(
        found,
        last_error=health.last_error,
        last_error_at=health.last_error_at,
        failures=health.failures,
        idle_seconds=health.idle_seconds,
    )


def _identity(engine: Engine) -> tuple[object, ...]:
    """Which database ``engine`` reaches, whatever its URL says."""
    with engine.connect() as connection:
        return tuple(connection.execute(text(sql.DATABASE_IDENTITY)).one())


def _seconds(lag: Any, lag_bytes: Any) -> float | None:
    """The walsender's flush lag; none reported while idle, which is no lag when caught up."""
    if lag is not None:
        return float(lag)
    return 0.0 if lag_bytes is not None and int(lag_bytes) <= 0 else None
