"""The SQL of the history API, as ordinary SQLAlchemy Core selects over the audit table.

Every query filters on the source's primary-key columns and orders by ``audit_id``, so an index
on the audit table's ``(key columns..., audit_id)`` answers one row's history or state with one
index range scan, whatever the size of the trail.

Vocabulary: a *version* is an audit row of the key (``I``, ``U``, ``B`` record the row's new
state; ``D``, ``K`` (the row's key changed: it moved away to another key) and a ``T`` row with
the key, written by ``truncate_rows``, record its last state before it went away); a *marker*
is the one ``T`` row a TRUNCATE writes by default, with every mirrored column NULL, which
removes every row at once.

*The state at t* is the changes that had become visible by ``t``: a version counts at ``t``
when its transaction committed at or before ``t`` where that is known exactly (see
``counts_at``), else when it was written at or before ``t``; among the versions
of one key that count, the newest by ``audit_id`` wins (one row's versions are serialized by
its row lock, so their ``audit_id`` order is their commit order).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    and_,
    any_,
    case,
    cast,
    false,
    func,
    literal,
    null,
    or_,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.types import BigInteger, Text, UserDefinedType

from ..declare.audit_table import PARTITIONING_KEY
from ..declare.spec import (
    AUDIT_CURRENT_USER,
    AUDIT_ID,
    AUDIT_OPERATION,
    AUDIT_TIMESTAMP,
    capture_column,
)
from ..render.partitioning import RETENTION_OPERATION_CODE
from ._redacted import ShownJson, shown, shown_json
from ._target import Audited, key_filter

#: Operations whose version holds the row's state afterwards.
STATE_OPERATIONS = ("I", "U", "B")
#: Operations after which the row no longer exists under its key.
GONE_OPERATIONS = ("D", "T", "K")
#: A moment as a query compares it: a datetime, or a bound parameter standing for one.
Moment = datetime.datetime | ColumnElement[datetime.datetime]


class _Xid8(UserDefinedType[Any]):
    """PostgreSQL's 64-bit transaction id: text casts to it, and it casts to ``xid``."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"


class _Xid(UserDefinedType[Any]):
    """PostgreSQL's 32-bit transaction id, the argument of ``pg_xact_commit_timestamp``."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid"


class _Record(UserDefinedType[Any]):
    """PostgreSQL's anonymous ``record``: the operand type of the binary-image comparison."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "record"


def differ(left: list[ColumnElement[Any]], right: list[ColumnElement[Any]]) -> ColumnElement[bool]:
    """True when the values differ byte for byte (``*<>``), two NULLs being equal.

    The triggers' ``skip_unchanged`` uses the same operator, so "changed" means the same thing
    here: it works for every type, also those without ``=`` (json, point, ...).
    """
    operator = cast(func.ROW(*left), _Record()).op("OPERATOR(pg_catalog.*<>)", is_comparison=True)
    return operator(cast(func.ROW(*right), _Record()))


#: Where an audit table records the writing transaction's full 64-bit id, the low 32 bits (the
#: ``xid`` that ``pg_xact_commit_timestamp`` takes) name exactly that transaction while it is
#: less than 2**31 transactions old: PostgreSQL compares 32-bit ids modulo 2**32 and keeps commit
#: times only for ids within that distance of the next one.  Older, the same 32 bits may name a
#: newer transaction, whose commit time would be taken for the old one's.
XID_HORIZON = 2**31
TRANSACTION_ID = capture_column("transaction_id")
CHANGED_COLUMNS = capture_column("changed_columns")


def counts_at(table: Any, at: datetime.datetime | ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether an audit row of ``table`` (the audit table itself) counts in the state at ``at``.

    From its transaction's commit where that is known exactly: the server tracks commit times
    (``track_commit_timestamp``), the table records each row's full transaction id (the
    ``transaction_id`` capture) and that id is less than ``XID_HORIZON`` transactions old.
    Then a row whose commit time is unknown is the reader's own transaction's, still in
    progress (rows of other transactions in progress, or rolled back, are invisible to the
    query), which has not committed at any ``at``; or one whose commit time the server no
    longer keeps, which counts from when it was written.  Every other row counts from when it
    was written.  ``xmin`` is no substitute for the recorded id: a frozen row keeps its 32-bit
    ``xmin``, which after 2**32 more transactions names another transaction.
    """
    written: ColumnElement[Any] = table.c[AUDIT_TIMESTAMP]
    if TRANSACTION_ID not in table.c:
        return written <= at
    recorded = table.c[TRANSACTION_ID]
    # Uncorrelated scalar subqueries: evaluated once per query (an InitPlan), not per row.
    # The oldest id whose commit time is exact: the next id of the query's snapshot (which,
    # unlike pg_current_xact_id(), gives the reader no id of its own) less XID_HORIZON; NULL
    # where the server does not track commit times.
    next_id = cast(cast(func.pg_snapshot_xmax(func.pg_current_snapshot()), Text), BigInteger)
    tracked = func.current_setting(literal("track_commit_timestamp")) == literal("on")
    horizon = select(case((tracked, next_id - literal(XID_HORIZON, BigInteger)))).scalar_subquery()
    own = select(
        cast(cast(func.pg_current_xact_id_if_assigned(), Text), BigInteger)
    ).scalar_subquery()
    # xid8 -> xid keeps the low 32 bits.
    xid = cast(cast(cast(recorded, Text), _Xid8()), _Xid())
    committed = cast(func.pg_xact_commit_timestamp(xid), written.type)
    # The reader's own rows have no commit time yet, and a NULL moment counts at no ``at``.
    pending = case((recorded == own, null()), else_=written)
    # CASE, not OR: only CASE guarantees pg_xact_commit_timestamp is not called (and fails)
    # on a server that does not track commit times.
    exact = func.coalesce(recorded > horizon, false())
    moment: ColumnElement[Any] = case((exact, func.coalesce(committed, pending)), else_=written)
    # A row commits after it is written, so ``written <= at`` holds of every row that counts;
    # said plainly, it lets the planner skip the partitions written after ``at``.
    return and_(written <= at, moment <= at)


#: Marker rows (a NULL key) end every row's life at once: a TRUNCATE's ``T``, and ``R``, where
#: a trail kept from an earlier life of the table restarts (``render/restart.py``).
MARKER_OPERATIONS = ("T", "R")
#: Every marker a row's history may show: these, and retention's ``X``.
HISTORY_MARKER_OPERATIONS = (*MARKER_OPERATIONS, RETENTION_OPERATION_CODE)


def marker_condition(table: Any, target: Audited) -> ColumnElement[bool]:
    """A marker row: operation ``T`` (TRUNCATE) or ``R`` (restart), and a NULL key."""
    return and_(
        table.c[AUDIT_OPERATION].in_(MARKER_OPERATIONS),
        *(table.c[k].is_(None) for k in target.key_columns),
    )


def retention_condition(
    table: Any, target: Audited, first: Any, first_operation: Any
) -> ColumnElement[bool]:
    """The retention marker before a row whose first version left (``first``, of operation
    ``first_operation``) is not its INSERT, or that has no version left: part or all of its
    history may have been removed.  The marker's ``audit_id`` is below every row left."""
    return and_(
        table.c[AUDIT_OPERATION] == RETENTION_OPERATION_CODE,
        *(table.c[k].is_(None) for k in target.key_columns),
        or_(first.is_(None), and_(table.c[AUDIT_ID] < first, first_operation != "I")),
    )


def versions(
    target: Audited,
    key: Mapping[str, Any],
    *,
    with_changes: bool,
    since: Moment | None = None,
    until: Moment | None = None,
) -> Subquery:
    """Every version of the row, and the TRUNCATE markers that removed it, oldest first
    (``with_changes``: and, per mirrored column ``i``, its value before and after and whether
    it changed, under ``target.labels``: ``before(i)``, ``after(i)``, ``changed(i)``).

    A marker counts when the version before it left the row present; markers while the row
    was absent are no part of its history.  The "before" of a version is the state the previous
    version left (NULL when the row did not exist, or its first recorded version is an UPDATE);
    a DELETE's "before" is the deleted row as recorded.

    ``since`` / ``until``: only the versions written in ``[since, until)``, each with the same
    "before" as in the whole history (see ``_look_back``); the time bound is on the audit
    table's partition key, so the partitions outside the window are not read.
    """
    audit, labels = target.audit, target.labels
    marker = labels.marker
    # The audit table is read once, for the row's versions and every marker together: each
    # reference to a partitioned audit table is planned over every partition, and without a
    # prepared statement (psycopg2 never prepares) that planning is most of a history query's
    # time.  Then the markers that concern the row are picked from what was read.
    null_key = and_(*(audit.c[k].is_(None) for k in target.key_columns))
    written = audit.c[AUDIT_TIMESTAMP]
    window = [
        *([] if since is None else [written >= since]),
        *([] if until is None else [written < until]),
    ]
    read = select(*audit.c, null_key.label(marker)).where(
        or_(
            key_filter(audit, key),
            and_(null_key, audit.c[AUDIT_OPERATION].in_(HISTORY_MARKER_OPERATIONS)),
        ),
        *window,
    )
    if since is None:
        rows = read.cte("audit_history_read")
    else:
        rows = union_all(read, *_look_back(target, key, since)).cte("audit_history_read")
    is_marker = rows.c[marker]
    earliest = (
        select(rows.c[AUDIT_ID], rows.c[AUDIT_OPERATION])
        .where(~is_marker)
        .order_by(rows.c[AUDIT_ID])
        .limit(1)
        .cte("audit_history_first")
    )
    first = select(earliest.c[AUDIT_ID]).scalar_subquery()
    first_operation = select(earliest.c[AUDIT_OPERATION]).scalar_subquery()
    both = (
        select(*rows.c)
        .where(
            or_(
                ~is_marker,
                and_(marker_condition(rows, target), rows.c[AUDIT_ID] > first),
                retention_condition(rows, target, first, first_operation),
            )
        )
        .subquery("audit_history_versions")
    )
    order = both.c[AUDIT_ID]
    spec = target.spec
    columns = spec.compared_columns if with_changes else ()
    lagged = select(
        *both.c,
        func.lag(both.c[AUDIT_OPERATION]).over(order_by=order).label(labels.previous_operation),
        *(
            func.lag(both.c[c]).over(order_by=order).label(labels.lag(i))
            for i, c in enumerate(columns)
            if c in both.c
        ),
    ).subquery("audit_history_lagged")
    operation = lagged.c[AUDIT_OPERATION]
    previous_present = lagged.c[labels.previous_operation].in_(STATE_OPERATIONS)
    recorded_gone = and_(operation.in_(GONE_OPERATIONS), ~lagged.c[marker])
    staged_columns: list[ColumnElement[Any]] = []
    for i, name in enumerate(columns):
        if spec.redaction(name) in ("mask", "omit"):
            # Nothing to compare: whether a value was there, and whether it changed (below).
            before = case((or_(recorded_gone, previous_present), true()))
            after = case((operation.in_(STATE_OPERATIONS), true()))
        else:
            value = lagged.c[name]
            before = case((recorded_gone, value), (previous_present, lagged.c[labels.lag(i)]))
            after = case((operation.in_(STATE_OPERATIONS), value))
        staged_columns += [before.label(labels.before(i)), after.label(labels.after(i))]
    # The look-back rows only lend the window's first version its "before".
    in_window = [] if since is None else [lagged.c[AUDIT_TIMESTAMP] >= since]
    staged = (
        select(*(lagged.c[c.name] for c in audit.c), lagged.c[marker], *staged_columns)
        .where(
            or_(~lagged.c[marker], previous_present, operation == RETENTION_OPERATION_CODE),
            *in_window,
        )
        .subquery("audit_history_staged")
    )
    # A layer of its own, so the comparison names before and after instead of repeating them.
    final = select(
        *staged.c,
        *(
            _changed(target, staged, name, i).label(labels.changed(i))
            for i, name in enumerate(columns)
        ),
    )
    return final.subquery("audit_history")


def _look_back(target: Audited, key: Mapping[str, Any], since: Moment) -> list[Select[Any]]:
    """What the first version at or after ``since`` needs from before it, to show the same
    "before" as in the whole history: the row's latest version written before ``since``, and
    the TRUNCATE / restart markers written after that version and before ``since`` (a marker
    between them means the row was gone).

    The version is found newest first down each earlier partition's history index, stopping
    at its first entry there; the markers are read only from the partitions written since that
    version (pruned when the query starts, once the version's time is known).
    """
    audit, marker = target.audit, target.labels.marker
    written = audit.c[AUDIT_TIMESTAMP]
    prior = (
        select(*audit.c)
        .where(key_filter(audit, key), written < since)
        .order_by(audit.c[AUDIT_ID].desc())
        .limit(1)
        .cte("audit_history_prior")
    )
    prior_id = select(prior.c[AUDIT_ID]).scalar_subquery()
    prior_written = select(prior.c[AUDIT_TIMESTAMP]).scalar_subquery()
    gone = select(*audit.c, true().label(marker)).where(
        *(audit.c[k].is_(None) for k in target.key_columns),
        audit.c[AUDIT_OPERATION].in_(MARKER_OPERATIONS),
        written < since,
        written >= prior_written,
        audit.c[AUDIT_ID] > prior_id,
    )
    return [select(*prior.c, false().label(marker)), gone]


def _changed(target: Audited, staged: Subquery, name: str, i: int) -> ColumnElement[bool]:
    """Whether version's column ``name`` (the ``i``-th compared column) changed.

    A redacted column's update says so in its recorded ``changed_columns`` (a hash would also
    change with the key version); elsewhere, and for an update that could not list them (its key
    moved), it changed when it appeared, went, or (hashed) its digest differs.
    """
    labels = target.labels
    before, after = staged.c[labels.before(i)], staged.c[labels.after(i)]
    form = target.spec.redaction(name)
    if form is None:
        return differ([before], [after])
    appeared_or_went = (
        differ([before], [after]) if form == "hash" else before.is_distinct_from(after)
    )
    listed = staged.c.get(CHANGED_COLUMNS)
    if listed is None:
        return appeared_or_went
    return case(
        (
            and_(staged.c[AUDIT_OPERATION] == "U", listed.is_not(None)),
            func.coalesce(literal(name) == any_(listed), false()),
        ),
        else_=appeared_or_went,
    )


def history_select(target: Audited, key: Mapping[str, Any]) -> Select[Any]:
    """Core form of ``history()``: the audit rows (markers included), oldest first."""
    sub = versions(target, key, with_changes=False)
    holds_values = case((~sub.c[target.labels.marker], true()))
    return select(
        *(
            shown(target.spec, c.name, sub.c[c.name], holds_values).label(c.name)
            for c in target.audit.c
        )
    ).order_by(sub.c[AUDIT_ID])


def who_columns(target: Audited) -> tuple[str, ...]:
    """The audit columns that say who made a change: the writer, then each session setting."""
    return (AUDIT_CURRENT_USER, *(setting.column for setting in target.spec.settings))


def changes_select(
    target: Audited,
    key: Mapping[str, Any],
    since: Moment | None = None,
    until: Moment | None = None,
) -> Select[Any]:
    """One row per changed column per version: ``audit_id``, ``audit_operation``,
    ``audit_operation_timestamp``, who made it (``who_columns``), ``column``, ``before``,
    ``after`` (both ``jsonb``); only the versions written in ``[since, until)``."""
    labels = target.labels
    # A CTE: the union below reads the versions once per column.
    window = versions(target, key, with_changes=True, since=since, until=until)
    sub = window.element.cte("audit_history")
    stamped = [sub.c[name] for name in (AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP)]
    stamped += [sub.c[name] for name in who_columns(target)]
    spec = target.spec
    parts = [
        select(
            *stamped,
            literal(name).label("column"),
            shown_json(spec, name, sub.c[labels.before(i)]).label("before"),
            shown_json(spec, name, sub.c[labels.after(i)]).label("after"),
            literal(i).label("position"),
        ).where(sub.c[labels.changed(i)])
        for i, name in enumerate(spec.compared_columns)
    ]
    every = union_all(*parts).subquery("audit_changes")
    before, after = every.c.before, every.c.after
    if spec.redacted:
        before, after = (type_coerce(c, ShownJson()).label(c.name) for c in (before, after))
    return select(
        *(every.c[name] for name in (AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP)),
        *(every.c[name] for name in who_columns(target)),
        every.c.column,
        before,
        after,
    ).order_by(every.c[AUDIT_ID], every.c.position)


def latest_versions(
    target: Audited,
    at: datetime.datetime | ColumnElement[datetime.datetime] | None,
    key: Mapping[str, Any] | None,
) -> Subquery:
    """The latest version of each row (or of ``key``) that counts at ``at`` (see
    ``counts_at``), after the latest TRUNCATE marker that counts; the caller keeps only those
    whose operation leaves a row.  ``at=None``: every version counts.
    """
    audit = target.audit
    visible = [] if at is None else [counts_at(audit, at)]
    if key is not None and PARTITIONING_KEY in audit.info:
        return _latest_partitioned_version(target, key, visible)
    last_marker = (
        select(func.max(audit.c[AUDIT_ID]))
        .where(marker_condition(audit, target), *visible)
        .scalar_subquery()
    )
    after_marker = audit.c[AUDIT_ID] > func.coalesce(last_marker, 0)
    keys = [audit.c[k] for k in target.key_columns]
    if key is not None:
        # Read newest first down the history index: it stops at the first version that
        # counts, however many versions the row has.
        one = select(*audit.c).where(key_filter(audit, key), *visible, after_marker)
        return one.order_by(audit.c[AUDIT_ID].desc()).limit(1).subquery("audit_as_of")
    every = (
        select(*audit.c)
        .where(*(k.is_not(None) for k in keys), *visible, after_marker)
        .order_by(*keys, audit.c[AUDIT_ID].desc())
    )
    return _distinct_on(every, keys).subquery("audit_as_of")


def _latest_partitioned_version(
    target: Audited, key: Mapping[str, Any], visible: list[ColumnElement[bool]]
) -> Subquery:
    """One row's latest version that counts, after the latest marker that counts, from a
    partitioned audit table: the row's versions and the markers are read in one scan, as in
    ``versions``, because each reference to a partitioned table is planned over every
    partition the time bound leaves, and without a prepared statement that planning costs
    more than reading the row's versions.  The price: every version that counts is read,
    where the unpartitioned form stops at the newest."""
    audit, marker = target.audit, target.labels.marker
    null_key = and_(*(audit.c[k].is_(None) for k in target.key_columns))
    read = (
        select(*audit.c, null_key.label(marker))
        .where(
            or_(
                key_filter(audit, key),
                and_(null_key, audit.c[AUDIT_OPERATION].in_(MARKER_OPERATIONS)),
            ),
            *visible,
        )
        .cte("audit_as_of_read")
    )
    last_marker = select(func.max(read.c[AUDIT_ID])).where(read.c[marker]).scalar_subquery()
    return (
        select(*(read.c[column.name] for column in audit.c))
        .where(~read.c[marker], read.c[AUDIT_ID] > func.coalesce(last_marker, 0))
        .order_by(read.c[AUDIT_ID].desc())
        .limit(1)
        .subquery("audit_as_of")
    )


def _distinct_on(statement: Select[Any], keys: list[Any]) -> Select[Any]:
    """``SELECT DISTINCT ON (keys)``: an extension in SQLAlchemy 2.1, a method in 2.0."""
    try:
        from sqlalchemy.dialects.postgresql import distinct_on
    except ImportError:  # SQLAlchemy 2.0
        return statement.distinct(*keys)
    return statement.ext(distinct_on(*keys))


def present(latest: Subquery) -> ColumnElement[bool]:
    return latest.c[AUDIT_OPERATION].in_(STATE_OPERATIONS)


def as_of_select(
    target: Audited,
    at: datetime.datetime | ColumnElement[datetime.datetime] | None,
    key: Mapping[str, Any] | None,
) -> Select[Any]:
    """Core form of ``as_of()``: the mirrored columns of the rows present at ``at``."""
    latest = latest_versions(target, at, key)
    return (
        select(*(shown(target.spec, c, latest.c[c], true()).label(c) for c in target.spec.columns))
        .where(present(latest))
        .order_by(*(latest.c[k] for k in target.key_columns))
    )
