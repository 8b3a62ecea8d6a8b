"""One consumer per slot, and one creator at a time.

Two decoders reading one slot would write the same changes twice: each peeks at the slot,
which moves only once a trail holds what was read.  PostgreSQL refuses a slot to a second
reader only while the first is reading it, for the length of one read, so two decoders taking
turns pass.  A consumer therefore claims its slot, with a session-level advisory lock on the
source database, for as long as it runs; a second consumer is refused with an error that names
the slot and who holds it.  The lock lives with the session: a consumer killed with SIGKILL
loses it as soon as the server sees the connection close, which a restarted one waits a moment
for (``CLAIM_WAIT_SECONDS``).

Creating what a consumer needs on the target (the progress table; the replica, audit and
context tables, the capture triggers and the subscription) checks and then creates; two
consumers starting together would both find something missing and one would fail on the
other's object (``duplicate key value ... pg_type``, ``tuple concurrently updated``).  So that
step runs under a lock of the target database's, and checks again once it holds it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text

from ..render import cdc_locks as sql
from .errors import SlotInUse

#: First key of the consumers' advisory locks (the second is the slot's, or ``_CREATING``).
LOCK_CLASS = 0x4344_4331  # "CDC1"
#: How long a consumer waits for a claim before it refuses: long enough for the server to let
#: go of a killed consumer's session, short enough to refuse at once when another one runs.
CLAIM_WAIT_SECONDS = 2.0
_POLL_SECONDS = 0.1


def _key(name: str) -> int:
    """A stable non-negative ``int4`` of ``name`` (the same in every process and version)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") & 0x7FFF_FFFF


#: The second key of the creation lock.
_CREATING = _key("create what a consumer needs")


class SlotClaim:
    """A consumer's claim on ``slot`` in ``engine``'s database (where the slot decodes).

    ``held()`` takes it unless this object holds it already (so a ``run`` loop holds it across
    its rounds and each round's ``run_once`` finds it held) and gives it back when the
    outermost ``held()`` ends.
    """

    def __init__(self, engine: Engine, slot: str) -> None:
        self.engine = engine
        self.slot = slot
        self._parameters = {"class_": LOCK_CLASS, "key": _key(slot)}
        self._holder: Connection | None = None
        self._depth = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        if self._depth == 0:
            self._take()
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._give_back()

    def _take(self) -> None:
        holder = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            deadline = time.monotonic() + CLAIM_WAIT_SECONDS
            while not holder.execute(text(sql.TRY_CLAIM), self._parameters).scalar():
                if time.monotonic() >= deadline:
                    raise SlotInUse(self.slot, self._refusal(holder))
                time.sleep(_POLL_SECONDS)
        except BaseException:
            holder.close()
            raise
        self._holder = holder

    def _give_back(self) -> None:
        holder, self._holder = self._holder, None
        if holder is None:
            return
        try:
            holder.execute(text(sql.RELEASE_CLAIM), self._parameters)
        except Exception:
            holder.invalidate()  # closing the session releases the lock
        finally:
            holder.close()

    def _refusal(self, holder: Connection) -> str:
        who = claim_holder(holder, self.slot) or "another process"
        return (
            f"slot {self.slot!r} is claimed by another consumer, {who}: only one consumer may "
            "read a slot, or the trail would hold its changes twice.  Stop the other consumer "
            "(it is running now), or give this one its own slot with the naming convention "
            "'audit.slot'"
        )


def claim_holder(connection: Connection, slot: str) -> str | None:
    """Who holds ``slot``'s claim in ``connection``'s database (the consumer running on it,
    either design), or ``None`` when no consumer runs."""
    parameters = {"class_": LOCK_CLASS, "key": _key(slot)}
    found = connection.execute(text(sql.CLAIM_HOLDER), parameters).first()
    if found is None:
        return None
    return (
        f"server process {found.pid} (application {found.application_name!r}, "
        f"client {found.client_addr or 'local'})"
    )


@contextmanager
def creating(engine: Engine) -> Iterator[None]:
    """Hold the creation lock of ``engine``'s database, in a session of its own, for steps
    that span several transactions; each step checks what exists once inside."""
    parameters = {"class_": LOCK_CLASS, "key": _CREATING}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as holder:
        holder.execute(text(sql.HOLD_CREATING), parameters)
        try:
            yield
        finally:
            holder.execute(text(sql.RELEASE_CREATING), parameters)


def lock_creating(connection: Connection) -> None:
    """Take the creation lock for the rest of ``connection``'s transaction."""
    connection.execute(text(sql.CREATING), {"class_": LOCK_CLASS, "key": _CREATING})
