"""The SQL of design 1's stale-row replacement: a replica row the source lost outside the stream
does not stop the apply worker for good.

The source can lose rows without the stream carrying a DELETE: a partition dropped or detached,
a leaf partition truncated (not replicated when the publication publishes via the root), the
gap of a lost slot.  The replica keeps them.  When the source then inserts one of their keys
again (a partition created again, a late row landing in the DEFAULT partition, a tenant coming
back), applying that INSERT fails on the replica's primary key, and the apply worker retries it
for ever: no change of any CDC table reaches the trail.

So each replica table whose key is the source's own immediate primary key gets a ``BEFORE
INSERT`` trigger, and a ``BEFORE UPDATE`` one when the key changes: a row the replica holds on
the incoming key is stale (the source accepted the key, so its own row of that key was gone),
and the trigger removes it before the change is applied.  They are created disabled: the
consumer switches them on (``ALWAYS``, the apply worker fires no other) only while the source
is known to have lost rows outside the stream (its partitions changed since the last
comparison, or a new subscription after a gap) and until the comparison has run
(``cdc.stale``).  Otherwise an apply error stays an error: a key the models declare narrower
than the source's, or one made deferrable on the source, must not make a live row look stale.

The removal records nothing in the trail, as trigger mode records nothing for a dropped
partition: the replica's audit trigger fires for it, and its version is dropped by a ``BEFORE
INSERT`` trigger on the audit table that fires only inside the removal (``REPLACING`` on and a
trigger depth of two: the audit trigger's insert inside the removal inside this trigger).
``REPLACED_TABLE`` counts each removal (table, when; no values, which an erasure would have to
reach).

The functions run with ``search_path`` pinned to ``pg_catalog, pg_temp``, and compare keys with
each key column's equality operator as the primary key's index uses it, schema-qualified: the
apply worker runs them with a role of its own, and no operator a schema's owner plants may be
called by them.

Cost, while on: an index probe and a PL/pgSQL call per applied INSERT (about 4 µs); the
consumer's throughput was 0.86 of the same with them off (``bench/cdc.py --replacing-ab``).
Off, nothing.  Writers on the source pay nothing for them.
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
        "  replaced_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()\n)"
    )


def function_name(schema: str | None, table: str) -> str:
    """The replacing function of a replica table: named by a digest of the table's name, so any
    name fits PostgreSQL's 63 bytes."""
    digest = hashlib.sha256(name_text(schema, table).encode()).hexdigest()[:16]
    return f"audit_cdc_replace_{digest}"


#: A key column and the schema-qualified equality operator its primary-key index uses.
KeyColumn = tuple[str, str]


def _same_key(key: Sequence[KeyColumn], left: str, right: str) -> str:
    return " AND ".join(f"{left}.{quote(k)} {op} {right}.{quote(k)}" for k, op in key)


def replace_stale(
    context_schema: str, schema: str, table: str, key: Sequence[KeyColumn]
) -> tuple[str, ...]:
    """The replacing function and the two triggers on the replica table ``schema.table``
    (schemas resolved: the apply worker runs with an empty search path), created disabled;
    ``key``: as ``KEY_OPERATORS`` reads them."""
    replica = qualified(schema, table)
    function = qualified(context_schema, function_name(schema, table))
    body = (
        "BEGIN\n"
        f"  IF EXISTS (SELECT FROM ONLY {replica} AS r WHERE {_same_key(key, 'r', 'NEW')}) THEN\n"
        f"    PERFORM pg_catalog.set_config({literal(REPLACING)}, 'on', true);\n"
        f"    DELETE FROM ONLY {replica} AS r WHERE {_same_key(key, 'r', 'NEW')};\n"
        f"    PERFORM pg_catalog.set_config({literal(REPLACING)}, 'off', true);\n"
        f"    INSERT INTO {qualified(context_schema, REPLACED_TABLE)} (table_name)\n"
        f"    VALUES ({literal(name_text(schema, table))});\n"
        "  END IF;\n"
        "  RETURN NEW;\n"
        "END"
    )
    return (
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql\n"
        f"SET search_path TO pg_catalog, pg_temp\nAS {dollar_quote(body)}",
        f"CREATE OR REPLACE TRIGGER {quote(INSERT_TRIGGER)} BEFORE INSERT ON {replica}\n"
        f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        f"CREATE OR REPLACE TRIGGER {quote(UPDATE_TRIGGER)} BEFORE UPDATE ON {replica}\n"
        f"FOR EACH ROW WHEN (NOT ({_same_key(key, 'OLD', 'NEW')}))\n"
        f"EXECUTE FUNCTION {function}()",
        *switch(schema, table, enabled=False),
    )


def switch(schema: str | None, table: str, *, enabled: bool) -> tuple[str, ...]:
    """The replacing triggers on (``ALWAYS``: the apply worker fires no other) or off."""
    state = "ENABLE ALWAYS" if enabled else "DISABLE"
    on = qualified(schema, table)
    return tuple(
        f"ALTER TABLE {on} {state} TRIGGER {quote(t)}" for t in (INSERT_TRIGGER, UPDATE_TRIGGER)
    )


def drop_replacing(schema: str | None, table: str) -> tuple[str, ...]:
    """The triggers off a replica whose key no longer proves a row stale."""
    on = qualified(schema, table)
    return tuple(
        f"DROP TRIGGER IF EXISTS {quote(t)} ON {on}" for t in (INSERT_TRIGGER, UPDATE_TRIGGER)
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


#: A key column's type and collation, as both servers name them: a key the models type
#: otherwise than the source (``citext`` for ``text``) makes other rows equal.
_TYPE = "pg_catalog.format_type(a.atttypid, a.atttypmod)"
_COLLATION = "CAST(CAST(NULLIF(a.attcollation, 0) AS pg_catalog.regcollation) AS pg_catalog.text)"

#: Bound: ``table`` (a regclass text).  On the target: the replica's primary key, each column
#: with the schema and name of the equality operator of its index's operator class, in key
#: order, and whether the key is deferrable.
KEY_OPERATORS = (
    f"SELECT a.attname, {_TYPE} AS type, {_COLLATION} AS collation, n.nspname, o.oprname, "
    "k.condeferrable FROM pg_catalog.pg_constraint AS k "
    "JOIN pg_catalog.pg_index AS i ON i.indexrelid OPERATOR(pg_catalog.=) k.conindid "
    "CROSS JOIN LATERAL pg_catalog.generate_subscripts(i.indkey, 1) AS s(position) "
    "JOIN pg_catalog.pg_attribute AS a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid "
    "AND a.attnum OPERATOR(pg_catalog.=) i.indkey[s.position] "
    "JOIN pg_catalog.pg_opclass AS c ON c.oid OPERATOR(pg_catalog.=) i.indclass[s.position] "
    "JOIN pg_catalog.pg_amop AS m ON m.amopfamily OPERATOR(pg_catalog.=) c.opcfamily "
    "AND m.amoplefttype OPERATOR(pg_catalog.=) c.opcintype "
    "AND m.amoprighttype OPERATOR(pg_catalog.=) c.opcintype "
    "AND m.amopstrategy OPERATOR(pg_catalog.=) 3 AND m.amopmethod OPERATOR(pg_catalog.=) 403 "
    "JOIN pg_catalog.pg_operator AS o ON o.oid OPERATOR(pg_catalog.=) m.amopopr "
    "JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) o.oprnamespace "
    "WHERE k.conrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(:table) "
    "AND k.contype OPERATOR(pg_catalog.=) 'p' ORDER BY s.position"
)

_OPERATOR_CHARACTERS = frozenset("+-*/<>=~!@#%^&|`?")


def qualified_operator(schema: str, name: str) -> str:
    """``OPERATOR(schema.name)``: an operator no search path can change."""
    if not name or not set(name) <= _OPERATOR_CHARACTERS:
        raise ValueError(f"not an operator name: {name!r}")
    return f"OPERATOR({quote(schema)}.{name})"


#: Bound: ``table`` (a regclass text).  On the source: its primary key's columns in key order
#: and whether it is deferrable (a partitioned table's key is its parent's).
SOURCE_KEY = (
    f"SELECT a.attname, {_TYPE} AS type, {_COLLATION} AS collation, k.condeferrable "
    "FROM pg_catalog.pg_constraint AS k "
    "CROSS JOIN LATERAL pg_catalog.unnest(k.conkey) WITH ORDINALITY AS u(attnum, position) "
    "JOIN pg_catalog.pg_attribute AS a ON a.attrelid OPERATOR(pg_catalog.=) k.conrelid "
    "AND a.attnum OPERATOR(pg_catalog.=) u.attnum "
    "WHERE k.conrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(:table) "
    "AND k.contype OPERATOR(pg_catalog.=) 'p' ORDER BY u.position"
)

#: Bound: ``tables`` (regclass texts).  On the target: those not owned by the current role (a
#: table another role made first under the name would run its triggers as the apply worker).
NOT_OWNED = (
    "SELECT c.oid::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_class AS c "
    "WHERE c.oid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pg_catalog.to_regclass(t) "
    "FROM pg_catalog.unnest(CAST(:tables AS pg_catalog.text[])) AS t)) "
    "AND c.relowner OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles AS r "
    "WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)"
)


#: Bound: ``table`` (a regclass text).  On the target: whether the replica has the triggers.
HAS_REPLACING = (
    "SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger AS t "
    "WHERE t.tgrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(:table) "
    f"AND t.tgname OPERATOR(pg_catalog.=) {literal(INSERT_TRIGGER)})"
)
