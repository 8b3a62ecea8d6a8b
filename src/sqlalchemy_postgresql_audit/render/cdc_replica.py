"""The SQL of design 1's watch and seed: which source a target belongs to, how far the
subscription has applied, what its apply worker reports, and the copy of source rows a replica
lacks (rows older than the slot), recorded as ``B`` baseline versions.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..declare.spec import AUDIT_CURRENT_USER, AUDIT_OPERATION, AUDIT_TIMESTAMP
from .baseline import BASELINE_CODE
from .sql import WRITER, literal, name_text, qualified, quote

#: The target's record of the one source database whose trail it holds.
SOURCE_TABLE = "audit_cdc_source"
#: The target's record, per replica table, of the source's shape when its rows were last
#: compared (``signature``): a change (the table re-published, a partition attached) means the
#: replica may lack rows the stream never carried.
SEEDED_TABLE = "audit_cdc_seeded"

#: Which database this is, across restarts and whatever the URL says: the cluster's system
#: identifier (readable by every role) and the database's name.
SOURCE_IDENTITY = (
    "SELECT CAST(system_identifier AS text) AS system_identifier, "
    "pg_catalog.current_database() AS database FROM pg_catalog.pg_control_system()"
)


def create_schema(schema: str) -> str:
    return f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}"


#: The target's record of the slots its subscriptions read (one slot feeds one target): a
#: row from the subscription's creation until ``Consumer.drop()`` (moving the trail away).
SLOTS_TABLE = "audit_cdc_slots"


def create_slots_table(schema: str | None) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(schema, SLOTS_TABLE)} (\n"
        "  slot text PRIMARY KEY,\n"
        "  subscribed_at timestamptz NOT NULL DEFAULT pg_catalog.now()\n)"
    )


def record_slot(schema: str | None) -> str:
    """Bound: ``slot``."""
    return (
        f"INSERT INTO {qualified(schema, SLOTS_TABLE)} (slot) VALUES (:slot) ON CONFLICT DO NOTHING"
    )


def forget_slot(schema: str | None) -> str:
    """Bound: ``slot``."""
    return f"DELETE FROM {qualified(schema, SLOTS_TABLE)} WHERE slot OPERATOR(pg_catalog.=) :slot"


def slots_table_exists(schema: str | None) -> str:
    """Whether the target has the record (one an older release made has none)."""
    return f"SELECT pg_catalog.to_regclass({literal(name_text(schema, SLOTS_TABLE))}) IS NOT NULL"


def slot_recorded(schema: str | None) -> str:
    """Bound: ``slot``."""
    return (
        f"SELECT EXISTS (SELECT FROM {qualified(schema, SLOTS_TABLE)} "
        "WHERE slot OPERATOR(pg_catalog.=) :slot)"
    )


def create_source_table(schema: str | None) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(schema, SOURCE_TABLE)} (\n"
        "  system_identifier text NOT NULL,\n  database text NOT NULL,\n"
        "  claimed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
        "  PRIMARY KEY (system_identifier, database)\n)"
    )


#: Bound: ``table``.  The schemas of the target database holding a claim table: consumers
#: whose MetaData.schema differs keep their context (and claim) tables in other schemas, yet
#: may feed the same replica and audit tables, so a claim covers the whole database.
CLAIM_SCHEMAS = (
    "SELECT n.nspname FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
    "WHERE c.relname OPERATOR(pg_catalog.=) :table AND c.relkind OPERATOR(pg_catalog.=) 'r' "
    "ORDER BY n.nspname"
)


#: Bound: ``slot``.  On the source: the walsender streaming the slot now, if any, and how many
#: transactions were decoded from it (the statistics PostgreSQL 14+ keeps per slot).
SLOT_READ = (
    "SELECT r.active_pid, COALESCE(t.total_txns, 0) AS decoded "
    "FROM pg_catalog.pg_replication_slots AS r "
    "LEFT JOIN pg_catalog.pg_stat_replication_slots AS t "
    "ON t.slot_name OPERATOR(pg_catalog.=) r.slot_name "
    "WHERE r.slot_name OPERATOR(pg_catalog.=) :slot "
    "AND r.database OPERATOR(pg_catalog.=) pg_catalog.current_database()"
)


def recorded_sources(schema: str | None) -> str:
    return f"SELECT system_identifier, database FROM {qualified(schema, SOURCE_TABLE)}"


def claim_source(schema: str | None) -> str:
    """Bound: ``system_identifier``, ``database``."""
    return (
        f"INSERT INTO {qualified(schema, SOURCE_TABLE)} (system_identifier, database) "
        "VALUES (:system_identifier, :database) ON CONFLICT DO NOTHING"
    )


def create_seeded_table(schema: str | None) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(schema, SEEDED_TABLE)} (\n"
        "  table_name text PRIMARY KEY,\n  signature text NOT NULL,\n"
        "  seeded_rows bigint NOT NULL,\n"
        "  checked_at timestamptz NOT NULL DEFAULT pg_catalog.now()\n)"
    )


def seeded_signatures(schema: str | None) -> str:
    """Every recorded signature (the table is made with the replica tables)."""
    name = qualified(schema, SEEDED_TABLE)
    return f"SELECT table_name, signature FROM {name}"


def record_signature(schema: str | None) -> str:
    """Bound: ``table_name``, ``signature``, ``seeded_rows``."""
    return (
        f"INSERT INTO {qualified(schema, SEEDED_TABLE)} (table_name, signature, seeded_rows) "
        "VALUES (:table_name, :signature, :seeded_rows) ON CONFLICT (table_name) DO UPDATE "
        "SET signature = excluded.signature, seeded_rows = excluded.seeded_rows, "
        "checked_at = pg_catalog.now()"
    )


#: Bound: ``table`` (regclass text).  What decides which rows the stream carried for a source
#: table: the table itself, its membership of the publication (``publication``), and its leaf
#: partitions, each as ``oid@xmin.xmin...`` (one attached with rows brings rows no INSERT
#: carried; one dropped and made again under its name leaves its rows in the replica).  The
#: ``xmin`` of the ``pg_class`` rows of the leaf and of its ancestors below the root tell a
#: leaf changed outside the stream while keeping its oid: ATTACH and DETACH write the attached
#: table's row, and TRUNCATE (never published for a partition) a new relfilenode into it, while
#: the stream's INSERT, UPDATE and DELETE leave it alone and (auto)VACUUM or ANALYZE update it
#: in place (checked on PostgreSQL 15 and 18); an intermediate partition detached and attached
#: again changes only its own row.
SOURCE_SIGNATURE = (
    "SELECT pg_catalog.concat_ws(':', c.oid, "
    "(SELECT r.oid FROM pg_catalog.pg_publication_rel r "
    "JOIN pg_catalog.pg_publication p ON p.oid OPERATOR(pg_catalog.=) r.prpubid "
    "WHERE p.pubname OPERATOR(pg_catalog.=) :publication "
    "AND r.prrelid OPERATOR(pg_catalog.=) c.oid), "
    "pg_catalog.array_to_string(ARRAY("
    "SELECT CAST(CAST(t.relid AS pg_catalog.oid) AS pg_catalog.text) "
    "OPERATOR(pg_catalog.||) '@' OPERATOR(pg_catalog.||) "
    "(SELECT pg_catalog.string_agg(CAST(v.xmin AS pg_catalog.text), '.' ORDER BY a.n) "
    "FROM pg_catalog.pg_partition_ancestors(t.relid) WITH ORDINALITY AS a(relid, n) "
    "JOIN pg_catalog.pg_class v ON v.oid OPERATOR(pg_catalog.=) a.relid "
    "WHERE a.relid OPERATOR(pg_catalog.<>) c.oid) "
    "FROM pg_catalog.pg_partition_tree(c.oid) t "
    "WHERE t.isleaf AND t.relid OPERATOR(pg_catalog.<>) c.oid "
    "ORDER BY CAST(t.relid AS pg_catalog.oid)), ',')) "
    "FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(:table)"
)
#: Bound: ``publications``.  On the source: the tables its publications hold, quoted.
PUBLISHED = (
    "SELECT pg_catalog.quote_ident(schemaname) OPERATOR(pg_catalog.||) '.' "
    "OPERATOR(pg_catalog.||) pg_catalog.quote_ident(tablename) "
    "FROM pg_catalog.pg_publication_tables "
    "WHERE pubname OPERATOR(pg_catalog.=) ANY (CAST(:publications AS text[]))"
)
#: Bound: ``subscription``.  On the target: the tables whose changes the subscription applies
#: (the apply worker skips, without a word, the changes of a published table not listed here).
SUBSCRIBED = (
    "SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' "
    "OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) "
    "FROM pg_catalog.pg_subscription_rel r "
    "JOIN pg_catalog.pg_subscription s ON s.oid OPERATOR(pg_catalog.=) r.srsubid "
    "JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.srrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
    "WHERE s.subname OPERATOR(pg_catalog.=) :subscription"
)


def refresh_subscription(subscription: str) -> str:
    """Runs outside a transaction block.  The subscription learns the tables that joined the
    publication since it was made or last refreshed; no copy: the seed copies what the replica
    lacks, with a baseline."""
    return f"ALTER SUBSCRIPTION {quote(subscription)} REFRESH PUBLICATION WITH (copy_data = false)"


#: Bound: ``names`` (regclass texts).  The oids of those that exist.
OIDS = (
    "SELECT CAST(pg_catalog.to_regclass(n.name) AS pg_catalog.oid) "
    "FROM pg_catalog.unnest(CAST(:names AS text[])) AS n(name) "
    "WHERE pg_catalog.to_regclass(n.name) IS NOT NULL"
)
#: Bound: ``names`` (regclass texts).  Which of them exist, without an error for those that do
#: not (a probe of a missing table is an ERROR line in the server's log).
EXISTING = (
    "SELECT n.name FROM pg_catalog.unnest(CAST(:names AS text[])) AS n(name) "
    "WHERE pg_catalog.to_regclass(n.name) IS NOT NULL"
)
#: Bound: ``table`` (regclass text).  The columns a subscription sends (not generated).
SENT_COLUMNS = (
    "SELECT attname FROM pg_catalog.pg_attribute "
    "WHERE attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(:table) "
    "AND attnum > 0 AND NOT attisdropped AND attgenerated OPERATOR(pg_catalog.=) ''"
)
#: Fence: the WAL insert position before the fence's commit.  The subscription has applied
#: everything committed before the fence once the slot's confirmed position reaches it.
WAL_INSERT_POSITION = "SELECT CAST(pg_catalog.pg_current_wal_insert_lsn() AS text)"
#: Bound: ``slot``, ``lsn``.  Whether the subscriber confirmed (applied and flushed) ``lsn``.
CONFIRMED = (
    "SELECT confirmed_flush_lsn OPERATOR(pg_catalog.>=) CAST(:lsn AS pg_catalog.pg_lsn) "
    "FROM pg_catalog.pg_replication_slots WHERE slot_name OPERATOR(pg_catalog.=) :slot"
)
#: Bound: ``subscription``.  Whether it has an apply worker, the server's pool of logical
#: replication workers (shared by every subscription and seed of the server) and how many of
#: them run.
APPLY_WORKER = (
    "SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_subscription w "
    "WHERE w.subname OPERATOR(pg_catalog.=) :subscription AND w.relid IS NULL "
    "AND w.pid IS NOT NULL) AS present, "
    "pg_catalog.current_setting('max_logical_replication_workers') AS pool, "
    "(SELECT count(*) FROM pg_catalog.pg_stat_subscription w WHERE w.pid IS NOT NULL) AS used"
)
#: Bound: ``subscription``.  PostgreSQL 15+: errors of the apply worker so far.
APPLY_ERRORS = (
    "SELECT apply_error_count FROM pg_catalog.pg_stat_subscription_stats "
    "WHERE subname OPERATOR(pg_catalog.=) :subscription"
)
#: The target's record, per subscription, of the apply worker's error count (and when its
#: statistics were last reset) at the consumer's last successful run: PostgreSQL's count is
#: cumulative, and ``cdc status`` reports only the errors since.
APPLY_SEEN_TABLE = "audit_cdc_apply_seen"
#: Bound: ``subscription``.  PostgreSQL 15+: the error count and when it was last reset.
APPLY_ERRORS_SINCE_RESET = (
    "SELECT apply_error_count, CAST(stats_reset AS text) AS stats_reset "
    "FROM pg_catalog.pg_stat_subscription_stats "
    "WHERE subname OPERATOR(pg_catalog.=) :subscription"
)


def create_apply_seen_table(schema: str | None) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(schema, APPLY_SEEN_TABLE)} (\n"
        "  subscription text PRIMARY KEY,\n  apply_error_count bigint NOT NULL,\n"
        "  stats_reset text,\n"
        "  seen_at timestamptz NOT NULL DEFAULT pg_catalog.now()\n)"
    )


def apply_seen(schema: str | None) -> str:
    """Bound: ``subscription``."""
    return (
        f"SELECT apply_error_count, stats_reset FROM {qualified(schema, APPLY_SEEN_TABLE)} "
        "WHERE subscription OPERATOR(pg_catalog.=) :subscription"
    )


def record_apply_seen(schema: str | None) -> str:
    """Bound: ``subscription``, ``apply_error_count``, ``stats_reset``."""
    return (
        f"INSERT INTO {qualified(schema, APPLY_SEEN_TABLE)} "
        "(subscription, apply_error_count, stats_reset) "
        "VALUES (:subscription, :apply_error_count, :stats_reset) "
        "ON CONFLICT (subscription) DO UPDATE SET apply_error_count = "
        "excluded.apply_error_count, stats_reset = excluded.stats_reset, seen_at = pg_catalog.now()"
    )


#: Bound: ``subscription``.  PostgreSQL 18+: changes the apply worker found no row for.
MISSING_ROW_CONFLICTS = (
    "SELECT confl_update_missing, confl_delete_missing "
    "FROM pg_catalog.pg_stat_subscription_stats WHERE subname OPERATOR(pg_catalog.=) :subscription"
)
#: Session settings under which both sides read and write a value's text the same way.
COPY_SETTINGS = (
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL extra_float_digits = 3",
    "SET LOCAL bytea_output = 'hex'",
)


def add_column_with_default(
    schema: str | None, table: str, column: str, type_sql: str, default_sql: str
) -> str:
    """A column the source gained with a default, added to the replica with it: the source's
    ``ADD COLUMN ... DEFAULT`` filled its existing rows, and the replica's must hold the same
    (their later UPDATEs and DELETEs record the replica's values).  ``type_sql`` and
    ``default_sql`` as SQLAlchemy compiles them for the declared column."""
    return (
        f"ALTER TABLE {qualified(schema, table)} "
        f"ADD COLUMN IF NOT EXISTS {quote(column)} {type_sql} DEFAULT {default_sql}"
    )


def lock_share(schema: str | None, table: str) -> str:
    """Writers of the source table wait (its readers do not) until the seed commits."""
    return f"LOCK TABLE {qualified(schema, table)} IN SHARE MODE"


def lock_against_the_apply_worker(schema: str | None, table: str) -> str:
    """The replica, before its audit table: the apply worker writes a replica, then its trigger
    the audit table, and a consumer starting must take them in that order."""
    return f"LOCK TABLE {qualified(schema, table)} IN SHARE ROW EXCLUSIVE MODE"


def count_rows(schema: str | None, table: str) -> str:
    return f"SELECT count(*) FROM {qualified(schema, table)}"


def copy_out(schema: str | None, table: str, columns: Sequence[str]) -> str:
    names = ", ".join(quote(c) for c in columns)
    return f"COPY (SELECT {names} FROM {qualified(schema, table)}) TO STDOUT"


def seed_rows_table(schema: str | None, table: str, columns: Sequence[str]) -> tuple[str, str]:
    """A temporary table shaped like the replica's sent columns, and the COPY that fills it."""
    names = ", ".join(quote(c) for c in columns)
    return (
        f"CREATE TEMPORARY TABLE {quote(SEED_ROWS)} ON COMMIT DROP AS "
        f"SELECT {names} FROM {qualified(schema, table)} WITH NO DATA",
        f"COPY {quote(SEED_ROWS)} ({names}) FROM STDIN",
    )


#: The temporary table the source's rows are copied into on the target.
SEED_ROWS = "audit_cdc_seed_rows"


def analyze_seed_rows() -> str:
    return f"ANALYZE {quote(SEED_ROWS)}"


def set_trigger(schema: str | None, table: str, trigger: str, *, enabled: bool) -> str:
    """Off while the seed copies rows in (they are no change); back to ``ALWAYS`` after.  In
    the seed's transaction, so no other session sees the trigger off."""
    state = "ENABLE ALWAYS" if enabled else "DISABLE"
    return f"ALTER TABLE {qualified(schema, table)} {state} TRIGGER {quote(trigger)}"


def row_image(columns: Sequence[str]) -> str:
    """A keyless row's text image, what its copies are grouped and matched by: every type
    has one (``json``, ``point`` and ``xml`` have no equality to group by), NULL included."""
    return f'CAST(ROW({", ".join(quote(c) for c in columns)}) AS pg_catalog.text) COLLATE "C"'


def insert_missing(
    schema: str | None,
    table: str,
    audit_table: str,
    columns: Sequence[str],
    audited: Sequence[str],
    key: Sequence[str],
) -> str:
    """Copy into the replica the seed rows it lacks (by key; a table without one by the whole
    row, counting duplicates) and record each as a ``B`` version, in key order.  Returns the
    number of rows added."""
    replica = qualified(schema, table)
    names = ", ".join(quote(c) for c in columns)
    if key:
        same = " AND ".join(f"r.{quote(k)} = s.{quote(k)}" for k in key)
        missing = (
            f"SELECT {names} FROM {quote(SEED_ROWS)} AS s "
            f"WHERE NOT EXISTS (SELECT FROM {replica} AS r WHERE {same})"
        )
    else:
        image = row_image(columns)
        seeded = ", ".join(f"s.{quote(c)}" for c in columns)
        missing = (
            f"SELECT {seeded} FROM (SELECT *, {image} AS audit_cdc_image, row_number() OVER "
            f"(PARTITION BY {image}) AS audit_cdc_n FROM {quote(SEED_ROWS)}) AS s "
            f"LEFT JOIN (SELECT {image} AS i, count(*) AS c FROM {replica} GROUP BY 1) AS r "
            "ON r.i = s.audit_cdc_image WHERE s.audit_cdc_n > COALESCE(r.c, 0)"
        )
    recorded = record_versions(schema, audit_table, audited, key, BASELINE_CODE, "added")
    return (
        f"WITH added AS (INSERT INTO {replica} ({names}) {missing} RETURNING *), "
        f"baseline AS ({recorded}) SELECT count(*) FROM baseline"
    )


def record_versions(
    schema: str | None,
    audit_table: str,
    audited: Sequence[str],
    key: Sequence[str],
    code: str,
    rows: str,
) -> str:
    """An INSERT of each row of the CTE ``rows`` (the replica's columns) as a ``code`` version
    in the audit table, in key order (so ``audit_id`` follows it), returning 1 per version."""
    audit_columns = [AUDIT_OPERATION, AUDIT_TIMESTAMP, AUDIT_CURRENT_USER, *audited]
    values = [literal(code), "pg_catalog.now()", WRITER, *(quote(c) for c in audited)]
    order = f" ORDER BY {', '.join(quote(k) for k in key)}" if key else ""
    return (
        f"INSERT INTO {qualified(schema, audit_table)} "
        f"({', '.join(quote(c) for c in audit_columns)}) "
        f"SELECT {', '.join(values)} FROM {rows}{order} RETURNING 1"
    )
