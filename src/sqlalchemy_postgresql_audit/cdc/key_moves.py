"""Which key-moving UPDATEs of a transaction write a ``K`` row, from the WAL alone.

Trigger mode writes ``K`` under the old key when an UPDATE moves a row's key and no row holds
the old key once the *statement* is done.  pgoutput carries no statement boundaries, only each
change's old and new key (and, under ``REPLICA IDENTITY FULL``, its old row), in order.  What
that tells exactly, and what this module assumes where it tells nothing:

- **Occupancy.**  How many rows hold a key after each change: the changes that moved rows onto
  and off it in this transaction, plus the row that held it when the transaction began, which
  a change shows as it leaves (a row leaving a key no row of this transaction reached; or,
  with the old row in the WAL, one whose values are not those of the rows that reached it).
- **One statement where the WAL proves it.**  Two rows on one key at once is possible only
  under a deferrable key, and (checked at the end of the statement, ``INITIALLY IMMEDIATE``)
  only inside one statement: the changes from the one that put the second row there to the one
  that took a row off again are one statement, as are overlapping such runs.  A swap done in one
  statement is such a run, whichever row moves first.
- **Elsewhere each change is taken as its own statement,** as an ORM's one UPDATE per row is.
  So a ``K`` is written exactly where the old key is empty after the change (or its run).

What this gets wrong, because the WAL holds the same for another sequence of statements:

- a single statement moving rows onto keys it vacated earlier in the same statement without
  ever putting two rows on one key (``SET id = id + 1`` visited from the highest key down):
  the trigger writes ``K`` for the keys left empty at the end, this for every moved row;
- a key checked at commit (``INITIALLY DEFERRED``): two rows share a key across statements,
  which this takes for one statement, writing no ``K`` where the trigger writes some.

``docs/cdc.md`` lists the cases; ``tests/test_cdc_key_moves.py`` pins them.

The decision uses nothing but the transaction's own changes, so a decoder restarted in the
middle of a transaction decides the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .pgoutput import UNCHANGED, Change, Values
from .previous import Key
from .rows import TablePlan

#: A key of one table.
_Where = tuple[int, Key]


@dataclass(slots=True)
class _Holders:
    """A key through the transaction: the rows that reached it and are still there (their
    values, ``None`` where the WAL does not say), and whether a row held it when the
    transaction began (and has left since)."""

    arrived: list[Values | None] = field(default_factory=list)
    held_at_start: bool = False


@dataclass(frozen=True, slots=True)
class Move:
    """One change as this module sees it: the key a row left and the key it reached (the same
    for an update in place), with the rows' values where the WAL has them."""

    table: int
    left: Key | None = None
    reached: Key | None = None
    old: Values | None = None
    new: Values | None = None
    #: A TRUNCATE of ``table``: every key of it is empty after it.
    truncated: bool = False


def move_of(plan: TablePlan, change: Change | None) -> Move:
    """The keys ``change`` (``None``: a TRUNCATE) takes a row off and onto."""
    table = plan.relation.oid
    if change is None:
        return Move(table, truncated=True)
    if not plan.key_positions:
        return Move(table)
    whole_old = change.old if not change.old_is_key else None
    new = change.new
    if change.kind == "I":
        assert new is not None
        return Move(table, reached=plan.key(new), new=new)
    if change.kind == "D":
        assert change.old is not None
        return Move(table, left=plan.key(change.old), old=whole_old)
    assert new is not None
    if whole_old is not None and UNCHANGED in new:
        new = tuple(o if n is UNCHANGED else n for o, n in zip(whole_old, new, strict=True))
    new_key = plan.key(new)
    old_key = new_key if change.old is None else plan.key(change.old)
    return Move(table, old_key, new_key, whole_old, new)


def writes_k(moves: Sequence[Move]) -> set[int]:
    """The indexes of ``moves`` whose old key is empty at the end of their statement, as far as
    the WAL tells (see the module's doc)."""
    start = _held_at_start(moves)
    counts: dict[_Where, int] = {}
    truncated: set[int] = set()
    crowded: set[_Where] = set()
    pending: list[tuple[int, _Where]] = []
    result: set[int] = set()

    def count(where: _Where) -> int:
        if where not in counts:
            counts[where] = int(where[0] not in truncated and where in start)
        return counts[where]

    def settle() -> None:
        result.update(i for i, where in pending if count(where) == 0)
        pending.clear()

    for index, move in enumerate(moves):
        if not crowded:
            settle()  # no two rows on one key: the statement may have ended before this change
        if move.truncated:
            truncated.add(move.table)
            for where in counts:
                if where[0] == move.table:
                    counts[where] = 0
            crowded = {where for where in crowded if where[0] != move.table}
            continue
        if move.left == move.reached:  # an update in place, or a table without a key
            continue
        if move.left is not None:
            where = (move.table, move.left)
            counts[where] = count(where) - 1
            if counts[where] < 2:
                crowded.discard(where)
            if move.reached is not None:
                pending.append((index, where))
        if move.reached is not None:
            where = (move.table, move.reached)
            counts[where] = count(where) + 1
            if counts[where] >= 2:
                crowded.add(where)
    settle()
    return result


def _held_at_start(moves: Sequence[Move]) -> set[_Where]:
    """The keys a row held when the transaction began, as the changes show it leaving (before
    any TRUNCATE of its table)."""
    keys: dict[_Where, _Holders] = {}
    truncated: set[int] = set()
    for move in moves:
        if move.truncated:
            truncated.add(move.table)
        elif move.table in truncated:
            continue
        if move.left is not None:
            _leave(keys.setdefault((move.table, move.left), _Holders()), move.old)
        if move.reached is not None:
            keys.setdefault((move.table, move.reached), _Holders()).arrived.append(move.new)
    return {where for where, holders in keys.items() if holders.held_at_start}


def _leave(holders: _Holders, old: Values | None) -> None:
    """A row leaves the key.  Which one, its values tell when the WAL has them (one that
    reached it in this transaction, or else the one that held it at the start); without them,
    one that reached it, if any: no key holds two rows there, for a deferrable key is no
    replica identity and so comes with ``FULL``."""
    if old is not None:
        for position, values in enumerate(holders.arrived):
            if values == old:
                del holders.arrived[position]
                return
        if not holders.held_at_start:
            holders.held_at_start = True
            return
    if holders.arrived:
        holders.arrived.pop()
    else:
        holders.held_at_start = True
