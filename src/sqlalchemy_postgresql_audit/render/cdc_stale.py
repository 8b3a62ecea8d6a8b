"""The SQL of design 1's stale-row replacement: a replica row the source lost outside the stream
never stops the apply worker.

The source can lose rows without the stream carrying a DELETE: a partition dropped or detached,
a leaf partition truncated (not replicated when the publication publishes via the root), the
gap of a lost slot.  The replica keeps them.  When the source then inserts one of their keys
again (a partition created again, a late row landing in the DEFAULT partition, a tenant coming
back), applying that INSERT would fail on the replica's primary key, and the apply worker would
retry it for ever: no change of any CDC table would reach the trail again.

So each replica table with a key gets a ``BEFORE INSERT`` trigger, and a ``BEFORE UPDATE`` one
when the key changes, fired ``ALWAYS`` (the apply worker fires no other): when the replica
holds a row with the incoming key, that row is stale (the source accepted the key, so its own
row of that key was gone), and the trigger removes it before the change is applied.  Its
removal records nothing in the trail, as trigger mode records nothing for a dropped partition:
the replica's audit trigger fires for it, and its audit row is dropped by a ``BEFORE INSERT``
trigger on the audit table that fires only inside the removal (``REPLACING`` set and a trigger
depth of two: the audit trigger's insert inside the removal inside this trigger).  What was
removed is kept in ``REPLACED_TABLE`` (table, row as ``jsonb``, when), the marker of a step that
took a row away.

Cost: an index probe and a PL/pgSQL call per applied INSERT (about 4 µs), on the target only:
the consumer's throughput is about 0.86 of the same without it (``bench/cdc.py
--replacing-ab``).  Writers on the source pay nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from .sql import dollar_quote, literal, name_text, qualified, quote

#: In the context schema: what the replacement took out of a replica.
REPLACED_TABLE = "audit_cdc_replaced_rows"
#: The transaction-local setting that is ``on`` only while a stale row is being removed.
REPLACING = "audit_cdc.replacing"
#: The triggers on a replica table.
INSERT_TRIGGER = "audit_cdc_replace_stale"
UPDATE_TRIGGER = "audit_cdc_replace_stale_key"
#: The trigger on an audit table that drops the audit row of a removal.
QUIET_TRIGGER = "audit_cdc_replaced_quietly"
#: The function it calls, in the context schema.
QUIET_FUNCTION = "audit_cdc_drop_replaced_version"


def create_replaced_table(schema: str | None) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(schema, REPLACED_TABLE)} (\n"
        "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
        "  table_name text NOT NULL,\n"
        "  row_image pg_catalog.jsonb NOT NULL,\n"
        "  replaced_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()\n)"
    )


def function_name(schema: str | None, table: str) -> str:
    """The replacing function of a replica table: named by a digest of the table's name, so any
    name fits PostgreSQL's 63 bytes."""
    digest = hashlib.sha256(name_text(schema, table).encode()).hexdigest()[:16]
    return f"audit_cdc_replace_{digest}"


def _same_key(key: Sequence[str]) -> str:
    return " AND ".join(f"r.{quote(k)} = NEW.{quote(k)}" for k in key)


def replace_stale(
    context_schema: str,
    schema: str,
    table: str,
    key: Sequence[str],
    search_path: Sequence[str],
) -> tuple[str, ...]:
    """The replacing function and the two triggers on the replica table ``schema.table``
(schemas resolved: the apply worker runs with an empty search path).

    ``search_path``: the schemas of the key columns' types beyond ``pg_catalog`` (a type's
    ``=`` lives beside it; the apply worker runs with an empty search path)."""
    replica = qualified(schema, table)
    function = qualified(context_schema, function_name(schema, table))
    path = ", ".join([*(quote(s) for s in search_path), "pg_catalog", "pg_temp"])
    body = (
        "BEGIN\n"
        f"  IF EXISTS (SELECT FROM ONLY {replica} AS r WHERE {_same_key(key)}) THEN\n"
        f"    PERFORM pg_catalog.set_config({literal(REPLACING)}, 'on', true);\n"
        f"    WITH gone AS (DELETE FROM ONLY {replica} AS r WHERE {_same_key(key)} "
        "RETURNING r.*)\n"
        f"    INSERT INTO {qualified(context_schema, REPLACED_TABLE)} (table_name, row_image)\n"
        f"    SELECT {literal(f'{schema}.{table}')}, pg_catalog.to_jsonb(gone) FROM gone;\n"
        f"    PERFORM pg_catalog.set_config({literal(REPLACING)}, 'off', true);\n"
        "  END IF;\n"
        "  RETURN NEW;\n"
        "END"
    )
    key_moved = " OR ".join(f"OLD.{quote(k)} IS DISTINCT FROM NEW.{quote(k)}" for k in key)
    return (
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql\n"
        f"SET search_path TO {path}\nAS {dollar_quote(body)}",
        f"CREATE OR REPLACE TRIGGER {quote(INSERT_TRIGGER)} BEFORE INSERT ON {replica}\n"
        f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        f"CREATE OR REPLACE TRIGGER {quote(UPDATE_TRIGGER)} BEFORE UPDATE ON {replica}\n"
        f"FOR EACH ROW WHEN ({key_moved}) EXECUTE FUNCTION {function}()",
        f"ALTER TABLE {replica} ENABLE ALWAYS TRIGGER {quote(INSERT_TRIGGER)}",
        f"ALTER TABLE {replica} ENABLE ALWAYS TRIGGER {quote(UPDATE_TRIGGER)}",
    )


def quiet_function(context_schema: str | None) -> str:
    body = "BEGIN\n  RETURN NULL;\nEND"
    return (
        f"CREATE OR REPLACE FUNCTION {qualified(context_schema, QUIET_FUNCTION)}() "
        "RETURNS trigger LANGUAGE plpgsql\n"
        f"SET search_path TO pg_catalog, pg_temp\nAS {dollar_quote(body)}"
    )


def quiet_versions(
    context_schema: str | None, schema: str | None, audit_table: str
) -> tuple[str, ...]:
    """On ``schema.audit_table``: drop the version the replica's audit trigger writes for a
    removal (trigger depth 2: the audit trigger inside the removal inside the replacing
    trigger; a change the apply worker applies writes at depth 1)."""
    audit = qualified(schema, audit_table)
    condition = (
        "pg_catalog.pg_trigger_depth() OPERATOR(pg_catalog.=) 2 AND "
        f"pg_catalog.current_setting({literal(REPLACING)}, true) OPERATOR(pg_catalog.=) 'on'"
    )
    return (
        f"CREATE OR REPLACE TRIGGER {quote(QUIET_TRIGGER)} BEFORE INSERT ON {audit}\n"
        f"FOR EACH ROW WHEN ({condition})\n"
        f"EXECUTE FUNCTION {qualified(context_schema, QUIET_FUNCTION)}()",
        f"ALTER TABLE {audit} ENABLE ALWAYS TRIGGER {quote(QUIET_TRIGGER)}",
    )


#: Bound: ``table`` (a regclass text), ``key`` (column names).  On the target: the schemas of
#: the key columns' types other than ``pg_catalog``.
KEY_TYPE_SCHEMAS = (
    "SELECT DISTINCT n.nspname FROM pg_catalog.pg_attribute a "
    "JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid "
    "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace "
    "WHERE a.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(:table) "
    "AND a.attname OPERATOR(pg_catalog.=) ANY (:key) "
    "AND n.nspname OPERATOR(pg_catalog.<>) 'pg_catalog' ORDER BY 1"
)
