"""SQL text of seals: the chain and its side tables (one set per schema holding audit tables),
the settings that make PostgreSQL's text output of values canonical, and the catalog reads the
seal horizon needs.

The tables are created by the first ``seal`` (or ``erase``) and belong to whoever runs it, the
audit owner; ``REVOKE ALL ... FROM PUBLIC`` keeps everyone else out.  Nothing here is on a
writer's path: no trigger reads or writes these tables.
"""

from __future__ import annotations

from .sql import qualified

#: The chain: one record per sealed segment (``S``), removed partition (``R``) and erasure
#: (``E``), each holding the head of the chain up to itself.
SEALS_TABLE = "sqlalchemy_postgresql_audit_seals"
#: Per sealed segment, the frontier of its key tree (``lifecycle._digest.KeyTree``).
SEAL_KEYS_TABLE = "sqlalchemy_postgresql_audit_seal_keys"
#: Per sealed segment, each row's ``audit_id`` offset and a short tag of its digest, in order:
#: only read after the segment's digest failed, to name the first row that differs.
SEAL_ROWS_TABLE = "sqlalchemy_postgresql_audit_seal_rows"
#: Per erased audit row: the column keys of the columns that stayed and the commitments of the
#: erased ones, and the ``E`` marker that authorised it.
SEAL_ERASED_TABLE = "sqlalchemy_postgresql_audit_seal_erased"
#: Per audit table, the seal horizon's candidate: the sequence's last value and the
#: transactions running when it was read (``lifecycle.seals`` says why).
SEAL_PENDING_TABLE = "sqlalchemy_postgresql_audit_seal_pending"

SEAL_TABLES = (
    SEALS_TABLE,
    SEAL_KEYS_TABLE,
    SEAL_ROWS_TABLE,
    SEAL_ERASED_TABLE,
    SEAL_PENDING_TABLE,
)

SEAL_OPERATION = "S"
REMOVED_OPERATION = "R"
#: The ``audit_operation`` of the row ``erase`` writes into the audit table, and the kind of its
#: record in the chain.
ERASURE_OPERATION_CODE = "E"

#: Settings under which PostgreSQL's text output of a value is the same in every session:
#: values are committed to as that text (``lifecycle._digest``).
CANONICAL_SETTINGS = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
)


def create_seal_tables(schema: str | None) -> tuple[str, ...]:
    """``CREATE TABLE IF NOT EXISTS`` of the chain and its side tables, and their revokes."""
    tables = {
        SEALS_TABLE: (
            "seal_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "kind char(1) NOT NULL, audit_table text NOT NULL, segment text NOT NULL, "
            "lower_bound timestamptz, upper_bound timestamptz, "
            "range_low bigint NOT NULL, range_high bigint NOT NULL, "
            "row_count bigint NOT NULL, columns text[] NOT NULL, digest bytea NOT NULL, "
            "detail text NOT NULL, recorded_by text NOT NULL, recorded_at timestamptz NOT NULL, "
            "prev_head bytea NOT NULL, head bytea NOT NULL"
        ),
        SEAL_KEYS_TABLE: (
            "seal_id bigint NOT NULL, depth integer NOT NULL, prefix bigint NOT NULL, "
            "key bytea NOT NULL, PRIMARY KEY (seal_id, depth, prefix)"
        ),
        SEAL_ROWS_TABLE: "seal_id bigint PRIMARY KEY, row_index bytea NOT NULL",
        SEAL_ERASED_TABLE: (
            "audit_table text NOT NULL, audit_id bigint NOT NULL, marker_id bigint NOT NULL, "
            "kept_keys jsonb NOT NULL, commitments jsonb NOT NULL, "
            "PRIMARY KEY (audit_table, audit_id)"
        ),
        SEAL_PENDING_TABLE: (
            "audit_table text PRIMARY KEY, last_value bigint NOT NULL, running text[] NOT NULL, "
            "server_started timestamptz NOT NULL"
        ),
    }
    statements: list[str] = []
    for name, columns in tables.items():
        statements.append(f"CREATE TABLE IF NOT EXISTS {qualified(schema, name)} ({columns})")
        statements.append(f"REVOKE ALL ON TABLE {qualified(schema, name)} FROM PUBLIC")
    return tuple(statements)


#: The transactions, other than the caller's, that may hold an uncommitted row of an audit table
#: (``:audit``): those holding ROW EXCLUSIVE on it, which an INSERT takes before it draws an
#: ``audit_id``, prepared transactions included.  Each is listed by its virtual transaction id
#: and, once it has one, its xid (``x...``), which survives PREPARE TRANSACTION and a restart.
#: ``pg_locks`` is readable by every role, unlike other sessions' state in ``pg_stat_activity``.
RUNNING_TRANSACTIONS = (
    "SELECT DISTINCT i.id FROM pg_catalog.pg_locks r "
    "LEFT JOIN pg_catalog.pg_locks x ON x.locktype = 'transactionid' "
    "AND x.mode = 'ExclusiveLock' AND x.granted AND x.virtualtransaction = r.virtualtransaction "
    "CROSS JOIN LATERAL (VALUES ('v' || r.virtualtransaction), ('x' || x.transactionid::text)) "
    "AS i (id) "
    "WHERE r.locktype = 'relation' AND r.mode = 'RowExclusiveLock' AND r.granted "
    "AND r.relation = CAST(:audit AS regclass) AND i.id IS NOT NULL "
    "AND r.database = (SELECT oid FROM pg_catalog.pg_database "
    "WHERE datname = pg_catalog.current_database()) "
    "AND r.pid IS DISTINCT FROM pg_catalog.pg_backend_pid()"
)

#: The ``audit_id`` sequence of an audit table, its last value handed out (NULL before the
#: first) and its cache size.
AUDIT_ID_SEQUENCE = (
    "SELECT pg_catalog.pg_sequence_last_value(s.seqrelid) AS last_value, s.seqcache AS cache "
    "FROM pg_catalog.pg_sequence s "
    "WHERE s.seqrelid = CAST(pg_catalog.pg_get_serial_sequence(:audit, 'audit_id') AS regclass)"
)

#: The columns of a table, in order (what a segment commits to).
TABLE_COLUMNS = (
    "SELECT attname::text FROM pg_catalog.pg_attribute "
    "WHERE attrelid = CAST(:table AS regclass) AND attnum > 0 AND NOT attisdropped "
    "ORDER BY attnum"
)

#: The schema a table really is in.
TABLE_SCHEMA = (
    "SELECT n.nspname::text FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = CAST(:t AS regclass)"
)

#: ``p`` for a partitioned table.
RELATION_KIND = "SELECT relkind FROM pg_catalog.pg_class WHERE oid = CAST(:t AS regclass)"
