"""The SQL the change-data-capture decoder runs: reading the slot, recording progress, writing
audit rows with COPY, advancing the slot.

Values travel as driver parameters (``%(name)s``, the paramstyle psycopg2 and psycopg share);
identifiers go through ``.sql``'s quoting.
"""

from __future__ import annotations

from collections.abc import Sequence

from .sql import always_qualified, always_quote, literal, name_text

#: The decoder's progress table, one row per slot, in the target.
PROGRESS_TABLE = "audit_cdc_progress"

#: Bound: ``schema``, ``table``, ``publications`` (a list).  Which of the decoder's publications
#: hold the table: a table the metadata does not declare is named with those only.
PUBLICATIONS_OF_TABLE = (
    "SELECT pubname FROM pg_catalog.pg_publication_tables "
    "WHERE schemaname OPERATOR(pg_catalog.=) :schema "
    "AND tablename OPERATOR(pg_catalog.=) :table "
    "AND pubname OPERATOR(pg_catalog.=) ANY (CAST(:publications AS pg_catalog.text[])) "
    "ORDER BY pubname"
)

#: Output functions write dates, intervals and floats the way COPY's input reads them back
#: exactly, whatever the server's, database's or role's defaults (set per transaction: the peek on
#: the source, and the target's, which reads old rows back from the trail).
OUTPUT_SETTINGS = (
    "SELECT pg_catalog.set_config('datestyle', 'ISO, MDY', true), "
    "pg_catalog.set_config('intervalstyle', 'postgres', true), "
    "pg_catalog.set_config('extra_float_digits', '3', true), "
    "pg_catalog.set_config('bytea_output', 'hex', true)"
)

#: How far the WAL is flushed, and the newest transaction id (with its epoch) that could be
#: in it.  The flush position, not the write position: a peek decodes only flushed WAL, so a
#: slot advanced to the write position would skip transactions committed asynchronously
#: (``synchronous_commit = off``) whose commit was written but not yet flushed.
WAL_POSITION = (
    "SELECT pg_catalog.pg_current_wal_flush_lsn()::pg_catalog.text, "
    "pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::pg_catalog.text"
)

#: Every transaction that committed before ``upto`` (whole transactions: the server stops at
#: a transaction's end once ``limit`` messages are out), as COPY binary rows of raw messages.
#: Peeking leaves the slot where it is: it moves only once the trail holds what was read.
PEEK = (
    "COPY (SELECT data FROM pg_catalog.pg_logical_slot_peek_binary_changes("
    "%(slot)s, %(upto)s::pg_catalog.pg_lsn, %(limit)s, "
    "'proto_version', '1', 'publication_names', %(publications)s)) "
    "TO STDOUT (FORMAT binary)"
)

#: Move the slot forward to ``lsn`` (never back: advancing below the confirmed position fails).
ADVANCE = (
    "SELECT pg_catalog.pg_replication_slot_advance(slot_name, %(lsn)s::pg_catalog.pg_lsn) "
    "FROM pg_catalog.pg_replication_slots "
    "WHERE slot_name = %(slot)s AND confirmed_flush_lsn < %(lsn)s::pg_catalog.pg_lsn"
)

#: Where the slot stands: the decoder never advances it past its recorded progress, so a slot
#: ahead of that progress was made again or moved by hand.
CONFIRMED = (
    "SELECT confirmed_flush_lsn::pg_catalog.text FROM pg_catalog.pg_replication_slots "
    "WHERE slot_name = %(slot)s"
)

#: One decoder at a time per slot and target: a session lock (``key`` from the progress
#: table's and the slot's names) held from reading the progress row to advancing the slot, so
#: two decoders cannot both write what one progress row says is missing.
LOCK_SLOT = "SELECT pg_catalog.pg_advisory_lock(%(key)s)"
UNLOCK_SLOT = "SELECT pg_catalog.pg_advisory_unlock(%(key)s)"

#: A ``REVOKE`` for every role but the owner holding a right on the table ``%(table)s``
#: (table or column rights): default privileges can hand a writer rights on the progress
#: table, and a writer that can move the progress row forward switches the decoder off.
#: Nothing for a role that is not the owner (it may not revoke).
PROGRESS_OTHER_RIGHTS = (
    "SELECT DISTINCT pg_catalog.format('REVOKE ALL ON TABLE %%s FROM %%s', "
    "c.oid::pg_catalog.regclass, CASE a.grantee WHEN 0 THEN 'PUBLIC' "
    "ELSE a.grantee::pg_catalog.regrole::pg_catalog.text END) "
    "FROM pg_catalog.pg_class c, LATERAL (SELECT e.grantee FROM pg_catalog.aclexplode(c.relacl) e "
    "UNION ALL SELECT e.grantee FROM pg_catalog.pg_attribute t, "
    "pg_catalog.aclexplode(t.attacl) e WHERE t.attrelid = c.oid) AS a "
    "WHERE c.oid = pg_catalog.to_regclass(%(table)s) AND a.grantee <> c.relowner "
    "AND pg_catalog.pg_has_role(c.relowner, 'USAGE')"
)

#: How far the WAL is flushed now (no recorded progress may be beyond it).
FLUSH_POSITION = "SELECT pg_catalog.pg_current_wal_flush_lsn()::pg_catalog.text"

#: How far the slot's restart point (where every peek starts decoding) is behind the position
#: it confirmed, in bytes, and the server's version.
RESTART_LAG = (
    "SELECT pg_catalog.pg_wal_lsn_diff(confirmed_flush_lsn, restart_lsn), "
    "pg_catalog.current_setting('server_version_num')::pg_catalog.int4 "
    "FROM pg_catalog.pg_replication_slots WHERE slot_name = %(slot)s"
)

#: A running-transactions record, from which the next advance can move the restart point up
#: (PostgreSQL 16+; superuser, or a role granted EXECUTE on it).
LOG_SNAPSHOT = "SELECT pg_catalog.pg_log_standby_snapshot()"

#: The columns a table has now (the audit table may have gained one since the decoder began).
TABLE_COLUMNS = (
    "SELECT a.attname FROM pg_catalog.pg_attribute a "
    "WHERE a.attrelid = pg_catalog.to_regclass(%(table)s) AND a.attnum > 0 "
    "AND NOT a.attisdropped ORDER BY a.attnum"
)


#: Which of ``%(columns)s`` are generated columns of ``%(table)s`` (their values are not
#: published).
PRESENT_COLUMNS = (
    "SELECT a.attname, a.attgenerated OPERATOR(pg_catalog.<>) '' AS generated "
    "FROM pg_catalog.pg_attribute a "
    "WHERE a.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(%(table)s) "
    "AND a.attname OPERATOR(pg_catalog.=) ANY(%(columns)s) AND NOT a.attisdropped"
)


def create_progress_table(schema: str | None, comment: str) -> tuple[str, ...]:
    """The progress table: where the trail stands, written in the same transaction as the
    audit rows it covers, so a crash can neither lose nor repeat a change.

    ``end_lsn`` is the end of the last transaction written (the slot may be advanced to it);
    ``position`` counts the changes of that transaction already written, and ``complete``
    says whether all are: a transaction larger than one batch is written in several.
    Writers get nothing on it.  ``comment`` marks it as the library's, so Alembic's
    autogenerate never drops it (the migration would take the decoder's progress with it).
    """
    table = always_qualified(schema, PROGRESS_TABLE)
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (\n"
        "  slot_name pg_catalog.text PRIMARY KEY,\n"
        "  end_lsn pg_catalog.pg_lsn NOT NULL,\n"
        "  position pg_catalog.int8 NOT NULL,\n"
        "  complete pg_catalog.bool NOT NULL,\n"
        "  written_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()\n"
        ")",
        f"REVOKE ALL ON {table} FROM PUBLIC",
        f"COMMENT ON TABLE {table} IS {literal(comment)}",
    )


def progress_table_exists(schema: str | None) -> str:
    """No parameters: the table's name is a rendered literal."""
    name = literal(name_text(schema, PROGRESS_TABLE))
    return f"SELECT pg_catalog.to_regclass({name}) IS NOT NULL"


def progress_readable(schema: str | None) -> str:
    """No parameters.  NULL: no progress table; else whether this role may read it (only its
    owner may: ``keep_private``), asked first because reading it without the right fails."""
    name = literal(name_text(schema, PROGRESS_TABLE))
    return (
        f"SELECT pg_catalog.has_table_privilege(pg_catalog.to_regclass({name}), 'SELECT') "
        f"WHERE pg_catalog.to_regclass({name}) IS NOT NULL"
    )


def progress_recorded(schema: str | None) -> str:
    """Whether a consumer recorded anything for ``%(slot)s``: it writes the trail here."""
    return (
        f"SELECT EXISTS (SELECT FROM {always_qualified(schema, PROGRESS_TABLE)} "
        "WHERE slot_name = %(slot)s)"
    )


def read_progress(schema: str | None) -> str:
    return (
        "SELECT end_lsn::pg_catalog.text, position, complete "
        f"FROM {always_qualified(schema, PROGRESS_TABLE)} WHERE slot_name = %(slot)s"
    )


def record_progress(schema: str | None) -> str:
    return (
        f"INSERT INTO {always_qualified(schema, PROGRESS_TABLE)} "
        "(slot_name, end_lsn, position, complete) "
        "VALUES (%(slot)s, %(end_lsn)s::pg_catalog.pg_lsn, %(position)s, %(complete)s) "
        "ON CONFLICT (slot_name) DO UPDATE SET end_lsn = EXCLUDED.end_lsn, "
        "position = EXCLUDED.position, complete = EXCLUDED.complete, "
        "written_at = pg_catalog.now()"
    )


def copy_into(schema: str | None, table: str, columns: Sequence[str]) -> str:
    """``COPY`` audit rows in (text format: pgoutput's values are the types' text output)."""
    names = ", ".join(always_quote(c) for c in columns)
    return f"COPY {always_qualified(schema, table)} ({names}) FROM STDIN"


#: The types of some columns of a table, as ``format_type`` writes them (for casting keys).
COLUMN_TYPES = (
    "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) "
    "FROM pg_catalog.pg_attribute a "
    "WHERE a.attrelid = pg_catalog.to_regclass(%(table)s) AND a.attname = ANY(%(columns)s)"
)


def cast_check(type_name: str) -> str:
    """Whether ``%(value)s`` is valid input of ``type_name`` (as ``format_type`` writes it,
    quoted): it fails when not (``pg_input_is_valid`` is PostgreSQL 16+)."""
    return f"SELECT CAST(%(value)s AS {type_name}) IS NULL"


def latest_versions(
    schema: str | None,
    audit_table: str,
    keys: Sequence[tuple[str, str]],
    columns: Sequence[str],
) -> str:
    """The newest audit row of each key in ``%(k0)s, %(k1)s, ...`` (text arrays, one per key
    column, ``keys`` naming each column with its type): its operation, then ``columns`` in
    their types' text output (``concat`` calls the output function, as pgoutput does; a cast
    to text would not for ``boolean`` or ``inet``).  The history index (key, ``audit_id``)
    serves it."""
    key_names = [always_quote(k) for k, _ in keys]
    # ``ROWS FROM``: the several-array ``unnest`` is a FROM-clause form that exists only
    # unqualified, while ``pg_catalog.unnest`` takes one array.
    wanted = ", ".join(f"pg_catalog.unnest(%(k{i})s::pg_catalog.text[])" for i in range(len(keys)))
    matches = " AND ".join(
        f"a.{name} = w.k{i}::{type_name}"
        for i, (name, (_, type_name)) in enumerate(zip(key_names, keys, strict=True))
    )
    values = ", ".join(
        f"CASE WHEN a.{always_quote(c)} IS NULL THEN NULL "
        f"ELSE pg_catalog.concat(a.{always_quote(c)}) END"
        for c in columns
    )
    order = ", ".join(f"a.{name}" for name in key_names)
    aliases = ", ".join(f"k{i}" for i in range(len(keys)))
    return (
        f"SELECT DISTINCT ON ({order}) a.audit_operation, {values} "
        f"FROM {always_qualified(schema, audit_table)} AS a "
        f"JOIN ROWS FROM ({wanted}) AS w({aliases}) ON {matches} "
        f"ORDER BY {order}, a.audit_id DESC"
    )


def present_rows(
    schema: str | None, audit_table: str, key_columns: Sequence[str], columns: Sequence[str]
) -> str:
    """``columns`` of every row the trail says is present (its key's newest version an
    ``I``, ``U`` or ``B``), in key order, as COPY text: what a TRUNCATE of a ``truncate_rows``
    table removed, which the WAL does not carry."""
    keys = ", ".join(always_quote(k) for k in key_columns)
    names = ", ".join(always_quote(c) for c in columns)
    return (
        f"COPY (SELECT {names} FROM (SELECT DISTINCT ON ({keys}) audit_operation, {names} "
        f"FROM {always_qualified(schema, audit_table)} ORDER BY {keys}, audit_id DESC) AS l "
        f"WHERE l.audit_operation IN ('I', 'U', 'B') ORDER BY {keys}) TO STDOUT"
    )
