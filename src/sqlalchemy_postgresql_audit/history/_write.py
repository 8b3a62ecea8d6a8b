"""The write side: ``restore`` a row to a past state, ``record_baseline`` of existing rows.

Both write through ordinary SQL in the caller's transaction: ``restore`` writes to the source
table, so its own write is audited by the triggers like any other; ``record_baseline`` writes
``B`` versions into the audit table.  Each has an async twin taking ``AsyncConnection`` or
``AsyncSession``; the steps are shared as a generator of statements.
"""

from __future__ import annotations

import datetime
from collections.abc import Generator
from typing import Any, Literal, Protocol

from sqlalchemy import (
    Executable,
    String,
    and_,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)

from ..render import lock_against_writes
from ..spec import AUDIT_CURRENT_USER, AUDIT_OPERATION, AUDIT_TIMESTAMP
from ._queries import as_of_select, differ, latest_versions, present
from ._target import Audited, audited, check_moment, key_filter, key_values

Restored = Literal["updated", "inserted", "deleted", "unchanged"]

_Steps = Generator[Executable, Any, Any]


class _Executes(Protocol):
    def execute(self, statement: Any, /) -> Any: ...


class _ExecutesAsync(Protocol):
    async def execute(self, statement: Any, /) -> Any: ...


def _run(bind: _Executes, steps: _Steps) -> Any:
    try:
        statement = next(steps)
        while True:
            statement = steps.send(bind.execute(statement))
    except StopIteration as stop:
        return stop.value


async def _arun(bind: _ExecutesAsync, steps: _Steps) -> Any:
    try:
        statement = next(steps)
        while True:
            statement = steps.send(await bind.execute(statement))
    except StopIteration as stop:
        return stop.value


def _writable(target: Audited) -> list[str]:
    """Mirrored columns a write may set: not computed, not ``GENERATED ALWAYS``."""
    writable = []
    for name in target.spec.columns:
        column = target.source.c[name]
        identity = column.identity
        if column.computed is None and not (identity is not None and identity.always):
            writable.append(name)
    return writable


def _restore_steps(target: Audited, pk: object, at: datetime.datetime) -> _Steps:
    key = key_values(target, pk)
    moment = check_moment(target, at)
    state = (yield as_of_select(target, moment, key)).mappings().first()
    source = target.source
    columns = _writable(target)
    current = (
        (
            yield select(
                *(source.c[k] for k in target.key_columns), *(source.c[c] for c in columns)
            )
            .where(key_filter(source, key))
            .with_for_update()
        )
        .mappings()
        .first()
    )
    if state is not None and current is not None:
        values = {source.c[c]: state[c] for c in columns if c not in key}
        if all(current[c.name] == value for c, value in values.items()):
            return "unchanged"  # already as it was: writing it again would add a version
        yield update(source).where(key_filter(source, key)).values(values)
        return "updated"
    if state is not None:
        yield insert(source).values({source.c[c]: state[c] for c in columns})
        return "inserted"
    if current is not None:
        yield delete(source).where(key_filter(source, key))
        return "deleted"
    return "unchanged"


def restore(bind: _Executes, target: object, pk: object, at: datetime.datetime) -> Restored:
    """Write row ``pk`` back to its state at ``at`` (see ``as_of``), in ``bind``'s transaction.

    An UPDATE when the row exists then and now, a re-INSERT when it was deleted since, a DELETE
    when it did not exist yet at ``at``; returns which (``"unchanged"``: already as it was, or
    absent both times, and nothing is written).
    The write goes to the source table, so it is audited like any other write (set the session
    settings first).  Only mirrored columns are written: an ``exclude_columns`` column keeps its
    value on UPDATE and gets its default on INSERT; computed and ``GENERATED ALWAYS`` columns are
    left to the server.  ORM objects already loaded in a Session are not refreshed.
    """
    result: Restored = _run(bind, _restore_steps(audited(target), pk, at))
    return result


async def arestore(
    bind: _ExecutesAsync, target: object, pk: object, at: datetime.datetime
) -> Restored:
    """``restore`` for ``AsyncConnection`` and ``AsyncSession``."""
    result: Restored = await _arun(bind, _restore_steps(audited(target), pk, at))
    return result


def _baseline_steps(target: Audited) -> _Steps:
    source, audit, spec = target.source, target.audit, target.spec
    # Writers wait until the baseline commits, so no change falls between the snapshot read
    # here and the triggers' next audit row.
    yield text(lock_against_writes(source.schema, source.name))
    latest = latest_versions(target, None, None)
    known = select(*(latest.c[c] for c in spec.columns)).where(present(latest)).subquery("known")
    joined = source.outerjoin(known, and_(*(source.c[k] == known.c[k] for k in spec.key_columns)))
    settings = [
        cast(
            func.nullif(func.current_setting(literal(f"audit.{s.name}", String), True), ""),
            audit.c[s.column].type,
        )
        for s in spec.settings
    ]
    rows = (
        select(
            literal("B", String),
            func.now(),
            func.current_user(),
            *settings,
            *(source.c[c] for c in spec.columns),
        )
        .select_from(joined)
        .where(
            known.c[spec.key_columns[0]].is_(None)
            | differ([known.c[c] for c in spec.columns], [source.c[c] for c in spec.columns])
        )
    )
    names = [
        AUDIT_OPERATION,
        AUDIT_TIMESTAMP,
        AUDIT_CURRENT_USER,
        *(s.column for s in spec.settings),
        *spec.columns,
    ]
    # The count comes back through a CTE: rowcount is not reported through every executor.
    recorded = insert(audit).from_select(names, rows).returning(literal(1)).cte("recorded")
    result = yield select(func.count()).select_from(recorded)
    count: int = result.scalar_one()
    return count


def record_baseline(bind: _Executes, target: object) -> int:
    """Record the current state of every row the audit trail does not explain, as ``B``
    versions, and return how many rows it recorded.

    Rows that existed before auditing began have no version; after this they start with a
    ``B`` (baseline) version, which ``history``, ``changes``, ``as_of`` and ``restore`` treat as
    the row's state from the baseline transaction's start on.  A row is recorded when the trail
    leaves it absent or with other values (auditing was off for a while), so running it twice
    records nothing the second time.  It locks the table against writes (SHARE mode) until the
    caller's transaction ends.  Session settings set in the transaction are recorded; capture
    columns stay NULL.
    """
    count: int = _run(bind, _baseline_steps(audited(target)))
    return count


async def arecord_baseline(bind: _ExecutesAsync, target: object) -> int:
    """``record_baseline`` for ``AsyncConnection`` and ``AsyncSession``."""
    count: int = await _arun(bind, _baseline_steps(audited(target)))
    return count
