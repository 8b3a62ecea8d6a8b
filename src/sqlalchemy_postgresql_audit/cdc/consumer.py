"""``Consumer``: writes the trail of the CDC tables, on this server or another.

- ``target`` another database (another server, or another database of the same server): design
  1, PostgreSQL captures.  The consumer sets up the replica and subscription (``.replica``) and
  watches it; PostgreSQL's apply worker and the library's triggers write the trail.
- ``target`` ``None`` or the source's own database: a decoder reads the slot and writes the
  trail in the same database, off the writer's transaction (``.decoder``).

``run_once()`` returns once everything committed on the source before the call is in the trail;
``run()`` repeats it until ``stop()``, waiting and trying again after an error that can pass
by itself (a server restarting: ``errors.is_transient``).  Each run records in the trail's
progress table whether it failed, and why, or when it caught up: ``cdc status`` reports it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from contextlib import AbstractContextManager
from types import TracebackType

from sqlalchemy import Engine, MetaData, create_engine, text
from sqlalchemy.engine import URL

from ..declare.cdc import cdc_names
from ..install.ddl import audited_tables
from ..install.planted import foreign_code, source_tables
from ..install.publication import ensure_slot
from ..render import cdc as sql
from .apply import Apply
from .claim import SlotClaim
from .decoder import Decoder
from .errors import CdcError, ConsumerArgumentError, SlotInUse, describe, is_transient, refusal
from .fence import delete_context
from .progress import record_run_caught_up, record_run_failed, refresh_run_caught_up
from .replica import Replica
from .status import slot_on_the_target
from .subscription_guard import refuse_unholdable

__all__ = ["CdcError", "Consumer", "create_slot"]

_log = logging.getLogger(__name__)

#: How long design 1's ``run_once`` waits for the subscription to apply the source's changes.
DEFAULT_TIMEOUT = 600.0
#: ``run``'s wait after a transient error: doubled after each one in a row, up to the cap (a
#: server restart takes seconds; a failover or an outage minutes, retried twice a minute).
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
#: How often, at most, a run that caught up is recorded (a small update of the progress row;
#: a run that finds nothing to record writes nothing): ``cdc status``'s lag in seconds when no
#: consumer runs is at most this much too high.
CAUGHT_UP_EVERY = 5.0


def _require_installed(source: Engine, metadata: MetaData) -> None:
    """Refuse to start on a source where CDC was not installed, saying what is missing."""
    names = cdc_names(metadata)
    query = text(sql.installed_parts(names.context_schema, names.context_table))
    with source.connect() as connection:
        found = connection.execute(
            query, {"slot": names.slot, "publication": names.publication}
        ).one()
    missing = [
        what
        for what, present in (
            (f"slot {names.slot!r}", found.slot),
            (f"publication {names.publication!r}", found.publication),
            (f"context table {names.context_table!r}", found.context_table),
        )
        if not present
    ]
    if missing:
        raise CdcError(
            f"change-data-capture is not installed in database {source.url.database!r}: no "
            f"{', no '.join(missing)}.  Install the CDC tables first (create_all, "
            "install_audit_triggers, or 'sqlalchemy-postgresql-audit install MODULE:METADATA "
            "--url URL'; an Alembic migration makes all but the slot: then "
            "'sqlalchemy-postgresql-audit cdc create-slot MODULE:METADATA --source URL')"
        )
    # The writers, the installer and this consumer write to them: code the library did not
    # make there would run as each (the consumer's role may not be the owner's, so any owner).
    with source.connect() as connection:
        problems = [foreign_code(table) for table in source_tables(connection, names)]
    for problem in problems:
        if problem is not None:
            raise CdcError(
                f"refusing to start: {problem}.  Drop what is not the library's (or the table, "
                "and install again)"
            )


def _check_arguments(metadata: MetaData, timeout: float) -> None:
    """Refuse at once what would fail later, and there less clearly: a ``timeout`` that is not
    a positive number of seconds (it becomes a lock timeout and a wait), and a MetaData that
    declares no CDC table (most likely the wrong one: it would be told CDC is not installed)."""
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ConsumerArgumentError(
            f"Consumer: timeout must be a positive, finite number of seconds, not {timeout!r}"
        )
    if not any(spec.cdc for _, spec in audited_tables(metadata)):
        raise ConsumerArgumentError(
            f"Consumer: the metadata declares no mode='cdc' table (it holds "
            f"{len(metadata.tables)} table(s)); pass the MetaData holding the tables whose "
            "audit.options say mode='cdc'"
        )


def create_slot(engine: Engine, metadata: MetaData) -> None:
    """Create the CDC slot of ``metadata`` on ``engine``'s database unless it exists, in a
    transaction of its own (for installs whose transaction already wrote); a failover slot
    when the naming convention ``audit.slot_failover`` is ``True`` (PostgreSQL 17+)."""
    tables = [table.name for table, spec in audited_tables(metadata) if spec.cdc]
    names = cdc_names(metadata)
    with engine.begin() as connection:
        ensure_slot(connection, names, tables)


class Consumer:
    """Writes the trail of ``metadata``'s CDC tables from ``source`` into ``target``."""

    def __init__(
        self,
        source: Engine | URL | str,
        target: Engine | URL | str | None = None,
        *,
        metadata: MetaData,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        _check_arguments(metadata, timeout)
        #: The engines this consumer made from URLs, which ``close()`` disposes of.
        self._owned: list[Engine] = []
        self.source = self._engine(source)
        self.target = None if target is None else self._engine(target)
        self.metadata = metadata
        self.timeout = timeout
        self._stop = threading.Event()
        self._apply: Apply | None = None
        self._decoder: Decoder | None = None
        self._claim: SlotClaim | None = None
        self._installed = False
        #: Whether this consumer made its progress row (then a run that caught up only
        #: refreshes it), and the error last recorded (so ``run`` does not count it twice).
        self._health_row = False
        self._recorded_error: BaseException | None = None

    def run_once(self) -> int:
        """Return the number of audit rows written into the trail since the previous call, once
        everything committed on the source before this call is in it.

        With a subscription (``subscribes``), PostgreSQL writes the trail also between calls and
        while no consumer runs; the first call of a ``Consumer`` counts from its own start, so
        changes applied earlier are in the trail but not in the number.

        Raises ``SlotInUse`` (a ``CdcError``) when another consumer runs on the same slot.
        A failure is recorded in the trail's progress table (``cdc status`` reports it), and
        cleared by the next run that succeeds."""
        began = time.monotonic()
        try:
            written = self._run_once()
        except Exception as error:
            self._record_failure(error)
            raise
        self._record_caught_up(began)
        return written

    def _run_once(self) -> int:
        if not self._installed:
            _require_installed(self.source, self.metadata)
            self._warn_of_a_slot_on_the_target()
            self._installed = True
        with self._claimed():
            if self._same_database():
                return self._decode_once()
            return self._replicate_once()

    def _warn_of_a_slot_on_the_target(self) -> None:
        """Design 1: a slot of this metadata's name on the target holds its WAL for ever;
        said at WARNING at the first run (``cdc status --target`` says it too)."""
        if self.target is None or self._same_database():
            return
        with self.target.connect() as connection:
            found = slot_on_the_target(connection, cdc_names(self.metadata).slot)
        if found is not None:
            _log.warning("change-data-capture consumer: %s", found)

    def run(self, interval: float = 1.0) -> None:
        """``run_once`` until ``stop()`` (for a worker thread), waiting ``interval`` seconds
        after a run that found nothing to write: a run that wrote goes on at once, or the
        wait would add to the lag of every change under a steady load.  The slot stays
        claimed for the whole run, so a second consumer is refused rather than let in
        between two rounds.

        A transient error (``errors.is_transient``: a lost connection, a server restarting,
        a ``CdcError`` marked ``transient``) is logged at WARNING, recorded, and the run
        tried again after a wait that doubles from ``FIRST_BACKOFF`` to ``MAX_BACKOFF``
        seconds (``stop()`` ends the wait at once); the claim is given back meanwhile and
        taken again, since a lost connection loses it.  While it recovers, ``SlotInUse`` is
        tried again too: after a network cut the server may keep this consumer's old session,
        and its claim, until it notices the client is gone.  Any other error ends ``run``: a
        server refusing the connection for good (no such database or role, a wrong password:
        ``errors.refusal``) as a ``CdcError`` saying so."""
        self._stop.clear()
        failures = 0
        while not self._stop.is_set():
            try:
                with self._claimed():
                    while not self._stop.is_set():
                        written = self.run_once()
                        failures = 0
                        if not written:
                            self._stop.wait(interval)
            except Exception as error:
                self._record_failure(error)
                refused = refusal(error)
                if refused is not None:
                    raise CdcError(
                        f"change-data-capture consumer of slot {cdc_names(self.metadata).slot!r}"
                        f" stops: {refused}, which waiting cannot mend; correct the URL, the "
                        f"role or the server's configuration ({describe(error)})"
                    ) from error
                if not (is_transient(error) or (failures and isinstance(error, SlotInUse))):
                    raise
                failures += 1
                wait = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (failures - 1))
                _log.warning(
                    "change-data-capture consumer of slot %r: run failed (%d in a row), "
                    "trying again in %.1f s: %s",
                    cdc_names(self.metadata).slot,
                    failures,
                    wait,
                    describe(error),
                )
                self._stop.wait(wait)

    def close(self) -> None:
        """Stop ``run`` and release the connections of the engines this consumer made from
        URLs (an engine the caller passed stays the caller's).  ``with Consumer(...) as
        consumer:`` calls it on the way out."""
        self.stop()
        for engine in self._owned:
            engine.dispose()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def subscribes(self) -> bool:
        """Design 1: a subscription on another database writes the trail, not this process."""
        return not self._same_database()

    def stop(self) -> None:
        """End ``run`` after its current round, or at once while it waits."""
        self._stop.set()

    def drop(self) -> None:
        """Design 1: drop the subscription on the target (the source's slot stays, holding WAL
        until it is dropped there or a subscription uses it again)."""
        if self.target is not None and not self._same_database():
            Replica(self.source, self.target, self.metadata).drop()

    def _record_failure(self, error: BaseException) -> None:
        """Record ``error`` where ``cdc status`` reads it, once; when the trail's database is
        what failed, the log is all there is."""
        if error is self._recorded_error:
            return
        self._recorded_error = error
        try:
            with self._trail().begin() as connection:
                record_run_failed(
                    connection, None, cdc_names(self.metadata).slot, describe(error)[:2000]
                )
        except Exception as unrecorded:
            _log.warning(
                "change-data-capture consumer of slot %r: could not record its error (%s): %s",
                cdc_names(self.metadata).slot,
                describe(unrecorded),
                describe(error),
            )

    def _record_caught_up(self, began: float) -> None:
        """Record that the trail held everything committed before ``began``: at once when a
        failure stands (which it clears, whichever process recorded it), else at most every
        ``CAUGHT_UP_EVERY`` seconds."""
        slot, elapsed = cdc_names(self.metadata).slot, time.monotonic() - began
        if self._health_row:  # one statement, one round trip: no transaction around it
            trail = self._trail().execution_options(isolation_level="AUTOCOMMIT")
            with trail.connect() as connection:
                refresh_run_caught_up(connection, None, slot, elapsed, CAUGHT_UP_EVERY)
            return
        with self._trail().begin() as connection:
            record_run_caught_up(connection, None, slot, elapsed)
        self._health_row = True

    def _trail(self) -> Engine:
        """The database holding the trail and its progress table."""
        return self.source if self.target is None else self.target

    def _engine(self, bind: Engine | URL | str) -> Engine:
        if isinstance(bind, Engine):
            return bind
        engine = create_engine(bind)
        self._owned.append(engine)
        return engine

    def _claimed(self) -> AbstractContextManager[None]:
        """One consumer per slot, whichever design (``.claim``); the decoder's own claim when
        it is the decoder, so the two are one."""
        if self._claim is None:
            if self._same_database():
                self._claim = self._the_decoder().claim
            else:
                self._claim = SlotClaim(self.source, cdc_names(self.metadata).slot)
        return self._claim.held()

    def _same_database(self) -> bool:
        if self.target is None:
            return True
        return _identity(self.source) == _identity(self.target)

    def _decode_once(self) -> int:
        """The decoder, on the slot and publications install made, into the source's own
        database; then the context rows it consumed are deleted (they are in the WAL it
        already read, and the context publication does not publish deletes)."""
        names = cdc_names(self.metadata)
        context = sql.last_context(names.context_schema, names.context_table)
        with self.source.connect() as connection:
            fence = connection.execute(text(context)).scalar()
        written = self._the_decoder().run_once()
        if fence is not None:
            delete_context(self.source, names, int(fence))
        return written

    def _the_decoder(self) -> Decoder:
        if self._decoder is None:
            names = cdc_names(self.metadata)
            self._decoder = Decoder(
                self.source,
                self.source,
                self.metadata,
                slot=names.slot,
                publication=names.publication,
                context_publication=names.context_publication,
                context_table=names.context_table,
            )
        return self._decoder

    def _replicate_once(self) -> int:
        assert self.target is not None
        # Before the wait, which could only time out: a subscription that a join's hold
        # disables, or that is disabled at a join, stops the trail for good.
        refuse_unholdable(self.source, self.target, cdc_names(self.metadata))
        if self._apply is None:
            self._apply = Apply(self.source, self.target, self.metadata, timeout=self.timeout)
        return self._apply.run_once()


def _identity(engine: Engine) -> tuple[object, ...]:
    """Which database ``engine`` reaches, whatever the URL says (``localhost`` or an address,
    a proxy): the server's start time and port, and the database; readable by any role."""
    with engine.connect() as connection:
        return tuple(connection.execute(text(sql.DATABASE_IDENTITY)).one())
