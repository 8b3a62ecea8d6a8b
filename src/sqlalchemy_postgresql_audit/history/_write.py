"""The write side: ``restore`` a row to a past state, ``record_baseline`` of existing rows.

Both write through ordinary SQL in the caller's transaction: ``restore`` writes to the source
table, so its own write is audited by the triggers like any other; ``record_baseline`` writes
``B`` versions into the audit table.  Each has an async twin taking ``AsyncConnection`` or
``AsyncSession``; the steps are shared as a generator of statements.
"""

from __future__ import annotations

import datetime
from collections.abc import Generator, Mapping
from typing import Any, Literal, Protocol

from sqlalchemy import (
    BigInteger,
    Executable,
    Select,
    String,
    and_,
    bindparam,
    cast,
    column,
    delete,
    func,
    insert,
    literal,
    null,
    select,
    text,
    update,
)
from sqlalchemy.ext.compiler import compiles

from ..declare.spec import AUDIT_CURRENT_USER, AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP
from ..errors import AuditError
from ..render import lock_against_writes
from ._decoded import DEFAULT_TIMEOUT, refuse_trail_elsewhere, wait_for_consumer, written_here
from ._hashing import recorded_hash
from ._queries import (
    STATE_OPERATIONS,
    as_of_select,
    differ,
    latest_versions,
    present,
    versions,
)
from ._removed import IncompleteHistory, known_select, removed_from, removed_history_select
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


def _writable(target: Audited, *, inserting: bool) -> list[str]:
    """Mirrored columns a write may set: not redacted, not computed; ``GENERATED ALWAYS``
    identity columns only on INSERT (written with ``OVERRIDING SYSTEM VALUE``, so a re-inserted
    row keeps its id), never on UPDATE (the row keeps them anyway)."""
    writable = []
    for name in target.spec.columns:
        column = target.source.c[name]
        if column.computed is not None or (_always_identity(column) and not inserting):
            continue
        if target.spec.redaction(name) is not None:  # the trail does not hold its value
            continue
        writable.append(name)
    return writable


def _always_identity(column: Any) -> bool:
    return column.identity is not None and bool(column.identity.always)


class _OverridingSystemValue(Select[Any]):
    """A select that supplies the rows of ``INSERT ... OVERRIDING SYSTEM VALUE SELECT ...``.

    PostgreSQL takes the clause between the column list and the rows, which SQLAlchemy's
    ``Insert`` does not render; as the rows of ``insert().from_select()`` it lands there.
    """

    inherit_cache = True


@compiles(_OverridingSystemValue, "postgresql")
def _compile_overriding(element: _OverridingSystemValue, compiler: Any, **kw: Any) -> str:
    return "OVERRIDING SYSTEM VALUE " + str(compiler.visit_select(element, **kw))


def _insert(target: Audited, state: Mapping[str, Any]) -> Executable:
    source = target.source
    columns = _writable(target, inserting=True)
    if not any(_always_identity(source.c[c]) for c in columns):
        return insert(source).values({source.c[c]: state[c] for c in columns})
    values = [literal(state[c], source.c[c].type) for c in columns]
    return insert(source).from_select(columns, _OverridingSystemValue(*values))


def _state_at(target: Audited, key: dict[str, Any], at: datetime.datetime) -> Executable:
    return as_of_select(target, check_moment(target, at), key)


def _state_of_version(target: Audited, key: dict[str, Any], version: int) -> Executable:
    """The version ``version`` of row ``key`` (one that ``history`` lists), with its operation."""
    sub = versions(target, key, with_changes=False)
    return select(sub.c[AUDIT_OPERATION], *(sub.c[c] for c in target.spec.columns)).where(
        sub.c[AUDIT_ID] == bindparam("audit_version", version, type_=BigInteger)
    )


def _restore_steps(
    target: Audited, pk: object, at: datetime.datetime | None, version: int | None
) -> _Steps:
    key = key_values(target, pk)
    if (at is None) == (version is None):
        raise TypeError(
            f"restore of table {target.name!r}, key {key!r}: give exactly one of 'at' (a moment) "
            f"or 'version' (an audit_id from history()), got at={at!r}, version={version!r}"
        )
    yield from refuse_trail_elsewhere(target, "restore")
    if version is None:
        assert at is not None
        state = (yield _state_at(target, key, at)).mappings().first()
        if state is None:
            # Absent at ``at``, or last changed before history was removed: deleting the row
            # on the strength of a removed past would be wrong.
            removed = removed_from(target, (yield removed_history_select(target)).first())
            if removed is not None and not (yield known_select(target, key, at)).scalar():
                raise IncompleteHistory(
                    removed,
                    f"restore of table {target.name!r}, key {key!r} at {at.isoformat()}: the "
                    "trail holds no version of it then",
                )
    else:
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(
                f"restore of table {target.name!r}: 'version' must be an audit_id (int), "
                f"got {version!r}"
            )
        recorded = (yield _state_of_version(target, key, version)).mappings().first()
        if recorded is None:
            raise AuditError(
                f"table {target.name!r}: {version} is not a version of key {key!r} "
                "(history() lists the versions of a key and their audit_id)"
            )
        # A version leaves the row in its state, or absent (DELETE, key change, TRUNCATE).
        state = recorded if recorded[AUDIT_OPERATION] in STATE_OPERATIONS else None
    source = target.source
    columns = _writable(target, inserting=False)
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
        yield _insert(target, state)
        return "inserted"
    if current is not None:
        yield delete(source).where(key_filter(source, key))
        return "deleted"
    return "unchanged"


def restore(
    bind: _Executes,
    target: object,
    pk: object,
    at: datetime.datetime | None = None,
    *,
    version: int | None = None,
) -> Restored:
    """Write row ``pk`` back to its state at ``at`` (see ``as_of``), or to the state version
    ``version`` (an ``audit_id`` that ``history(target, pk)`` lists) left it in, in ``bind``'s
    transaction.  Give exactly one of ``at`` and ``version``.

    A DELETE, key change (``K``) or TRUNCATE version leaves the row absent, so restoring it
    deletes the row.  An UPDATE when the row exists then and now, a re-INSERT when it was deleted
    since, a DELETE when it did not exist; returns which (``"unchanged"``: already as it was, or
    absent both times, and nothing is written).
    The write goes to the source table, so it is audited like any other write (set the session
    settings first).  Only mirrored columns are written: an ``exclude_columns`` or ``redact`` column
    keeps its value on UPDATE and gets its default on INSERT; computed columns are left to the
    server, and so are ``GENERATED ALWAYS`` identity columns on UPDATE, while a re-INSERT keeps
    their recorded values (``OVERRIDING SYSTEM VALUE``).  ORM objects already loaded in a Session
    are not refreshed.
    """
    result: Restored = _run(bind, _restore_steps(audited(target), pk, at, version))
    return result


async def arestore(
    bind: _ExecutesAsync,
    target: object,
    pk: object,
    at: datetime.datetime | None = None,
    *,
    version: int | None = None,
) -> Restored:
    """``restore`` for ``AsyncConnection`` and ``AsyncSession``."""
    result: Restored = await _arun(bind, _restore_steps(audited(target), pk, at, version))
    return result


def _baseline_steps(
    target: Audited, timeout: float = DEFAULT_TIMEOUT, *, installing: bool = False
) -> _Steps:
    source, audit, spec = target.source, target.audit, target.spec
    if not installing:  # installing records its baseline wherever it installs
        yield from refuse_trail_elsewhere(target, "record_baseline", writes="trail")
    # Writers wait until the baseline commits, so no change falls between the snapshot read
    # here and the triggers' next audit row.
    yield text(lock_against_writes(source.schema, source.name))
    # A CDC table's trail is written after the fact: its consumer must have caught up first.
    # Its rows this transaction wrote reach the trail through the consumer after the commit.
    decoded = yield from wait_for_consumer(target, timeout)
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
    # Compared in the audit columns' types: the database's source column may have another type
    # than the model says (``text`` for ``String``), which ``*<>`` would refuse to compare.
    # Redacted values cannot be compared with what the trail holds: only the others are.
    compared = [c for c in spec.columns if spec.redaction(c) is None]
    recorded_as = [audit.c[c].type for c in compared]
    unexplained: Any = known.c[spec.key_columns[0]].is_(None) | differ(
        [cast(known.c[c], t) for c, t in zip(compared, recorded_as, strict=True)],
        [cast(source.c[c], t) for c, t in zip(compared, recorded_as, strict=True)],
    )
    if decoded:
        # A system column, which a join names only qualified by its table.
        unexplained = and_(unexplained, ~written_here(column("xmin", _selectable=source)))
    rows = (
        select(
            literal("B", String),
            # Written after the lock: no change to these rows falls between it and the rows.
            func.statement_timestamp(),
            func.current_user(),
            *settings,
            *(_recorded(target, c) for c in spec.columns),
        )
        .select_from(joined)
        .where(unexplained)
    )
    missing = yield from _missing_required_settings(target)
    if missing:
        pending = yield select(func.count()).select_from(rows.subquery("pending"))
        if pending.scalar_one():
            raise AuditError(
                f"record_baseline of table {target.name!r}: session setting(s) {missing!r} "
                "are required (nullable=False) and not set in this transaction, and the "
                "baseline rows would record NULL; set them first (set_session_vars, or --set "
                f"{missing[0]}=... on the command line)"
            )
        return 0
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


def _recorded(target: Audited, name: str) -> Any:
    """Source column ``name`` as the trigger records it: masked, hashed, or as it is."""
    column = target.source.c[name]
    form = target.spec.redaction(name)
    if form == "mask":
        return cast(null(), target.audit.c[name].type)
    if form == "hash":
        return recorded_hash(target.audit.schema, target.spec.table, name, column)
    return column


def _missing_required_settings(target: Audited) -> Generator[Executable, Any, list[str]]:
    """The required settings not set in the transaction: the trigger refuses a write without
    them, and the baseline's rows, written straight into the audit table, must too."""
    required = [s for s in target.spec.settings if s.required]
    if not required:
        return []
    result = yield select(
        *(func.current_setting(literal(f"audit.{s.name}", String), True) for s in required)
    )
    return [s.name for s, value in zip(required, result.one(), strict=True) if not value]


def record_baseline(bind: _Executes, target: object, *, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Record the current state of every row the audit trail does not explain, as ``B``
    versions, and return how many rows it recorded.

    Rows that existed before auditing began have no version; after this they start with a ``B``
    (baseline) version, which ``history``, ``changes``, ``as_of`` and ``restore`` treat as the
    row's state from when it was recorded on (see ``as_of``).  A row is recorded when the trail
    leaves it absent or with other values (auditing was off for a while), so running it twice
    records nothing the second time; redacted columns are recorded as the trigger records them and
    cannot be compared (a row that differs only there is not recorded again).  It locks the table
    against writes (SHARE mode) until the caller's transaction ends.  Session settings set in the
    transaction are recorded (a required one that is not set is an ``AuditError``, as a write would
    be); capture columns stay NULL.

    On a change-data-capture table, whose trail its consumer writes after the fact, it first
    waits (after the lock) until the consumer has written every change of the table committed
    before it, up to ``timeout`` seconds, then raises ``AuditError`` naming the slot ("run the
    consumer first"); rows older than the slot never make it wait (``._decoded``).  On design
    1's source, where the trail is not written (its consumer's target is), it raises
    ``AuditError`` saying to record it there.
    """
    count: int = _run(bind, _baseline_steps(audited(target), timeout))
    return count


def record_install_baseline(bind: _Executes, target: object) -> int:
    """``record_baseline`` as installing records it, in the installing transaction, on design
    1's source too: as ``install_audit_triggers`` records its baselines there."""
    count: int = _run(bind, _baseline_steps(audited(target), installing=True))
    return count


async def arecord_baseline(
    bind: _ExecutesAsync, target: object, *, timeout: float = DEFAULT_TIMEOUT
) -> int:
    """``record_baseline`` for ``AsyncConnection`` and ``AsyncSession``."""
    count: int = await _arun(bind, _baseline_steps(audited(target), timeout))
    return count
