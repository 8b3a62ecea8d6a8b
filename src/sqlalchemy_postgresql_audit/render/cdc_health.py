"""The SQL of the CDC consumer's health, kept in its progress table (one row per slot): its
last error, how many runs in a row failed, and when the trail was last known complete.

The columns come after the progress table's own (``cdc_decoder.create_progress_table``), added
to a table an older release made as well.  Values are driver parameters (``%(name)s``);
the table's name goes through ``.sql``'s quoting.
"""

from __future__ import annotations

from .cdc_decoder import PROGRESS_TABLE
from .sql import always_qualified, literal, name_text

#: The health columns, last the one whose presence says all are there.
_COLUMNS = (
    ("last_error", "pg_catalog.text"),
    ("last_error_at", "pg_catalog.timestamptz"),
    ("failures", "pg_catalog.int8 NOT NULL DEFAULT 0"),
    ("caught_up_at", "pg_catalog.timestamptz"),
)


def add_health_columns(schema: str | None) -> tuple[str, ...]:
    """Add the health columns unless there (a progress table made by an older release).
    ``caught_up_at``: when a run that ended without error began, so every change committed
    before it is in the trail; the others describe the runs that failed since."""
    table = always_qualified(schema, PROGRESS_TABLE)
    return tuple(
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {kind}" for name, kind in _COLUMNS
    )


def health_columns_present(schema: str | None) -> str:
    """No parameters.  False too when the progress table does not exist."""
    table = literal(name_text(schema, PROGRESS_TABLE))
    return (
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute "
        f"WHERE attrelid = pg_catalog.to_regclass({table}) "
        f"AND attname = {literal(_COLUMNS[-1][0])} AND NOT attisdropped)"
    )


def _upsert(schema: str | None, columns: str, values: str, update: str) -> str:
    """A row for ``%(slot)s`` unless there, with no progress yet (``0/0``, complete: what no
    row means to the decoder), then ``update``."""
    table = always_qualified(schema, PROGRESS_TABLE)
    return (
        f"INSERT INTO {table} AS p (slot_name, end_lsn, position, complete, {columns}) "
        f"VALUES (%(slot)s, '0/0', 0, true, {values}) "
        f"ON CONFLICT (slot_name) DO UPDATE SET {update}"
    )


def record_failure(schema: str | None) -> str:
    """Bound: ``slot``, ``error``.  One more run in a row failed, with ``error``."""
    return _upsert(
        schema,
        "last_error, last_error_at, failures",
        "%(error)s, pg_catalog.now(), 1",
        "last_error = EXCLUDED.last_error, last_error_at = EXCLUDED.last_error_at, "
        "failures = p.failures + 1",
    )


def record_caught_up(schema: str | None) -> str:
    """Bound: ``slot``, ``elapsed`` (seconds the run took).  A run ended without error: the
    trail holds everything committed before it began; no failure stands."""
    return _upsert(
        schema,
        "caught_up_at",
        "pg_catalog.now() - pg_catalog.make_interval(secs => %(elapsed)s)",
        "caught_up_at = EXCLUDED.caught_up_at, last_error = NULL, last_error_at = NULL, "
        "failures = 0",
    )


def refresh_caught_up(schema: str | None) -> str:
    """Bound: ``slot``, ``elapsed``, ``every`` (seconds).  As ``record_caught_up``, but only
    when a failure stands (whichever process recorded it) or the time recorded is more than
    ``every`` seconds old: otherwise it matches no row and writes nothing, not even WAL, so a
    consumer may run it after every run."""
    return (
        f"UPDATE {always_qualified(schema, PROGRESS_TABLE)} AS p SET caught_up_at = "
        "pg_catalog.now() - pg_catalog.make_interval(secs => %(elapsed)s), "
        "last_error = NULL, last_error_at = NULL, failures = 0 "
        "WHERE p.slot_name = %(slot)s AND (p.failures > 0 OR p.caught_up_at IS NULL "
        "OR p.caught_up_at < pg_catalog.now() - pg_catalog.make_interval(secs => %(every)s))"
    )


def read_health(schema: str | None) -> str:
    """Bound: ``slot``.  The last error, when, how many runs in a row failed; seconds since
    the trail last moved (a batch written, or a run that caught up) and since it was last
    known complete."""
    return (
        "SELECT last_error, last_error_at, failures, "
        "EXTRACT(epoch FROM pg_catalog.now() - GREATEST(written_at, caught_up_at)) "
        "AS idle_seconds, "
        "EXTRACT(epoch FROM pg_catalog.now() - caught_up_at) AS behind_seconds "
        f"FROM {always_qualified(schema, PROGRESS_TABLE)} WHERE slot_name = %(slot)s"
    )
