"""What one decoded change writes to the trail: the audit rows of template 2 (``I``, ``U``,
``D``, and ``K`` where a key moved), with the old row from the WAL or from the trail."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..declare.spec import KEY_CHANGE_CODE
from ..errors import AuditError
from .pgoutput import UNCHANGED, Change, Values
from .previous import Key, PreviousVersions
from .rows import Context, TablePlan


class DecoderError(AuditError):
    """The decoder cannot write what the WAL says without losing or inventing values."""


@dataclass(slots=True)
class Entry:
    """One change of the open transaction, with the plan and context current when it came."""

    plan: TablePlan
    change: Change | None  # None: a TRUNCATE of the plan's table
    context: Context


def any_key_moved(entries: list[Entry]) -> bool:
    """Whether an UPDATE of ``entries`` moved a row's key (nearly always not: then no change
    needs ``.key_moves``)."""
    for entry in entries:
        change = entry.change
        if change is not None and change.kind == "U" and change.old is not None:
            new = require(change.new)
            for position in entry.plan.key_positions:
                if change.old[position] != new[position]:
                    return True
    return False


def wanted_keys(entries: list[Entry]) -> Iterator[tuple[TablePlan, Key]]:
    """The keys whose previous version the trail must supply for ``entries``."""
    for entry in entries:
        change = entry.change
        if change is not None and change.kind != "I" and not entry.plan.old_from_wal:
            yield entry.plan, entry.plan.key(require(change.old or change.new))


def audit_rows(
    plan: TablePlan,
    change: Change,
    writes_k: bool,
    previous: PreviousVersions,
) -> list[tuple[str, Values, list[str] | None]]:
    """The (code, values, changed columns) of the audit rows one change writes, as template 2
    writes them: ``I``, ``D``; for an UPDATE, ``K`` under the old key when the key moved and
    ``writes_k`` (no row holds the old key at the end of the statement: ``.key_moves``), then
    ``U``."""
    kind = change.kind
    if kind == "I":
        new = require(change.new)
        if not plan.old_from_wal:
            previous.remember(plan, plan.key(new), new)
        return [("I", new, None)] if "I" in plan.codes else []
    old = old_row(plan, change, previous)
    old_key = plan.key(old)
    if kind == "D":
        if not plan.old_from_wal:
            previous.remember(plan, old_key, None)
        return [("D", old, None)] if "D" in plan.codes else []
    new = require(change.new)
    if UNCHANGED in new:
        new = tuple(o if n is UNCHANGED else n for o, n in zip(old, new, strict=True))
    moved = bool(plan.key_positions) and old_key != plan.key(new)
    if not plan.old_from_wal:
        if moved:
            previous.remember(plan, old_key, None)
        previous.remember(plan, plan.key(new), new)
    if "U" not in plan.codes:
        return []
    rows: list[tuple[str, Values, list[str] | None]] = []
    if moved:
        if writes_k:
            rows.append((KEY_CHANGE_CODE, old, None))
    elif plan.spec.skip_unchanged and not plan.changed(old, new):
        return []
    changed = plan.changed(old, new) if plan.records_changed_columns else None
    rows.append(("U", new, changed))
    return rows


def old_row(plan: TablePlan, change: Change, previous: PreviousVersions) -> Values:
    """The row before ``change``: the WAL's whole old row, else the trail's newest version."""
    if change.old is not None and not change.old_is_key:
        return change.old
    where = f"table {plan.relation.schema}.{plan.relation.name}"
    if plan.old_from_wal:
        raise DecoderError(
            f"{where}: the WAL has no old row of this change (REPLICA IDENTITY FULL was set "
            "after it was written)"
        )
    key = plan.key(require(change.old or change.new))
    shown = ", ".join("NULL" if k is None else k.decode() for k in key)
    try:
        old = previous.old(plan, key)
    except KeyError:
        raise DecoderError(
            f"{where}: key ({shown}) has no version in the trail, and the WAL holds only its "
            "key: record a baseline of the table's rows first (record_baseline), or set "
            "REPLICA IDENTITY FULL"
        ) from None
    if old is None:
        raise DecoderError(f"{where}: the trail says no row holds key ({shown})")
    return old


def require(values: Values | None) -> Values:
    assert values is not None
    return values
