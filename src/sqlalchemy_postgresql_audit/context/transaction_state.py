"""Engine-wide listeners for what a connection remembers about its current transaction.

``scope`` (the settings ``audit_context`` applied) and ``explicit`` (those ``set_session_vars``
sent) each keep such state in ``Connection.info``: forgotten when a transaction begins or ends,
saved at each savepoint, put back when one is rolled back to, dropped when one is released.
What they save differs; listening once per process, and finding a savepoint in the stack of
saved states, are the same for both, and live here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import Engine, event

#: The events after which a connection is in another transaction, or in none.
TRANSACTION_EDGES = ("begin", "commit", "rollback", "commit_twophase", "rollback_twophase")

_LOCK = threading.Lock()


def listen_once(
    listeners: Sequence[tuple[str, Callable[..., Any]]], *, retval: Collection[str] = ()
) -> None:
    """Listen on every ``Engine`` with each ``(event, function)`` of ``listeners``, once per
    process, however many threads ask at once.  The last one is registered last, so when it is
    there all are: the usual call is one look-up.  ``retval`` names the events whose function
    returns the statement to run (``before_cursor_execute``)."""
    last_event, last = listeners[-1]
    if event.contains(Engine, last_event, last):
        return
    with _LOCK:
        if event.contains(Engine, last_event, last):
            return
        for name, function in listeners:
            event.listen(Engine, name, function, retval=name in retval)


def savepoint_depth(stack: Sequence[tuple[Any, ...]], name: str) -> int | None:
    """Where savepoint ``name`` is in ``stack`` (entries ``(name, *saved)``, oldest first): the
    newest of that name, as PostgreSQL's ROLLBACK TO and RELEASE take; ``None`` when it was
    taken before anything was saved."""
    for depth in range(len(stack) - 1, -1, -1):
        if stack[depth][0] == name:
            return depth
    return None


def release(stack: list[tuple[Any, ...]], name: str) -> None:
    """RELEASE ``name``: it and the savepoints taken after it are gone; what they saved is
    kept by the transaction (or the enclosing savepoint)."""
    depth = savepoint_depth(stack, name)
    if depth is not None:
        del stack[depth:]
