"""The change-data-capture decoder: reads a logical slot (``pgoutput``) and writes the typed
audit trail itself, off the writers' transactions, exactly once and in commit order.

One batch: peek at the slot (``pg_logical_slot_peek_binary_changes``, read through COPY
binary), turn each change into a line of COPY text (pgoutput's values are the types' text
output, which COPY reads back unchanged), COPY the lines into the audit tables and record the
progress in the same target transaction, commit, and only then advance the slot.  A decoder
killed anywhere re-reads from the slot's position and skips what the progress row says is
written; ``audit_id`` follows commit order because one writer appends in commit order.

``audit_operation_timestamp`` is the commit time from the WAL's Begin message, so in this mode
"the state at t" is commit-exact.  UPDATE and DELETE need the old row: the WAL's, for a table
with ``REPLICA IDENTITY FULL``, else the trail's previous version (``.previous``; see
``docs/cdc.md`` for the trade).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

from sqlalchemy import Connection, Engine, MetaData, text
from sqlalchemy.exc import DBAPIError

from ..declare.naming import PUBLICATION_KEY, SLOT_KEY
from ..declare.spec import AuditSpec
from ..errors import AuditError
from ..install.ddl import audited_tables
from ..install.resolve import resolve_specs
from ..render.cdc import SLOT_STATE
from ..render.cdc_decoder import (
    ADVANCE,
    CONFIRMED,
    FLUSH_POSITION,
    LOCK_SLOT,
    LOG_SNAPSHOT,
    OUTPUT_SETTINGS,
    PEEK,
    PRESENT_COLUMNS,
    PROGRESS_TABLE,
    PUBLICATIONS_OF_TABLE,
    RESTART_LAG,
    TABLE_COLUMNS,
    UNLOCK_SLOT,
    WAL_POSITION,
    present_rows,
)
from ..render.cdc_joins import joins_table
from ..render.cdc_locks import SLOT_READER
from ..render.sql import name_text
from .changes import DecoderError, Entry, any_key_moved, audit_rows, wanted_keys
from .claim import SlotClaim
from .context_check import ContextCheck, is_bad_input
from .copy import copy_in, copy_out, copy_out_to
from .errors import INSUFFICIENT_PRIVILEGE, CdcError, SlotInUse, sqlstate
from .key_moves import move_of, writes_k
from .pgoutput import (
    Begin,
    Change,
    Commit,
    Relation,
    Truncate,
    commit_datetime,
    copy_binary_rows,
    format_lsn,
    parse_lsn,
    parse_message,
    publication_names,
)
from .previous import KEPT, PreviousVersions
from .progress import (
    Progress,
    ensure_progress_table,
    keep_private,
    load_progress,
    save_progress,
)
from .rows import Context, TablePlan
from .status import RECOVER_LOST_SLOT

log = logging.getLogger(__name__)

#: The table a writer's transaction inserts its context into (published insert-only).
CONTEXT_TABLE = "audit_cdc_context"


class UndeclaredTable(CdcError):
    """A published table the metadata does not declare: a deploy is about to (transient)."""

    transient = True

    def __init__(self, table: str, problem: str) -> None:
        self.table = table
        super().__init__(problem)


class _Messages:
    """The messages of one peek, parsed out of its COPY stream each time they are iterated
    (never all held as objects of their own: the stream can be as large as a transaction).
    The stream is kept in memory up to ``SPOOL_BYTES``, beyond that in a temporary file."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        #: How many there are, once iterated to the end.
        self.count = 0

    def __iter__(self) -> Iterator[bytes]:
        count = 0
        for message in copy_binary_rows(self.stream):
            count += 1
            yield message
        self.count = count


@dataclass(frozen=True, slots=True, kw_only=True)
class _Read:
    """One peek at the slot: its messages, and where the slot and the read stood."""

    messages: _Messages
    specs: dict[tuple[str, str], AuditSpec]
    #: The WAL flushed when the run began: the read ends there when ``finished``.
    upto: int
    #: The newest full transaction id when the run began (to widen the WAL's 32-bit xids).
    xmax: int
    #: The slot's confirmed position before the read.
    confirmed: int
    #: How many messages the read asked for at most (it ends at a transaction's end after).
    limit: int

    @property
    def finished(self) -> bool:
        """Whether the read reached ``upto`` (known once its messages are iterated)."""
        return self.messages.count < self.limit


@dataclass(slots=True)
class _Trail:
    """Lines waiting for COPY, by audit table and column list, in the order they came."""

    #: By COPY statement, which names the audit table and the columns.
    segments: dict[str, list[bytes]] = field(default_factory=dict)
    changes: int = 0
    #: How many bytes the lines hold.
    size: int = 0

    def add(self, plan: TablePlan, line: bytes) -> None:
        self.segments.setdefault(plan.copy_sql, []).append(line)
        self.size += len(line)


class Decoder:
    """Write the audit trail of ``metadata``'s audited tables from the slot ``slot``.

    ``source`` is where the slot lives; ``target`` holds the audit tables and the progress
    table (``audit_cdc_progress``, created when missing).  ``publication`` publishes the audited
    tables; ``context_publication`` (optional) publishes the context table (named
    ``context_table``) insert-only.
    """

    def __init__(
        self,
        source: Engine,
        target: Engine,
        metadata: MetaData,
        *,
        slot: str,
        publication: str,
        context_publication: str | None = None,
        batch_changes: int = 50_000,
        progress_schema: str | None = None,
        context_table: str = CONTEXT_TABLE,
        batch_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        if not slot or not publication:
            raise AuditError("Decoder: slot and publication must be named")
        for name, value in (("batch_changes", batch_changes), ("batch_bytes", batch_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AuditError(f"Decoder: {name} must be a positive int, got {value!r}")
        self.source, self.target, self.metadata = source, target, metadata
        self.slot = slot
        self._publication_names = [p for p in (publication, context_publication) if p]
        #: The publications as pgoutput's option reads them (quoted identifiers).
        self.publications = publication_names(self._publication_names)
        self.batch_changes = batch_changes
        #: How many bytes of audit rows are written in one target transaction at most (a
        #: transaction larger than that is written in parts, each recording its position).
        self.batch_bytes = batch_bytes
        self.progress_schema = progress_schema
        self.context_table = context_table
        self._joins_table = joins_table(context_table)
        self._specs: dict[tuple[str, str], AuditSpec] | None = None
        self._plans: dict[int, TablePlan | None] = {}
        self._relations: dict[int, Relation] = {}
        #: Relations that are the context table (looked up for every change).
        self._context_oids: set[int] = set()
        #: Relations that are design 1's joins table (``render.cdc_joins``), in the context
        #: publication: nothing to record here.
        self._join_oids: set[int] = set()
        self._previous = PreviousVersions()
        self._progress_table_checked = False
        self._log_snapshots = True
        #: One decoder per slot (``.claim``): taken by ``run_once`` and ``run``.
        self.claim = SlotClaim(source, slot)
        #: Audit rows written so far (a batch written again after a failed COPY counts once).
        self._flushed = 0
        #: When this decoder last recorded its progress (``time.monotonic``).
        self._recorded_at = -math.inf
        #: Set while a batch whose COPY failed on bad input is written again.
        self._context_check: ContextCheck | None = None

    # -- public -------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Write every change committed before the call; return how many audit rows were
        written (a change not recorded, by ``operations`` or ``skip_unchanged``, counts none;
        a key change recorded as ``K`` and ``U``, two), as design 1 counts.

        Raises ``SlotInUse`` when another consumer holds the slot."""
        with self.claim.held():
            with self.source.connect() as source:
                upto, xmax = source.exec_driver_sql(WAL_POSITION).one()
            total = 0
            while True:
                written, finished = self._batch(upto, int(xmax))
                total += written
                if finished:
                    return total

    def run(self, stop_event: threading.Event | None = None, *, idle: float = 0.5) -> None:
        """``run_once`` until ``stop_event`` is set, waiting ``idle`` seconds when caught up,
        holding the slot's claim throughout."""
        stop = stop_event or threading.Event()
        with self.claim.held():
            while not stop.is_set():
                if not self.run_once():
                    stop.wait(idle)

    # -- one batch ----------------------------------------------------------------------------

    def _batch(self, upto: str, xmax: int) -> tuple[int, bool]:
        limit = self.batch_changes
        with self.target.connect() as target:
            if not self._progress_table_checked:
                ensure_progress_table(target, self.progress_schema)
                keep_private(target, self.progress_schema)
                target.commit()
                self._progress_table_checked = True
            with self._slot_locked(target):
                read = self._peek(upto, limit, xmax)
                flushed = self._flushed
                with read.messages.stream:  # a temporary file beyond SPOOL_BYTES
                    recorded = self._write_checked(target, read)
                written = self._flushed - flushed
                if recorded > read.confirmed:
                    with self.source.begin() as source:
                        lsn = format_lsn(recorded)
                        source.exec_driver_sql(ADVANCE, {"slot": self.slot, "lsn": lsn})
                        self._move_restart_point(source)
        return written, read.finished

    def _write_checked(self, target: Connection, read: _Read) -> int:
        """``_write_batch``, once more when a COPY failed on bad input: nothing in the WAL
        fails to cast, a writer's context value does, so the second time each context is
        checked (``.context_check``) and what does not fit is recorded as NULL."""
        try:
            return self._write_batch(target, read)
        except Exception as error:
            if not is_bad_input(error):
                raise
            target.rollback()
            self._context_check = ContextCheck()
            try:
                return self._write_batch(target, read)
            finally:
                self._context_check = None

    def _write_batch(self, target: Connection, read: _Read) -> int:
        """Write ``read``; return the position the progress row now records as complete (the
        slot may be advanced to it, never further)."""
        target.exec_driver_sql(OUTPUT_SETTINGS)
        progress = load_progress(target, self.progress_schema, self.slot)
        if progress.end_lsn > read.upto:
            self._refuse_progress_ahead(progress)
        # A transaction written in part must still be ahead of the slot.
        if progress.end_lsn and (
            read.confirmed > progress.end_lsn
            or (read.confirmed == progress.end_lsn and not progress.complete)
        ):
            raise self._gap(progress, read.confirmed)
        return self._write(target, read, progress)

    def _gap(self, progress: Progress, confirmed: int) -> CdcError:
        """The slot is ahead of the trail.  The decoder advances its slot only to a position
        its progress row records, after that row's commit, so the slot was made again (dropped,
        or lost and replaced) or advanced by hand: the changes in between never reach the
        trail, and the old rows rebuilt from it would be stale."""
        start, end = format_lsn(progress.end_lsn), format_lsn(confirmed)
        table = name_text(self.progress_schema, PROGRESS_TABLE)
        return CdcError(
            f"slot {self.slot!r} starts at {end}, beyond the trail's progress ({start}): the "
            f"changes committed between {start} and {end} never reached the trail, and never "
            "will (the slot was dropped and made again, or advanced by hand).  The decoder "
            "stops rather than skip them.  Recover: stop the writers if you can; accept the "
            f"gap by deleting the decoder's progress row of this slot ({table}, slot_name "
            f"{self.slot!r}), so that the decoder goes on from the slot's position as a first "
            "run does; run the consumer; then record a baseline of each CDC table where its "
            "trail is (record_baseline), so the gap is visible in its history"
        )

    def _refuse_progress_ahead(self, progress: Progress) -> None:
        """A progress row beyond the server's WAL was not written by a decoder of this slot
        (a restored copy of another server's, or one written by hand): every change below it
        would be skipped for good."""
        with self.source.connect() as source:
            flushed = source.exec_driver_sql(FLUSH_POSITION).scalar_one()
        if progress.end_lsn > parse_lsn(flushed):
            raise DecoderError(
                f"slot {self.slot!r}: the progress table records {format_lsn(progress.end_lsn)}"
                f", beyond the server's WAL ({flushed}); it was not written by a decoder of "
                "this slot (a restore from another server, or an edit): the decoder would skip "
                "every change below it.  Delete that progress row, then record a baseline"
            )

    @contextmanager
    def _slot_locked(self, target: Connection) -> Iterator[None]:
        """Hold the slot's lock on ``target`` from before the peek until after the advance: a
        second decoder on the slot waits, then reads the progress this one recorded (the
        lock outlives the commits of a batch written in several transactions).

        The claim (``.claim``) does not make this lock redundant.  The claim is what refuses
        a second consumer, of either design, at once and by name, for a whole run; but it
        lives in a session of the source that nothing watches: when that session is lost (a
        source restart, a network cut, a terminated backend) the claim goes with it while
        the decoder runs on, and a consumer started then takes it.  This lock is taken anew
        for every batch, in the target, where the progress row is, so two decoders that both
        believe they hold the claim still write batches one after the other, each starting
        from the progress the other recorded, and no change twice."""
        key = {"key": _lock_key(self.progress_schema, self.slot)}
        target.exec_driver_sql(LOCK_SLOT, key)
        target.commit()
        try:
            yield
        except BaseException:
            try:
                target.rollback()
                target.exec_driver_sql(UNLOCK_SLOT, key)
                target.commit()
            except DBAPIError:
                # A lost connection lost the lock with it; never pool one that may hold it.
                target.invalidate()
            raise
        target.exec_driver_sql(UNLOCK_SLOT, key)
        target.commit()

    def _move_restart_point(self, source: Connection) -> None:
        """Every peek decodes the WAL again from the slot's restart point, which moves only
        past a running-transactions record; the server logs one every 15 s or so under load,
        so each batch would re-read up to 15 s of WAL (measured: an idle ``run_once`` took
        0.2 s 50 MB behind, 9 ms right after one).  Log one when the restart point is more
        than ``RESTART_LAG_BYTES`` behind, where the server has the function and the role
        may call it.  An advance passes it once the WAL holding it is flushed (the next commit
        of any writer does that)."""
        if not self._log_snapshots:
            return
        row = source.exec_driver_sql(RESTART_LAG, {"slot": self.slot}).first()
        if row is None or row[1] < 160000:
            self._log_snapshots = False
            return
        if row[0] is None or row[0] < RESTART_LAG_BYTES:
            return
        savepoint = source.begin_nested()
        try:
            source.exec_driver_sql(LOG_SNAPSHOT)
        except DBAPIError as error:
            if sqlstate(error) != INSUFFICIENT_PRIVILEGE:
                raise
            savepoint.rollback()
            self._log_snapshots = False
        else:
            savepoint.commit()

    def _peek(self, upto: str, limit: int, xmax: int) -> _Read:
        """The slot's messages, waiting a while for a slot still held by the server process
        of a decoder that was just killed (it lets go once it notices its client is gone)."""
        parameters = {
            "slot": self.slot,
            "upto": upto,
            "limit": limit,
            "publications": self.publications,
        }
        for attempt in itertools.count():
            with self.source.connect() as source:
                source.exec_driver_sql(OUTPUT_SETTINGS)
                specs = self._audited(source)
                confirmed = source.exec_driver_sql(CONFIRMED, {"slot": self.slot}).scalar()
                data = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (_batch closes it)
                try:
                    copy_out_to(source, PEEK, parameters, data)
                except Exception as error:
                    data.close()
                    source.rollback()
                    if not _slot_in_use(error):
                        if _slot_lost(source, self.slot):
                            raise CdcError(
                                f"slot {self.slot!r}: {RECOVER_LOST_SLOT}.  {self._after_loss()}"
                            ) from error
                        raise
                    if attempt >= _SLOT_WAITS:
                        raise self._slot_read_elsewhere(source) from error
                    time.sleep(0.1)
                    continue
                source.rollback()
                return _Read(
                    messages=_Messages(data),
                    specs=specs,
                    upto=parse_lsn(upto),
                    xmax=xmax,
                    confirmed=parse_lsn(confirmed or "0/0"),
                    limit=limit,
                )
        raise AssertionError("unreachable")

    def _after_loss(self) -> str:
        """The decoder's part of recovering from a lost slot: the new slot starts past the
        progress row, which the decoder refuses (``_gap``) until the gap is accepted."""
        table = name_text(self.progress_schema, PROGRESS_TABLE)
        return (
            "With this decoder (design 2), once the new slot exists, accept the gap by deleting "
            f"its progress row ({table}, slot_name {self.slot!r}), run the consumer, then "
            "record the baseline (it waits for the consumer)"
        )

    def _slot_read_elsewhere(self, source: Connection) -> SlotInUse:
        """The slot stayed active for another process through every wait: a subscription,
        ``pg_recvlogical`` or a decoder that does not claim it (an older release) reads it."""
        row = source.execute(text(SLOT_READER), {"slot": self.slot}).first()
        who = (
            "another process"
            if row is None or row[0] is None
            else (f"server process {row[0]} ({row[2] or 'backend'}, application {row[1]!r})")
        )
        return SlotInUse(
            self.slot,
            f"slot {self.slot!r} is being read by another consumer, {who}, and stayed so for "
            f"{_SLOT_WAITS // 10} s: a slot has one reader at a time.  Stop the other consumer "
            "(a subscription reading this slot: drop it, or run design 1's Consumer with its "
            "target instead of the decoder), or give this one its own slot with the naming "
            "convention 'audit.slot'",
        )

    def _write(self, target: Connection, read: _Read, progress: Progress) -> int:
        """Write the transactions of ``read`` the trail lacks; return the position the slot
        may be advanced to: every transaction ending there is in the trail, and the progress
        row records it (or a position beyond it)."""
        trail = _Trail()
        last_end = 0
        #: What the progress row holds, and what it is to hold once ``trail`` is written.
        recorded = covered = progress
        self._previous.forget()
        begin: Begin | None = None
        entries: list[Entry] = []
        context = Context()
        context_oids = self._context_oids
        for data in read.messages:
            message = parse_message(data)
            if isinstance(message, Change):
                if message.relation in self._join_oids:
                    continue
                if message.relation in context_oids:
                    if message.new is not None:
                        columns = self._relations[message.relation].columns
                        context = context.updated(columns, message.new)
                else:
                    entries.append(Entry(self._audited_plan(message.relation), message, context))
            elif isinstance(message, Begin):
                begin, entries, context = message, [], Context()
            elif isinstance(message, Commit):
                assert begin is not None
                skip = progress.written(message.end_lsn)
                if skip is not None and skip < len(entries):
                    if not trail.changes:
                        self._previous.forget(unless_below=KEPT)
                    self._previous.load(target, wanted_keys(entries[skip:]))
                    end, count = message.end_lsn, len(entries)
                    lines = self._lines(target, trail, begin, entries, skip, read.xmax)
                    for done, now in lines:
                        if self._full(trail) or (now and trail.changes):
                            recorded = covered = Progress(end, done, done == count)
                            self._flush(target, trail, covered)
                    covered = Progress(end, count, True)
                last_end = message.end_lsn
                begin = None
            elif isinstance(message, Relation):
                self._relations[message.oid] = message
                if message.name == self.context_table:
                    context_oids.add(message.oid)
                else:
                    context_oids.discard(message.oid)
                if message.name == self._joins_table:
                    self._join_oids.add(message.oid)
                else:
                    self._join_oids.discard(message.oid)
                self._plans[message.oid] = self._plan(target, read.specs, message)
            elif isinstance(message, Truncate):
                for oid in message.relations:
                    if oid not in context_oids:
                        entries.append(Entry(self._audited_plan(oid), None, context))
        # Everything read is in the trail now (once ``trail`` is flushed), up to the last commit
        # read, or up to ``upto`` when the read reached it.
        end = max(last_end, read.upto if read.finished else 0)
        if end > covered.end_lsn and (
            trail.changes
            or not read.finished
            or end - recorded.end_lsn >= IDLE_RECORD_BYTES
            or time.monotonic() - self._recorded_at >= IDLE_RECORD_SECONDS
        ):
            covered = Progress(end, 0, True)
        if trail.changes or covered != recorded:
            self._flush(target, trail, covered)
        return covered.end_lsn if covered.complete else last_end

    def _full(self, trail: _Trail) -> bool:
        return trail.changes >= self.batch_changes or trail.size >= self.batch_bytes

    def _flush(self, target: Connection, trail: _Trail, progress: Progress) -> None:
        """COPY the pending lines and record ``progress``, in one target transaction."""
        for copy_sql, lines in trail.segments.items():
            copy_in(target, copy_sql, lines)
        save_progress(target, self.progress_schema, self.slot, progress)
        target.commit()
        # Old rows read back from the trail must read as the WAL writes them.
        target.exec_driver_sql(OUTPUT_SETTINGS)
        self._flushed += sum(len(lines) for lines in trail.segments.values())
        self._recorded_at = time.monotonic()
        trail.changes = trail.size = 0
        trail.segments.clear()

    # -- one transaction ----------------------------------------------------------------------

    def _lines(
        self,
        target: Connection,
        trail: _Trail,
        begin: Begin,
        entries: list[Entry],
        skip: int,
        xmax: int,
    ) -> Iterator[tuple[int, bool]]:
        """Add the audit lines of ``entries[skip:]`` to ``trail``, yielding how many of the
        transaction's changes are added when a batch is full, and whether the trail must be
        written now: around a TRUNCATE whose rows are read from it.  Empties ``entries``."""
        when = commit_datetime(begin.commit_time).isoformat().encode()
        transaction_id = _full_transaction_id(begin.xid, xmax)
        with_k = (
            writes_k([move_of(e.plan, e.change) for e in entries])
            if any_key_moved(entries)
            else set()
        )
        prefixes: dict[tuple[int, str, int], bytes] = {}
        previous = self._previous
        check = self._context_check

        def prefix(entry: Entry, code: str) -> bytes:
            """The fields before the values, made once per table, code and context."""
            key = (id(entry.plan), code, id(entry.context))
            made = prefixes.get(key)
            if made is None:
                context = entry.context
                if check is not None:
                    context = check.fit(target, entry.plan, context, transaction_id)
                made = prefixes[key] = entry.plan.prefix(code, when, transaction_id, context)
            return made

        # Each change is let go once its lines are made: a large transaction's values are
        # then held once (as lines, written in parts), not twice.
        todo = entries[skip:]
        todo.reverse()
        entries.clear()
        index = skip
        while todo:
            entry = todo.pop()
            plan, change = entry.plan, entry.change
            if change is None and plan.spec.truncate_rows and "T" in plan.codes:
                yield index, True
                for row in _present_rows(target, plan):
                    trail.add(plan, plan.truncated(prefix(entry, "T"), row))
                trail.changes += 1
                index += 1
                yield index, True
                self._previous.forget()
                continue
            if change is None:
                if "T" in plan.codes:
                    trail.add(plan, plan.marker(prefix(entry, "T")))
            else:
                rows = audit_rows(plan, change, index in with_k, previous)
                for code, values, changed in rows:
                    trail.add(plan, plan.line(prefix(entry, code), values, changed))
            trail.changes += 1
            index += 1
            if self._full(trail):
                yield index, False

    # -- relations ----------------------------------------------------------------------------

    def _audited(self, source: Connection) -> dict[tuple[str, str], AuditSpec]:
        if self._specs is None:
            specs = [spec for _, spec in audited_tables(self.metadata)]
            resolved = resolve_specs(source, specs)
            self._specs = {(s.schema or "public", s.table): s for s in resolved}
        return self._specs

    def _audited_plan(self, oid: int) -> TablePlan:
        """The plan of a relation a change names; a table the metadata does not audit stops
        the decoder rather than go unrecorded."""
        plan = self._plans.get(oid)
        if plan is None:
            relation = self._relations[oid]
            names = ", ".join(map(repr, self._holding(relation)))
            raise UndeclaredTable(
                f"{relation.schema}.{relation.name}",
                f"table {relation.schema}.{relation.name} is in publication(s) {names} but "
                "this consumer's metadata does not declare it a CDC table.  Either a "
                "migration published it before the models that declare it were deployed: "
                "restart the consumer with models that declare it (the trail goes on from the "
                "table's first change, which is not skipped); or another metadata in this "
                "database shares the publication: give each metadata its own "
                f"naming-convention keys {PUBLICATION_KEY!r} and {SLOT_KEY!r} (see 'One "
                "publication per metadata' in the CDC docs)",
            )
        return plan

    def _holding(self, relation: Relation) -> list[str]:
        """The decoder's publications that hold ``relation`` (all of them when the catalog no
        longer says: it may have been unpublished since)."""
        with self.source.connect() as source:
            found = source.execute(
                text(PUBLICATIONS_OF_TABLE),
                {
                    "schema": relation.schema,
                    "table": relation.name,
                    "publications": self._publication_names,
                },
            ).scalars()
            return [str(name) for name in found] or self._publication_names

    def _plan(
        self, target: Connection, specs: dict[tuple[str, str], AuditSpec], relation: Relation
    ) -> TablePlan | None:
        if relation.name in (self.context_table, self._joins_table):
            return None
        spec = specs.get((relation.schema, relation.name))
        if spec is None:
            # pgoutput also describes a partition whose changes it publishes as its root's.
            return None
        operations = {t.operation for t in spec.triggers}
        identity = relation.replica_identity
        if identity == "i" and operations & {"UPDATE", "DELETE"}:
            raise DecoderError(
                f"table {relation.schema}.{relation.name} has REPLICA IDENTITY USING INDEX, "
                "which the decoder does not support (the WAL then carries that index's "
                "columns, not the key the trail is kept by): set REPLICA IDENTITY DEFAULT or FULL"
            )
        if (
            identity != "f"
            and operations & {"UPDATE", "DELETE"}
            and (identity == "n" or not spec.key_columns)
        ):
            raise DecoderError(
                f"table {relation.schema}.{relation.name} has REPLICA IDENTITY "
                f"{_IDENTITIES.get(identity, identity)}: the decoder needs the old row of every "
                "UPDATE and DELETE, from the WAL (ALTER TABLE ... REPLICA IDENTITY FULL) or, for "
                "a table with a primary key, from the trail"
            )
        rows = target.exec_driver_sql(
            TABLE_COLUMNS, {"table": name_text(spec.schema, spec.audit_table)}
        )
        audit_columns = [r[0] for r in rows]
        if not audit_columns:
            raise DecoderError(
                f"audit table {spec.schema}.{spec.audit_table} of table {relation.name} "
                "does not exist in the target"
            )
        missing = [c for c in spec.columns if c in audit_columns and c not in relation.columns]
        if missing:
            self._check_missing(relation, missing)
        return TablePlan.make(spec, relation, audit_columns)

    def _check_missing(self, relation: Relation, missing: list[str]) -> None:
        """Recorded columns the relation lacks: a generated column's value is not in the WAL
        (an error: it would always be NULL); a column added since these changes were written
        (the models are newer) or dropped while the decoder runs is recorded as NULL, as in
        trigger mode before and after the migration."""
        name = name_text(relation.schema, relation.name)
        with self.source.connect() as source:
            rows = source.exec_driver_sql(PRESENT_COLUMNS, {"table": name, "columns": missing})
            present = {r[0]: bool(r[1]) for r in rows}
        generated = [c for c in missing if present.get(c)]
        if generated:
            raise DecoderError(
                f"table {relation.schema}.{relation.name}: column(s) {generated!r} are recorded "
                "but not published (a generated column's value is not in the WAL); leave them "
                "out with 'exclude_columns'"
            )
        added = [c for c in missing if c in present]
        if added:
            log.info(
                "table %s: changes written before column(s) %r were added: recorded with them NULL",
                name,
                added,
            )
        dropped = [c for c in missing if c not in present]
        if dropped:
            log.warning(
                "table %s: column(s) %r are no longer published (dropped?): recorded as NULL",
                name,
                dropped,
            )


#: The decoder advances its slot only to a position its progress row records, so that a slot
#: ahead of that row always means changes the trail never received.  WAL with nothing for the
#: trail (other tables' writes, the progress row's own) moves the recorded position too: once
#: it is ``IDLE_RECORD_BYTES`` beyond it, so the slot does not hold that WAL back, or
#: ``IDLE_RECORD_SECONDS`` after the last record, so the slot passes everything committed a
#: moment ago (what ``record_baseline`` waits for).  Not at every round: each record is a
#: write, whose own WAL the next round would find, so an idle decoder would write at every
#: round; this way it writes one small row every ``IDLE_RECORD_SECONDS`` at most.
IDLE_RECORD_BYTES = 64 * 1024
IDLE_RECORD_SECONDS = 5.0

#: How much of one read of the slot (its COPY stream) the decoder keeps in memory; the rest of a
#: larger one goes to a temporary file.
SPOOL_BYTES = 32 * 1024 * 1024

#: How many times (0.1 s apart) a decoder waits for its slot to be free.
_SLOT_WAITS = 100


#: How far behind its confirmed position the slot's restart point may fall before the decoder
#: logs a running-transactions record (one WAL segment).
RESTART_LAG_BYTES = 16 * 1024 * 1024


def _slot_lost(source: Connection, slot: str) -> bool:
    """Whether the slot is invalidated: it can never deliver the changes it lost.  ``False``
    when the question fails too (the read's own error is the one to show then)."""
    try:
        row = source.execute(text(SLOT_STATE), {"slot": slot}).first()
    except DBAPIError:
        return False
    return row is not None and row.wal_status == "lost"


def _lock_key(schema: str | None, slot: str) -> int:
    """The advisory lock key of ``slot``'s progress row: a signed 64-bit hash of the names."""
    name = f"{schema or ''}.{PROGRESS_TABLE}.{slot}".encode()
    return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big", signed=True)


def _slot_in_use(error: Exception) -> bool:
    """``object_in_use``: the slot is active for another process."""
    return sqlstate(error) == "55006"


_IDENTITIES = {"d": "DEFAULT", "i": "USING INDEX", "n": "NOTHING", "f": "FULL"}


def _full_transaction_id(xid: int, xmax: int) -> int:
    """The 64-bit id of a 32-bit ``xid`` older than ``xmax`` (a full id read at the start of
    the run): exact while the decoder lags by less than 2^31 transactions."""
    full = (xmax & ~0xFFFFFFFF) | xid
    return full - (1 << 32) if full >= xmax else full


def _present_rows(target: Connection, plan: TablePlan) -> list[bytes]:
    """The rows a TRUNCATE of ``plan``'s table removed, as the trail has them (COPY text)."""
    spec = plan.spec
    keys = spec.key_columns or plan.relation.key_columns
    sql = present_rows(spec.schema, spec.audit_table, keys, plan.mirrored)
    return copy_out(target, sql, {}).splitlines()
