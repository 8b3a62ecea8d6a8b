"""SQL text of partitioned audit tables: the DEFAULT partition, range partitions, the drain of
the DEFAULT partition, the append-only guard on each partition, retention by DETACH
and DROP, and the retention holds.

Names go through ``.sql``'s quoting; bounds are timestamps the library computed, rendered as
string literals by the dialect.  ``maintenance`` runs these statements and says why each is
safe for writers.
"""

from __future__ import annotations

import hashlib

from ..declare.naming import MAX_IDENTIFIER_BYTES, fit_identifier
from ..declare.spec import AUDIT_TIMESTAMP, AuditSpec
from .guard import GUARD_TRIGGER, GUARD_TRUNCATE_TRIGGER, guard_function
from .sql import literal, qualified, quote

#: ``audit_operation`` of the row retention leaves at the front of the trail: its timestamp is
#: the bound up to which history was removed.  (I U D T P B K R are taken; E is erasure's.)
RETENTION_OPERATION_CODE = "X"

#: The table of retention holds, one per schema holding audit tables, a row per hold (keyed by
#: audit table and reason).  Created by ``hold`` and owned by the audit table's owner; nobody
#: else is granted anything on it.
HOLDS_TABLE = "sqlalchemy_postgresql_audit_holds"
#: Its columns: a holds table with any other is not the library's.
HOLDS_COLUMNS = ("audit_table", "reason", "held_by", "held_at")


#: What an audit table's partition is called in its comment, before the audit table's name
#: and the audit tables' comment suffix (``lifecycle.partition_catalog.partition_comment``).
PARTITION_COMMENT_PREFIX = "Partition of audit table "


def default_partition(audit_table: str) -> str:
    return fit_identifier(f"{audit_table}_default")


def range_partition(audit_table: str, suffix: str, copy: int = 1) -> str:
    """A range partition's name: the audit table's, ``_p`` and its period (``copy`` > 1: a
    period made again while a partition retention kept holds the first name).  Where that is
    too long, the audit table's part is shortened (with a hash of it), never the period's, so
    the names of one table's partitions still show and sort by their period."""
    tail = f"_p{suffix}" + (f"_{copy}" if copy > 1 else "")
    whole = f"{audit_table}{tail}"
    if len(whole.encode("utf-8")) <= MAX_IDENTIFIER_BYTES:
        return whole
    digest = hashlib.sha256(audit_table.encode("utf-8")).hexdigest()[:8]
    budget = MAX_IDENTIFIER_BYTES - len(tail) - len(digest) - 1
    prefix = audit_table.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return f"{prefix}_{digest}{tail}"


def create_default_partition(schema: str | None, audit_table: str) -> str:
    """The DEFAULT partition: where a write lands when no range partition covers its time."""
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(schema, default_partition(audit_table))} "
        f"PARTITION OF {qualified(schema, audit_table)} DEFAULT"
    )


def create_range_partition(
    schema: str | None, audit_table: str, name: str, lower: str, upper: str
) -> str:
    return (
        f"CREATE TABLE {qualified(schema, name)} PARTITION OF {qualified(schema, audit_table)} "
        f"FOR VALUES FROM ({literal(lower)}) TO ({literal(upper)})"
    )


def detach_partition(schema: str | None, audit_table: str, name: str) -> str:
    """Plain DETACH: ``CONCURRENTLY`` is refused while the table has a DEFAULT partition."""
    return (
        f"ALTER TABLE {qualified(schema, audit_table)} DETACH PARTITION {qualified(schema, name)}"
    )


def refill_partition(
    schema: str | None,
    source: str,
    partition: str,
    columns: tuple[str, ...],
    lower: str,
    upper: str,
) -> str:
    """Copy ``source``'s rows of ``[lower, upper)`` (every stored column) into ``partition``
    while both are outside the partition tree, so a publication of the audit table
    (``lifecycle.archive``) does not send the moved rows a second time."""
    names = ", ".join(quote(column) for column in columns)
    stamp = quote(AUDIT_TIMESTAMP)
    return (
        f"INSERT INTO {qualified(schema, partition)} ({names}) "
        f"OVERRIDING SYSTEM VALUE SELECT {names} FROM {qualified(schema, source)} "
        f"WHERE {stamp} >= {literal(lower)} AND {stamp} < {literal(upper)}"
    )


def create_like_parent(schema: str | None, audit_table: str, name: str) -> str:
    """A plain table shaped like the partitioned parent, with its indexes, to be filled
    outside the partition tree and attached afterwards (``ATTACH`` adopts the indexes)."""
    return (
        f"CREATE TABLE {qualified(schema, name)} (LIKE {qualified(schema, audit_table)} "
        "INCLUDING DEFAULTS INCLUDING INDEXES)"
    )


def add_bounds_check(schema: str | None, name: str, check: str, lower: str, upper: str) -> str:
    """Exactly the partition constraint of ``[lower, upper)``, validated (a scan of the table
    alone), so that ``ATTACH`` finds it implied and skips its own scan under its lock."""
    stamp = quote(AUDIT_TIMESTAMP)
    return (
        f"ALTER TABLE {qualified(schema, name)} ADD CONSTRAINT {quote(check)} "
        f"CHECK ({stamp} IS NOT NULL AND {stamp} >= {literal(lower)} "
        f"AND {stamp} < {literal(upper)})"
    )


def drop_constraint(schema: str | None, name: str, check: str) -> str:
    return f"ALTER TABLE {qualified(schema, name)} DROP CONSTRAINT {quote(check)}"


def attach_partition(
    schema: str | None, audit_table: str, partition: str, lower: str, upper: str
) -> str:
    return (
        f"ALTER TABLE {qualified(schema, audit_table)} ATTACH PARTITION "
        f"{qualified(schema, partition)} FOR VALUES FROM ({literal(lower)}) TO ({literal(upper)})"
    )


def replica_identity_full(schema: str | None, name: str) -> str:
    """What a published audit table's partitions need so that an UPDATE of their rows (an
    erasure) can be published (``lifecycle.archive``)."""
    return f"ALTER TABLE {qualified(schema, name)} REPLICA IDENTITY FULL"


def lock_parent(schema: str | None, audit_table: str) -> str:
    """What creating or detaching a partition takes anyway, taken before reading the DEFAULT
    partition, so that no write lands there in between."""
    return f"LOCK TABLE {qualified(schema, audit_table)} IN ACCESS EXCLUSIVE MODE"


def wait_for_ddl(schema: str | None, audit_table: str) -> str:
    """The weakest lock, which only DDL in progress (a conversion's swap) makes wait, so that
    what is read of the table afterwards is what that DDL committed; writers never wait."""
    return f"LOCK TABLE {qualified(schema, audit_table)} IN ACCESS SHARE MODE"


def drop_partition(schema: str | None, name: str) -> str:
    return f"DROP TABLE {qualified(schema, name)}"


def align_owner(schema: str | None, name: str, owner: str) -> str:
    """A partition belongs to the audit table's owner, not to whoever ran ``maintain``."""
    return f"ALTER TABLE {qualified(schema, name)} OWNER TO {quote(owner)}"


def revoke_everything(schema: str | None, name: str, role: str | None) -> str:
    """Take every right on a new partition from ``role`` (``None``: PUBLIC): default
    privileges may have granted some; writers need none, they write through the parent."""
    grantee = "PUBLIC" if role is None else quote(role)
    return f"REVOKE ALL ON TABLE {qualified(schema, name)} FROM {grantee} CASCADE"


#: Who holds a right on a table besides its owner (``None``: PUBLIC), e.g. by default
#: privileges.
OTHER_GRANTEES = (
    "SELECT DISTINCT CASE WHEN a.grantee = 0 THEN NULL "
    "ELSE pg_catalog.pg_get_userbyid(a.grantee) END "
    "FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a "
    "WHERE c.oid = CAST(:t AS regclass) AND a.grantee <> c.relowner"
)


def comment_partition(schema: str | None, name: str, comment: str) -> str:
    return f"COMMENT ON TABLE {qualified(schema, name)} IS {literal(comment)}"


def guard_partition(schema: str | None, name: str, spec: AuditSpec) -> str:
    """The append-only guard's BEFORE TRUNCATE trigger on one partition: a statement trigger
    on the parent does not fire for a TRUNCATE naming a partition (its row triggers, which
    refuse UPDATE and DELETE, are cloned onto every partition by PostgreSQL itself)."""
    return (
        f"CREATE OR REPLACE TRIGGER {quote(GUARD_TRUNCATE_TRIGGER)}\n"
        f"BEFORE TRUNCATE ON {qualified(schema, name)}\nFOR EACH STATEMENT\n"
        f"EXECUTE FUNCTION {qualified(spec.schema, guard_function(spec))}()"
    )


def guard_kept_partition(schema: str | None, name: str, spec: AuditSpec) -> str:
    """The append-only guard's row trigger on a partition retention detached and kept: the
    parent's clone of it went with the DETACH."""
    return (
        f"CREATE OR REPLACE TRIGGER {quote(GUARD_TRIGGER)}\n"
        f"BEFORE UPDATE OR DELETE ON {qualified(schema, name)}\nFOR EACH ROW\n"
        f"EXECUTE FUNCTION {qualified(spec.schema, guard_function(spec))}()"
    )


def create_holds_table(schema: str | None) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(schema, HOLDS_TABLE)} ("
        "audit_table text NOT NULL, reason text NOT NULL, "
        "held_by text NOT NULL DEFAULT current_user, "
        "held_at timestamptz NOT NULL DEFAULT pg_catalog.now(), "
        "PRIMARY KEY (audit_table, reason))"
    )


def wait_for_writers(schema: str | None, audit_table: str) -> str:
    """Queue behind the writers in flight on the parent (whose INSERTs hold ROW EXCLUSIVE on
    it); run in a savepoint rolled back at once, which releases the lock: retention's ``X``
    marker then knows every ``audit_id`` they took (``lifecycle.maintenance``)."""
    return f"LOCK TABLE ONLY {qualified(schema, audit_table)} IN SHARE MODE"


def lock_holds_table(schema: str | None) -> str:
    """Before changing the holds table's key: no other session reads or changes it meanwhile."""
    return f"LOCK TABLE {qualified(schema, HOLDS_TABLE)} IN ACCESS EXCLUSIVE MODE"


def widen_holds_key(schema: str | None, constraint: str) -> str:
    """A holds table made before holds stacked keys them by table alone, so a second hold
    could only replace the first: key them by table and reason, keeping every row."""
    return (
        f"ALTER TABLE {qualified(schema, HOLDS_TABLE)} DROP CONSTRAINT {quote(constraint)}, "
        "ADD PRIMARY KEY (audit_table, reason)"
    )
