"""Reading the audit trail with plain SQLAlchemy Core: the demo's stand-in for the history API.

The functions are named and shaped like the library's coming history API (``history``,
``changes``, ``as_of``, ``restore``), so the demo switches to it by replacing these bodies (or
this module's import).  They read the audit table declared in ``table.info["audit.table"]``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ...audit_table import AUDIT_TABLE_KEY, SPEC_KEY
from ...spec import AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP, AuditSpec

OPERATIONS = {"I": "INSERT", "U": "UPDATE", "D": "DELETE", "T": "TRUNCATE"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Version:
    """One audit row: who changed a row, when, and the row it recorded."""

    audit_id: int
    operation: str
    at: datetime.datetime
    context: dict[str, object]  # session settings: username, request_id, ...
    values: dict[str, object]  # the source row (the old row for a DELETE)


def _parts(table: sa.Table) -> tuple[sa.Table, AuditSpec]:
    return table.info[AUDIT_TABLE_KEY], table.info[SPEC_KEY]


def _version(row: sa.RowMapping, spec: AuditSpec) -> Version:
    return Version(
        audit_id=row[AUDIT_ID],
        operation=OPERATIONS[row[AUDIT_OPERATION]],
        at=row[AUDIT_TIMESTAMP],
        context={s.name: row[s.column] for s in spec.settings},
        values={name: row[name] for name in spec.columns},
    )


def history(connection: sa.Connection, table: sa.Table, key: Sequence[object]) -> list[Version]:
    """Every recorded version of the row with primary key ``key``, oldest first."""
    audit, spec = _parts(table)
    query = (
        sa.select(audit)
        .where(*(audit.c[name] == value for name, value in zip(spec.key_columns, key, strict=True)))
        .order_by(audit.c[AUDIT_ID])
    )
    return [_version(row, spec) for row in connection.execute(query).mappings()]


def changes(versions: Sequence[Version]) -> list[dict[str, tuple[object, object]]]:
    """For each version, the columns that differ from the version before: ``(old, new)``."""
    diffs: list[dict[str, tuple[object, object]]] = []
    previous: dict[str, object] = {}
    for version in versions:
        if version.operation == "DELETE":
            diffs.append({})
            previous = {}
            continue
        diffs.append(
            {
                name: (previous.get(name), value)
                for name, value in version.values.items()
                if name not in previous or previous[name] != value
            }
        )
        previous = version.values
    return diffs


def as_of(
    connection: sa.Connection, table: sa.Table, moment: datetime.datetime
) -> list[dict[str, object]]:
    """The rows of ``table`` as they stood at ``moment``, by primary key."""
    audit, spec = _parts(table)
    keys = [audit.c[name] for name in spec.key_columns]
    recorded = audit.c[AUDIT_TIMESTAMP] <= moment
    # A TRUNCATE marker row (no key) removed everything recorded before it.
    truncated = sa.select(sa.func.max(audit.c[AUDIT_ID])).where(
        recorded, audit.c[AUDIT_OPERATION] == "T", keys[0].is_(None)
    )
    latest = (
        sa.select(audit)
        .distinct(*keys)
        .where(recorded, keys[0].is_not(None))
        .where(audit.c[AUDIT_ID] > sa.func.coalesce(truncated.scalar_subquery(), 0))
        .order_by(*keys, audit.c[AUDIT_ID].desc())
        .subquery()
    )
    query = (
        sa.select(*(latest.c[name] for name in spec.columns))
        .where(latest.c[AUDIT_OPERATION].in_(("I", "U")))
        .order_by(*(latest.c[name] for name in spec.key_columns))
    )
    return [dict(row) for row in connection.execute(query).mappings()]


def restore(connection: sa.Connection, table: sa.Table, version: Version) -> None:
    """Put the row back as ``version`` recorded it: update it if it exists, else insert it.

    The restore is a write like any other, so it is audited under the caller's context.
    """
    _, spec = _parts(table)
    key = {name: version.values[name] for name in spec.key_columns}
    rest = {name: value for name, value in version.values.items() if name not in key}
    where = [table.c[name] == value for name, value in key.items()]
    if connection.execute(table.update().where(*where).values(rest)).rowcount == 0:
        connection.execute(table.insert().values(version.values))
