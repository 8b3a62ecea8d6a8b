"""Whether history was removed from a trail: the latest ``X`` (retention) or ``P`` (purge)
marker.

After a removal the trail no longer holds the version that put a row in the state it kept
since, so ``as_of`` cannot tell "absent" from "unchanged since before the removal".  ``as_of``
returns a select and never sees the trail before it runs (and its columns stay what they
always were), so the check is its own call: ``removed_history``, which ``restore(at=...)`` and
the command line's ``as-of`` run first, and callers of ``as_of`` after retention should too.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, exists, or_, select

from ..declare.spec import AUDIT_CURRENT_USER, AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP
from ..errors import AuditError
from ..render.guard import PURGE_OPERATION_CODE
from ..render.partitioning import RETENTION_OPERATION_CODE
from ._queries import counts_at, marker_condition
from ._target import Audited, audited, key_filter

_KINDS = {RETENTION_OPERATION_CODE: "retention", PURGE_OPERATION_CODE: "purge"}


@dataclass(frozen=True, slots=True, kw_only=True)
class RemovedHistory:
    """History recorded before ``before`` was removed from the trail, by ``kind``
    (``"retention"``: ``maintain``'s ``X`` marker; ``"purge"``: ``purge_audit_history``'s ``P``),
    as ``recorded_by`` (the role that ran it)."""

    table: str
    before: datetime.datetime
    kind: str
    recorded_by: str

    def __str__(self) -> str:
        return (
            f"history of {self.table} recorded before {self.before.isoformat()} was removed "
            f"by {self.kind} (run by {self.recorded_by})"
        )


class IncompleteHistory(AuditError):
    """The trail cannot say what was asked: the history it needs was removed."""

    def __init__(self, removed: RemovedHistory, what: str) -> None:
        super().__init__(f"{what}: {removed}")
        self.removed = removed


def removed_history_select(target: Audited) -> Select[Any]:
    """The latest removal marker of ``target``'s trail (the one with the latest bound)."""
    audit = target.audit
    return (
        select(audit.c[AUDIT_OPERATION], audit.c[AUDIT_TIMESTAMP], audit.c[AUDIT_CURRENT_USER])
        .where(
            audit.c[AUDIT_OPERATION].in_(tuple(_KINDS)),
            *(audit.c[k].is_(None) for k in target.key_columns),
        )
        .order_by(audit.c[AUDIT_TIMESTAMP].desc(), audit.c[AUDIT_ID].desc())
        .limit(1)
    )


def removed_from(target: Audited, row: Any) -> RemovedHistory | None:
    if row is None:
        return None
    return RemovedHistory(
        table=target.audit.fullname,
        before=row[1],
        kind=_KINDS[row[0]],
        recorded_by=row[2],
    )


def removed_history(bind: Any, target: object) -> RemovedHistory | None:
    """The latest removal of history from ``target``'s trail (a ``Table`` or ORM class), or
    ``None`` when nothing was ever removed, on a ``Connection`` or ``Session``.

    When it is not ``None``, ``as_of(target, at)`` holds only the rows changed since
    ``before``: a row last changed earlier is missing from it (its state is unknown), and for an
    ``at`` before ``before`` nothing of the state is known."""
    resolved = audited(target)
    return removed_from(resolved, bind.execute(removed_history_select(resolved)).first())


async def aremoved_history(bind: Any, target: object) -> RemovedHistory | None:
    """``removed_history`` for ``AsyncConnection`` and ``AsyncSession``."""
    resolved = audited(target)
    result = await bind.execute(removed_history_select(resolved))
    return removed_from(resolved, result.first())


def known_select(target: Audited, key: dict[str, Any], at: datetime.datetime) -> Select[Any]:
    """Whether the trail, history removed or not, still knows row ``key``'s state at ``at``: a
    version of it (or a TRUNCATE or restart marker) counts at ``at`` (removal takes the oldest
    history, so no later version is missing either), or its oldest version left is its INSERT
    (before which it did not exist)."""
    audit = target.audit
    mine = key_filter(audit, key)
    counts = counts_at(audit, at)
    first = (
        select(audit.c[AUDIT_OPERATION])
        .where(mine)
        .order_by(audit.c[AUDIT_ID])
        .limit(1)
        .scalar_subquery()
    )
    # Two EXISTS, not one over an OR: each can use the history index (the key; NULL for markers).
    return select(
        or_(
            exists().where(and_(mine, counts)),
            exists().where(and_(marker_condition(audit, target), counts)),
            first == "I",
        )
    )
