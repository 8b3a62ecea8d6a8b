"""The consumers' errors (the decoder's own, about what the WAL says, is ``DecoderError``)."""

from __future__ import annotations

from ..errors import AuditError


class CdcError(AuditError, RuntimeError):
    """The consumer cannot make progress (the subscription's errors are in the target's log)."""

    #: True when running again later can succeed with nothing changed by hand (a server that
    #: restarts, a table a deploy is about to declare): ``Consumer.run`` waits and tries again
    #: instead of ending.
    transient: bool = False


class SlotInUse(CdcError):
    """Another consumer reads the slot: a second one would write its changes again."""

    def __init__(self, slot: str, problem: str) -> None:
        self.slot = slot
        super().__init__(problem)
