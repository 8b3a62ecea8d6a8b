"""``erase`` and ``erase_setting``: remove values from every recorded version, for a data
subject's right to erasure, and leave a marker that says who erased what, when and why.

Values are set to NULL in every version: through the audit table (every attached partition)
and in the partitions retention detached and kept (found by their comment, and only those that
are really the library's: ``partition_catalog.kept_partitions``).  Under
``append_only`` the guard lets exactly such an UPDATE through while ``ERASING_SETTING`` is set
(``render.guard``).  Each call writes an ``E`` row into each audit table it touched (who in
``audit_current_user``, when in ``audit_operation_timestamp``, no key, no value) and an ``E``
record into the chain of seals (reason, columns, number of rows, and again who and when).

Sealed rows stay verifiable: before a sealed row's values go, its row key is destroyed and
what verification needs is kept instead, the column keys of the columns that stay and the
commitments of the erased values (``_digest`` and SECURITY.md say why nothing left can test a
guess of an erased value).

An erasure first takes the audit table's turn (``lifecycle.turns``), so that a ``maintain``
draining the DEFAULT partition does not put back, from a copy made before it, what the erasure
NULLed; then it holds SHARE locks on the audit table (and the audited table, where the role may
lock it) until it commits, so that no version written concurrently escapes it, and re-analyzes
the columns it erased, since ``pg_stats`` samples values.  ``changed_columns`` stays: it names
columns, never values.

What erasure cannot reach: an archive server whose publication does not publish UPDATE (the
library's ``publish`` does publish it), and on any archive server the rows this server no
longer has (dropped or kept by retention, deleted by a purge: none of that is replicated), for
which ``erase`` must run on the archive too (``Erased.unreached_publications`` and a warning
say so); copies made outside the database (dumps, exports),
base backups and archived WAL, which keep the values until they expire, and dead row versions
until VACUUM removes them.
"""

from __future__ import annotations

import bisect
import decimal
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..declare.audit_table import AUDIT_TABLE_KEY, SPEC_KEY
from ..declare.spec import AUDIT_CURRENT_USER, AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP, AuditSpec
from ..errors import AuditError
from ..history._target import audited, key_filter, key_values
from ..install.ddl import _connection, resolve_spec
from ..render.erasure import MAY_LOCK, PUBLISHED_IN, analyze_erased, lock_for_erasure
from ..render.guard import ERASING_SETTING, PURGE_OPERATION_CODE
from ..render.partitioning import RETENTION_OPERATION_CODE
from ..render.seals import ERASURE_OPERATION_CODE, REMOVED_OPERATION, SEAL_OPERATION
from ..render.sql import name_text
from . import _chain
from ._digest import KeyTree, column_key, commitment
from ._segments import stream_rows
from .partition_catalog import kept_partitions
from .seals import audited_targets, removed_segments
from .turns import take_turns

Where = Callable[[sa.TableClause], sa.ColumnElement[bool]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Erased:
    """What one erasure did to one audit table."""

    audit_table: str
    #: ``audit_id`` of the ``E`` marker row; None when no recorded value matched (nothing was
    #: erased, so no marker was written).
    marker_id: int | None
    columns: tuple[str, ...]
    #: Audit rows whose values were set to NULL (kept partitions included).
    rows: int
    #: Of those, rows already sealed, whose row key was destroyed.
    sealed_rows: int
    #: Detached partitions kept by retention that held values erased here.
    kept_partitions: tuple[str, ...]
    #: The publications of this audit table (an archive server subscribes to them) when this
    #: server removed history an archive keeps (retention dropped or kept partitions, a purge
    #: deleted rows): neither a DROP, a DELETE of a purge nor an UPDATE of a kept partition is
    #: replicated, so the archive may still hold values this erasure did not reach there.  Run
    #: ``erase`` on the archive too.  Empty otherwise.
    unreached_publications: tuple[str, ...] = ()


def erase(
    bind: sa.Engine | sa.Connection,
    target: Any,
    pk: object,
    *,
    columns: Sequence[str] | None = None,
    reason: str,
) -> Erased:
    """Set ``columns`` (every non-key column by default) to NULL in every recorded version of
    the row of ``target`` (an audited Table or mapped class) with primary key ``pk``.

    Run it as the audit owner: it updates the audit table and appends to the chain of seals.
    On an Engine it runs in one transaction; on a Connection in the caller's.  It first waits
    for a ``maintain`` of the table in flight (its turn, ``lifecycle.turns``: on a Connection
    that has already read the audit table, that wait can end in a deadlock error, never in
    an erasure undone), then takes a SHARE lock on the audit table (and on ``target`` where
    the role may lock it), so it waits for writers in flight and holds new writes of the
    table back until it commits: a version written concurrently cannot escape it.  When no
    recorded value matches, nothing is written and the result says so (``rows == 0``,
    ``marker_id is None``).
    """
    resolved = audited(target)
    spec = resolved.spec
    _check_reason(reason, resolved.name)
    erased = _erasable(spec, resolved.name, columns)
    key = key_values(resolved, pk)
    with _connection(bind) as connection:
        spec = resolve_spec(connection, spec)
        _lock(connection, [spec])
        return _erase(
            connection, spec, resolved.audit, erased, lambda t: key_filter(t, key), reason
        )


def erase_setting(
    bind: sa.Engine | sa.Connection,
    target_or_metadata: sa.Table | sa.MetaData,
    name: str,
    value: object,
    *,
    reason: str,
) -> list[Erased]:
    """Set session setting ``name``'s column to NULL in every audit row that recorded
    ``value``, across every audited table of ``target_or_metadata`` that records the setting
    (one transaction on an Engine).  Returns what was done per audit table."""
    tables = [t for t in audited_targets(target_or_metadata) if _setting(t, name) is not None]
    what = getattr(target_or_metadata, "fullname", "the metadata")
    if not tables:
        raise AuditError(f"no audited table of {what} records session setting {name!r}")
    _check_reason(reason, what)
    if value is None:
        raise AuditError(f"erase_setting: the value of setting {name!r} to erase is None")
    for table in tables:
        _check_setting_value(table, name, value)
    done = []
    with _connection(bind) as connection:
        specs = [resolve_spec(connection, table.info[SPEC_KEY]) for table in tables]
        _lock(connection, specs)
        for table, spec in zip(tables, specs, strict=True):
            column = _setting(table, name)
            assert column is not None
            done.append(
                _erase(
                    connection,
                    spec,
                    table.info[AUDIT_TABLE_KEY],
                    (column,),
                    _equals(column, value),
                    reason,
                )
            )
    return done


def _check_setting_value(table: sa.Table, name: str, value: object) -> None:
    """A value of the setting column's Python type (a number also for a numeric column)."""
    column = _setting(table, name)
    assert column is not None
    try:
        expected = table.info[AUDIT_TABLE_KEY].c[column].type.python_type
    except NotImplementedError:
        return
    numeric = expected in (float, decimal.Decimal) and isinstance(
        value, (int, float, decimal.Decimal)
    )
    if (isinstance(value, bool) and expected is not bool) or not (
        isinstance(value, expected) or numeric
    ):
        raise AuditError(
            f"erase_setting: setting {name!r} is recorded as {expected.__name__} in "
            f"{table.fullname!r}, got {type(value).__name__} {value!r}"
        )


def _lock(connection: sa.Connection, specs: Sequence[AuditSpec]) -> None:
    """The audit tables' turns first (``lifecycle.turns``: a drain in flight is waited for,
    and does not put back what is erased), then SHARE locks on the audited tables the role
    may lock, then on their audit tables (the order writers take theirs in), so that no write
    in flight escapes the erasure."""
    take_turns(connection, specs)
    for spec in specs:
        source = name_text(spec.schema, spec.table)
        if connection.execute(sa.text(MAY_LOCK), {"table": source}).scalar_one():
            connection.execute(sa.text(lock_for_erasure(spec.schema, spec.table)))
    for spec in specs:
        connection.execute(sa.text(lock_for_erasure(spec.schema, spec.audit_table)))


def _equals(column: str, value: object) -> Where:
    return lambda table: table.c[column] == value


def _setting(table: sa.Table, name: str) -> str | None:
    spec: AuditSpec = table.info[SPEC_KEY]
    return next((s.column for s in spec.settings if s.name == name), None)


def _check_reason(reason: object, what: str) -> None:
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"reason must say why values of {what} are erased (it is recorded)")


def _erasable(spec: AuditSpec, table: str, columns: Sequence[str] | None) -> tuple[str, ...]:
    if columns is None:
        return tuple(c for c in spec.columns if c not in spec.key_columns)
    if isinstance(columns, str) or not columns:
        raise AuditError(f"table {table!r}: columns must be a non-empty list of column names")
    for column in columns:
        if column in spec.key_columns:
            raise AuditError(
                f"table {table!r}: column {column!r} is a primary key column; audit rows are "
                "found by their key, so it cannot be erased"
            )
        if column in spec.exclude_columns:
            raise AuditError(f"table {table!r}: column {column!r} is not recorded (excluded)")
        if column not in spec.columns:
            raise AuditError(f"table {table!r} has no recorded column {column!r}")
    return tuple(dict.fromkeys(columns))


def _erase(
    connection: sa.Connection,
    spec: AuditSpec,
    audit: sa.Table,
    columns: tuple[str, ...],
    where: Where,
    reason: str,
) -> Erased:
    schema, name = spec.schema, spec.audit_table
    kept = kept_partitions(connection, schema, name).names
    relations = (name, *kept)
    unreached = _unreached_publications(connection, schema, audit, bool(kept))
    if not _any_present(connection, schema, relations, audit, columns, where):
        return Erased(
            audit_table=name,
            marker_id=None,
            columns=columns,
            rows=0,
            sealed_rows=0,
            kept_partitions=(),
            unreached_publications=unreached,
        )
    _chain.prepare(connection, schema)
    marker = _write_marker(connection, schema, audit)
    connection.execute(sa.select(sa.func.set_config(ERASING_SETTING, str(marker), True)))
    sealed = _shred_sealed_rows(connection, schema, name, audit, columns, where, marker)
    rows, touched = 0, []
    for relation in relations:
        table = _typed(schema, relation, audit)
        updated = connection.execute(
            sa.update(table)
            .where(where(table), _present(table, columns))
            # SQL NULL, not a JSON column's JSON 'null' (which is a value).
            .values({column: sa.null() for column in columns})
        ).rowcount
        rows += updated
        if updated and relation != name:
            touched.append(relation)
        if updated:
            connection.execute(sa.text(analyze_erased(schema, relation, columns)))
    connection.execute(sa.select(sa.func.set_config(ERASING_SETTING, "", True)))
    _chain.append_erasure(
        connection,
        schema,
        audit_table=name,
        marker=marker,
        columns=columns,
        rows=rows,
        reason=reason.strip(),
    )
    return Erased(
        audit_table=name,
        marker_id=marker,
        columns=columns,
        rows=rows,
        sealed_rows=sealed,
        kept_partitions=tuple(touched),
        unreached_publications=unreached,
    )


def _unreached_publications(
    connection: sa.Connection, schema: str | None, audit: sa.Table, kept: bool
) -> tuple[str, ...]:
    """The publications of ``audit`` when this server removed history its subscribers keep
    (``Erased.unreached_publications``), with a warning saying so."""
    where = {"audit_table": name_text(schema, audit.name)}
    publications = tuple(connection.execute(sa.text(PUBLISHED_IN), where).scalars())
    if not publications:
        return ()
    if not kept:
        table = _typed(schema, audit.name, audit)
        removed = sa.select(sa.literal(1)).where(
            table.c[AUDIT_OPERATION].in_([RETENTION_OPERATION_CODE, PURGE_OPERATION_CODE])
        )
        if not connection.execute(sa.select(sa.exists(removed))).scalar_one():
            return ()
    warnings.warn(
        f"{name_text(schema, audit.name)} is published ({', '.join(publications)}) and this "
        "server removed history (retention, a purge) that an archive subscribed to it keeps: "
        "erasing here does not reach those rows there; run erase on the archive too",
        UserWarning,
        stacklevel=4,
    )
    return publications


def _present(table: sa.TableClause, columns: Sequence[str]) -> sa.ColumnElement[bool]:
    return sa.or_(*(table.c[column].is_not(None) for column in columns))


def _any_present(
    connection: sa.Connection,
    schema: str | None,
    relations: Sequence[str],
    audit: sa.Table,
    columns: Sequence[str],
    where: Where,
) -> bool:
    """Whether any recorded version still holds a value to erase (after the locks)."""
    for relation in relations:
        table = _typed(schema, relation, audit)
        found = (
            sa.select(sa.literal(1))
            .select_from(table)
            .where(where(table), _present(table, columns))
        )
        if connection.execute(sa.select(sa.exists(found))).scalar_one():
            return True
    return False


def _typed(
    schema: str | None, relation: str, audit: sa.Table, more: Sequence[str] = ()
) -> sa.TableClause:
    """``relation`` with the declared audit table's typed columns (values are bound by type),
    and ``more`` columns the database has besides."""
    extra: list[sa.ColumnClause[Any]] = [sa.column(name) for name in more if name not in audit.c]
    return sa.table(
        relation, *(sa.column(c.name, c.type) for c in audit.columns), *extra, schema=schema
    )


def _write_marker(connection: sa.Connection, schema: str | None, audit: sa.Table) -> int:
    table = _typed(schema, audit.name, audit)
    marker = sa.insert(table).values(
        {
            AUDIT_OPERATION: ERASURE_OPERATION_CODE,
            AUDIT_TIMESTAMP: sa.func.clock_timestamp(),
            AUDIT_CURRENT_USER: sa.func.current_user(),
        }
    )
    return int(connection.execute(marker.returning(table.c[AUDIT_ID])).scalar_one())


def _shred_sealed_rows(
    connection: sa.Connection,
    schema: str | None,
    name: str,
    audit: sa.Table,
    columns: tuple[str, ...],
    where: Where,
    marker: int,
) -> int:
    """Destroy the row keys of the sealed rows about to lose values, keeping what verifying
    them needs; returns how many."""
    records = _chain.records(connection, schema)
    removed = {
        r.seal_id
        for record in records
        if record.kind == REMOVED_OPERATION and record.audit_table == name
        for r in removed_segments(records, name, record.lower_bound, record.upper_bound)
    }
    segments = [
        r
        for r in records
        if r.kind == SEAL_OPERATION and r.audit_table == name and r.seal_id not in removed
    ]
    if not segments:
        return 0
    every = tuple(dict.fromkeys(c for s in segments for c in s.columns))
    table = _typed(schema, name, audit, every)
    present = sa.or_(*(table.c[column].is_not(None) for column in columns))
    condition = sa.and_(where(table), present)
    trees = _chain.key_trees(connection, schema, segments)
    erased = _chain.erased_table(schema)
    changed: set[int] = set()
    material = []
    rows = list(stream_rows(connection, table, every, condition))
    known = _material(connection, schema, name, [row[0] for row in rows])
    segments.sort(key=lambda s: s.range_high)
    highs = [s.range_high for s in segments]
    for audit_id, _, _, moment, values in rows:
        segment = _segment_of(segments, highs, audit_id, moment)
        if segment is None:
            continue  # not sealed yet: its NULLs are what the seal will cover
        texts = dict(zip(every, values, strict=True))
        kept, commitments = _split(
            segment, trees[segment.seal_id], known.get(audit_id), columns, texts, audit_id, name
        )
        material.append(
            {
                "audit_table": name,
                "audit_id": audit_id,
                "marker_id": marker,
                "kept_keys": kept,
                "commitments": commitments,
            }
        )
        changed.add(segment.seal_id)
    if material:
        ids = [item["audit_id"] for item in material]
        connection.execute(
            sa.delete(erased).where(erased.c.audit_table == name, erased.c.audit_id.in_(ids))
        )
        connection.execute(sa.insert(erased), material)
    for seal_id in changed:
        _chain.store_tree(connection, schema, seal_id, trees[seal_id])
    return len(material)


def _segment_of(
    segments: Sequence[_chain.Record], highs: Sequence[int], audit_id: int, moment: Any
) -> _chain.Record | None:
    """The segment holding a row (``segments`` sorted by ``range_high``: the runs' ranges do
    not overlap, so the segments whose range holds ``audit_id`` are next to each other)."""
    for segment in segments[bisect.bisect_left(highs, audit_id) :]:
        if segment.range_low >= audit_id:
            return None
        if segment.covers(audit_id, moment):
            return segment
    return None


def _split(
    segment: _chain.Record,
    tree: KeyTree,
    known: tuple[dict[str, str], dict[str, str]] | None,
    columns: tuple[str, ...],
    texts: dict[str, str | None],
    audit_id: int,
    name: str,
) -> tuple[dict[str, str], dict[str, str]]:
    """The column keys that stay and the commitments of the erased columns, for one row."""
    if known is not None:
        kept, commitments = dict(known[0]), dict(known[1])
        for column in columns:
            if column in kept:
                commitments[column] = commitment(
                    bytes.fromhex(kept.pop(column)), texts[column]
                ).hex()
        return kept, commitments
    row_key = tree.puncture(audit_id - segment.range_low - 1)
    if row_key is None:
        raise AuditError(
            f"sealed row {audit_id} of {name!r} has no key and no erasure record: run verify"
        )
    keys = {column: column_key(row_key, column) for column in segment.columns}
    return (
        {c: k.hex() for c, k in keys.items() if c not in columns},
        {c: commitment(k, texts[c]).hex() for c, k in keys.items() if c in columns},
    )


def _material(
    connection: sa.Connection, schema: str | None, name: str, ids: list[int]
) -> dict[int, tuple[dict[str, str], dict[str, str]]]:
    erased = _chain.erased_table(schema)
    rows = connection.execute(
        sa.select(erased.c.audit_id, erased.c.kept_keys, erased.c.commitments).where(
            erased.c.audit_table == name, erased.c.audit_id.in_(ids)
        )
    )
    return {row.audit_id: (row.kept_keys, row.commitments) for row in rows}
