"""SQL text of converting an unpartitioned audit table that holds history into a partitioned
one without copying its rows, and back.

The existing table becomes the first partition, ``FROM (FIRST_BOUND) TO (bound)``: a check
constraint saying exactly that is added ``NOT VALID`` (a moment's lock), validated (a scan that
lets writers through), and then ``ATTACH PARTITION`` finds its bound implied and skips its own
scan.  ``lifecycle.conversion`` runs these statements and says which lock each takes.

Index definitions are read back from the server (``pg_get_indexdef``, whose identifiers the
server quotes) and only their ``USING ...`` tail is reused, on the new parent.
"""

from __future__ import annotations

from ..declare.naming import fit_identifier
from ..declare.spec import AUDIT_ID, AUDIT_TIMESTAMP
from .sql import literal, qualified, quote

#: The first partition's lower bound: no audit row is older than year 1.
FIRST_BOUND = "0001-01-01 00:00:00+00"

#: The privileges ``GRANT`` takes on a table (what ``aclexplode`` reports), so a grant copied
#: from one table to another is only ever one of these words.
TABLE_PRIVILEGES = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN"}
)


def first_partition(audit_table: str, suffix: str) -> str:
    """The converted table's name as a partition: it holds everything until ``suffix``."""
    return fit_identifier(f"{audit_table}_until{suffix}")


def bound_check(audit_table: str) -> str:
    return fit_identifier(f"{audit_table}_converted")


def moved_index(partition: str, index: str) -> str:
    """The old table's index, renamed so that the parent's index can take its name."""
    return fit_identifier(f"{partition}_{index}")


def add_bound_check(schema: str | None, table: str, constraint: str, upper: str) -> str:
    """Exactly the partition constraint ``ATTACH`` will need, ``NOT VALID``: no scan now."""
    stamp = quote(AUDIT_TIMESTAMP)
    return (
        f"ALTER TABLE {qualified(schema, table)} ADD CONSTRAINT {quote(constraint)} "
        f"CHECK ({stamp} IS NOT NULL AND {stamp} >= {literal(FIRST_BOUND)} "
        f"AND {stamp} < {literal(upper)}) NOT VALID"
    )


def validate_check(schema: str | None, table: str, constraint: str) -> str:
    return f"ALTER TABLE {qualified(schema, table)} VALIDATE CONSTRAINT {quote(constraint)}"


def drop_check(schema: str | None, table: str, constraint: str) -> str:
    return f"ALTER TABLE {qualified(schema, table)} DROP CONSTRAINT IF EXISTS {quote(constraint)}"


def rename_table(schema: str | None, table: str, new: str) -> str:
    return f"ALTER TABLE {qualified(schema, table)} RENAME TO {quote(new)}"


def rename_index(schema: str | None, index: str, new: str) -> str:
    return f"ALTER INDEX {qualified(schema, index)} RENAME TO {quote(new)}"


def create_parent(schema: str | None, parent: str, like: str) -> str:
    """The partitioned parent, with the old table's columns, defaults, identity and column
    comments (its identity gets a sequence of its own, restarted past the old one)."""
    return (
        f"CREATE TABLE {qualified(schema, parent)} (LIKE {qualified(schema, like)} "
        "INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING COMMENTS) "
        f"PARTITION BY RANGE ({quote(AUDIT_TIMESTAMP)})"
    )


def restart_identity(schema: str | None, table: str, following: int) -> str:
    return (
        f"ALTER TABLE {qualified(schema, table)} ALTER COLUMN {quote(AUDIT_ID)} "
        f"RESTART WITH {int(following)}"
    )


def drop_identity(schema: str | None, table: str) -> str:
    return f"ALTER TABLE {qualified(schema, table)} ALTER COLUMN {quote(AUDIT_ID)} DROP IDENTITY"


def add_identity(schema: str | None, table: str, always: bool, following: int) -> str:
    kind = "ALWAYS" if always else "BY DEFAULT"
    return (
        f"ALTER TABLE {qualified(schema, table)} ALTER COLUMN {quote(AUDIT_ID)} "
        f"ADD GENERATED {kind} AS IDENTITY (START WITH {int(following)})"
    )


def create_index(schema: str | None, name: str, table: str, unique: bool, tail: str) -> str:
    """An index like one read back from the server: ``tail`` is its ``USING ...`` part."""
    kind = "UNIQUE INDEX" if unique else "INDEX"
    return f"CREATE {kind} {quote(name)} ON {qualified(schema, table)}{tail}"


def attach_first(schema: str | None, parent: str, partition: str, upper: str) -> str:
    return (
        f"ALTER TABLE {qualified(schema, parent)} ATTACH PARTITION {qualified(schema, partition)} "
        f"FOR VALUES FROM ({literal(FIRST_BOUND)}) TO ({literal(upper)})"
    )


def lock_exclusive(schema: str | None, table: str) -> str:
    return f"LOCK TABLE {qualified(schema, table)} IN ACCESS EXCLUSIVE MODE"


def copy_rows(schema: str | None, source: str, target: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(quote(column) for column in columns)
    return (
        f"INSERT INTO {qualified(schema, target)} ({names}) "
        f"SELECT {names} FROM {qualified(schema, source)}"
    )


def drop_table(schema: str | None, table: str) -> str:
    """The emptied parent and its other partitions, once their rows are copied."""
    return f"DROP TABLE {qualified(schema, table)} CASCADE"


def comment_table(schema: str | None, table: str, comment: str) -> str:
    return f"COMMENT ON TABLE {qualified(schema, table)} IS {literal(comment)}"


def grant(schema: str | None, table: str, privilege: str, role: str | None) -> str:
    if privilege not in TABLE_PRIVILEGES:
        raise ValueError(f"not a table privilege: {privilege!r}")
    grantee = "PUBLIC" if role is None else quote(role)
    return f"GRANT {privilege} ON TABLE {qualified(schema, table)} TO {grantee}"
