"""A conversion to partitions (``lifecycle.conversion``) that stopped after its first step.

Step 1 adds a ``NOT VALID`` check constraint bounding the timestamp of every new row by the
first partition's upper bound, so that step 2 can validate it without holding writers and
step 3's ``ATTACH`` can skip its scan.  That bound is a moment that passes: left behind by a
crash, the constraint would refuse every write from then on.  ``check`` reports it by name,
and ``maintain`` removes it (its advisory lock keeps it from racing a conversion that is still
running) and says how to finish the conversion.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ..render.conversion import bound_check
from ..render.sql import name_text


@dataclass(frozen=True, slots=True)
class Unfinished:
    """The leftover constraint of an audit table whose conversion did not finish."""

    audit_table: str
    constraint: str
    definition: str

    def advice(self) -> str:
        return (
            f"converting audit table {self.audit_table} to partitions did not finish: its "
            f"check constraint {self.constraint} ({self.definition}) refuses every write after "
            "that bound; finish the conversion (partition_audit_table, or run the Alembic "
            "migration again), or run maintain, which removes the constraint"
        )


_LEFTOVER = sa.text(
    "SELECT k.conname, pg_catalog.pg_get_constraintdef(k.oid) AS definition "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_constraint k ON k.conrelid = c.oid "
    "WHERE c.oid = pg_catalog.to_regclass(:t) AND c.relkind = 'r' AND k.conname = :k"
)


def unfinished_conversion(
    connection: sa.Connection, schema: str | None, audit_table: str
) -> Unfinished | None:
    """The leftover bound check of ``audit_table``, when it is still an unpartitioned table
    carrying one."""
    name = name_text(schema, audit_table)
    found = connection.execute(_LEFTOVER, {"t": name, "k": bound_check(audit_table)}).first()
    if found is None:
        return None
    return Unfinished(audit_table=name, constraint=found.conname, definition=found.definition)
