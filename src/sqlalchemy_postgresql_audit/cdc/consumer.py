"""``Consumer``: writes the trail of the CDC tables, on this server or another.

- ``target`` another database (another server, or another database of the same server): design
  1, PostgreSQL captures.  The consumer sets up the replica and subscription (``.replica``) and
  watches it; PostgreSQL's apply worker and the library's triggers write the trail.
- ``target`` ``None`` or the source's own database: a decoder reads the slot and writes the
  trail in the same database, off the writer's transaction (``.decoder``).

``run_once()`` returns once everything committed on the source before the call is in the trail;
``run()`` repeats it until ``stop()``.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager

from sqlalchemy import Engine, MetaData, create_engine, text
from sqlalchemy.engine import URL

from ..declare.cdc import cdc_names
from ..install.ddl import audited_tables
from ..install.publication import ensure_slot
from ..render import cdc as sql
from .apply import Apply
from .claim import SlotClaim
from .decoder import Decoder
from .errors import CdcError
from .fence import delete_context
from .replica import Replica

__all__ = ["CdcError", "Consumer", "create_slot"]


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
            "install_audit_triggers, an Alembic migration, or 'sqlalchemy-postgresql-audit "
            "install MODULE:METADATA --url URL')"
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
        timeout: float = 600.0,
    ) -> None:
        self.source = _engine(source)
        self.target = None if target is None else _engine(target)
        self.metadata = metadata
        self.timeout = timeout
        self._stop = threading.Event()
        self._apply: Apply | None = None
        self._decoder: Decoder | None = None
        self._claim: SlotClaim | None = None
        self._installed = False

    def run_once(self) -> int:
        """Return the number of changes written into the trail since the previous call, once
        everything committed on the source before this call is in it.

        With a subscription (``subscribes``), PostgreSQL writes the trail also between calls and
        while no consumer runs; the first call of a ``Consumer`` counts from its own start, so
        changes applied earlier are in the trail but not in the number.

        Raises ``SlotInUse`` (a ``CdcError``) when another consumer runs on the same slot."""
        if not self._installed:
            _require_installed(self.source, self.metadata)
            self._installed = True
        with self._claimed():
            if self._same_database():
                return self._decode_once()
            return self._replicate_once()

    def run(self, interval: float = 1.0) -> None:
        """``run_once`` until ``stop()`` (for a worker thread), waiting ``interval`` seconds
        after a run that found nothing to write: a run that wrote goes on at once, or the
        wait would add to the lag of every change under a steady load.  The slot stays
        claimed for the whole run, so a second consumer is refused rather than let in
        between two rounds."""
        self._stop.clear()
        with self._claimed():
            while not self._stop.is_set():
                if not self.run_once():
                    self._stop.wait(interval)

    @property
    def subscribes(self) -> bool:
        """Design 1: a subscription on another database writes the trail, not this process."""
        return not self._same_database()

    def stop(self) -> None:
        self._stop.set()

    def drop(self) -> None:
        """Design 1: drop the subscription on the target (the source's slot stays, holding WAL
        until it is dropped there or a subscription uses it again)."""
        if self.target is not None and not self._same_database():
            Replica(self.source, self.target, self.metadata).drop()

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
        if self._apply is None:
            self._apply = Apply(self.source, self.target, self.metadata, timeout=self.timeout)
        return self._apply.run_once()


def _engine(bind: Engine | URL | str) -> Engine:
    return bind if isinstance(bind, Engine) else create_engine(bind)


def _identity(engine: Engine) -> tuple[object, ...]:
    """Which database ``engine`` reaches, whatever the URL says (``localhost`` or an address,
    a proxy): the server's start time and port, and the database; readable by any role."""
    with engine.connect() as connection:
        return tuple(connection.execute(text(sql.DATABASE_IDENTITY)).one())
