"""The SQL of change-data-capture mode: publications, the slot, the context table, and what the
target of a subscription needs.

Source side: one publication carries the CDC tables' INSERT, UPDATE, DELETE and TRUNCATE (as the
partition root, so a target may partition differently), a second one carries only the INSERTs
of the context table (so the source can delete consumed context rows without replicating the
deletes), and one logical slot on ``pgoutput`` keeps the WAL until the consumer confirmed it.
Every statement is idempotent (``DO`` blocks that look at the catalog first), so installing
twice, or from an offline script, changes nothing the second time.

Target side (design 1: PostgreSQL applies, triggers capture): the audit triggers and a context
trigger fire ``ALWAYS`` (the apply worker runs with ``session_replication_role = replica``), and
the subscription uses the source's slot (``create_slot = false``).
"""

from __future__ import annotations

from collections.abc import Mapping

from .cdc_joins import joins_table
from .publication_members import WHOLE, member, publish_whole
from .sql import SEARCH_PATH, dollar_quote, literal, name_text, qualified, quote, regclass

#: What the CDC publication publishes.  TRUNCATE is replicated, and the apply worker runs the
#: target's TRUNCATE triggers (``ENABLE ALWAYS``), so it is recorded as in trigger mode.
PUBLISH = "insert, update, delete, truncate"
#: The name of the function and trigger that turn a replicated context row into settings.
CONTEXT_TRIGGER = "audit_cdc_context_apply"
#: The context keys the target applies: the names ``session.prepare_values`` lets through,
#: lower-cased; anything else in a forged row is ignored rather than failing the apply.
SETTING_KEY = "^[a-z_][a-z0-9_]*$"


def _do(body: str) -> str:
    return f"DO {dollar_quote(chr(10) + 'BEGIN' + chr(10) + body + 'END' + chr(10))}"


def _publication_exists(publication: str) -> str:
    return (
        "EXISTS (SELECT FROM pg_catalog.pg_publication "
        f"WHERE pubname OPERATOR(pg_catalog.=) {literal(publication)})"
    )


def create_publication(publication: str) -> str:
    """The CDC tables' publication, empty at first (tables are added one by one)."""
    return _do(
        f"  IF NOT {_publication_exists(publication)} THEN\n"
        f"    CREATE PUBLICATION {quote(publication)}\n"
        f"      WITH (publish = {literal(PUBLISH)}, publish_via_partition_root = true);\n"
        "  END IF;\n"
    )


#: What installing sets on the CDC publication, as ``pg_publication`` holds it: every operation
#: published, and partitions published as their root (a TRUNCATE of one partition is then not
#: published at all, so ``partition_truncate_guard`` refuses it).  Each flag with the option
#: that sets it, for the reports.
PUBLICATION_FLAGS = {
    "pubinsert": "publish insert",
    "pubupdate": "publish update",
    "pubdelete": "publish delete",
    "pubtruncate": "publish truncate",
    "pubviaroot": "publish_via_partition_root",
}


def set_publication_options(publication: str) -> str:
    """Put back the options ``create_publication`` sets, when one was changed by hand (an
    ``ALTER PUBLICATION ... SET (publish = 'insert')`` leaves UPDATE, DELETE and TRUNCATE
    uncaptured).  Changes nothing on a publication that has them, or none."""
    flags = " AND ".join(PUBLICATION_FLAGS)
    return _do(
        "  IF EXISTS (SELECT FROM pg_catalog.pg_publication "
        f"WHERE pubname OPERATOR(pg_catalog.=) {literal(publication)} AND NOT ({flags})) THEN\n"
        f"    ALTER PUBLICATION {quote(publication)}\n"
        f"      SET (publish = {literal(PUBLISH)}, publish_via_partition_root = true);\n"
        "  END IF;\n"
    )


#: Bound: ``publication``.  Its ``PUBLICATION_FLAGS``; no row when it does not exist.
PUBLICATION_OPTIONS = (
    f"SELECT {', '.join(PUBLICATION_FLAGS)} FROM pg_catalog.pg_publication "
    "WHERE pubname OPERATOR(pg_catalog.=) :publication"
)


def add_table(publication: str, schema: str | None, table: str) -> str:
    """Publish the table whole (``publication_members.publish_whole``)."""
    return _do(publish_whole(publication, schema, table))


def drop_table(publication: str, schema: str | None, table: str) -> str:
    return _do(
        f"  IF {member(publication, schema, table)} THEN\n"
        f"    ALTER PUBLICATION {quote(publication)} DROP TABLE {qualified(schema, table)};\n"
        "  END IF;\n"
    )


#: ``pg_class.relreplident`` for each REPLICA IDENTITY a table can be given here.
REPLICA_IDENTITIES = {"default": "d", "full": "f"}


def replica_identity(schema: str | None, table: str, identity: str) -> str:
    """Set the table's REPLICA IDENTITY only when it differs (the ALTER locks the table)."""
    code = REPLICA_IDENTITIES[identity]
    return _do(
        "  IF (SELECT relreplident FROM pg_catalog.pg_class "
        f"WHERE oid OPERATOR(pg_catalog.=) {regclass(schema, table)}) "
        f"OPERATOR(pg_catalog.<>) {literal(code)} THEN\n"
        f"    ALTER TABLE {qualified(schema, table)} REPLICA IDENTITY {identity.upper()};\n"
        "  END IF;\n"
    )


#: The context table's column naming the role that wrote, set by the server (its DEFAULT) and
#: never by a writer: writers may insert the ``settings`` column only (``context_grants``).
WRITER_COLUMN = "writer"
#: The one column of the context table a writer sets.
SETTINGS_COLUMN = "settings"


def create_context_table(schema: str | None, table: str, comment: str) -> str:
    """One row per writer transaction that set context (per change of its settings).

    ``xact`` names the writer's transaction (its ``xid8`` as a ``bigint``, a type SQLAlchemy
    reflects) for a decoder and for diagnosis; ``settings`` holds
    ``{name: text}`` for the settings applied (``""`` for one reset to NULL); ``writer`` is
    ``current_user`` when the row was inserted: who wrote, from the server, which a writer
    holding only ``INSERT (settings)`` cannot choose.  A table made before the column existed
    gets it (NULL in its older rows: a fast default would give them the installer's name).
    """
    name = qualified(schema, table)
    writer = quote(WRITER_COLUMN)
    return (
        f"CREATE TABLE IF NOT EXISTS {name} (\n"
        "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
        "  xact bigint NOT NULL\n"
        "    DEFAULT CAST(CAST(pg_catalog.pg_current_xact_id() AS text) AS bigint),\n"
        "  settings pg_catalog.jsonb NOT NULL\n"
        f");\nALTER TABLE {name} ADD COLUMN IF NOT EXISTS {writer} pg_catalog.text;\n"
        f"ALTER TABLE {name} ALTER COLUMN {writer} SET DEFAULT CURRENT_USER;\n"
        f"COMMENT ON TABLE {name} IS {literal(comment)}"
    )


def context_grants(
    schema: str | None, table: str, progress: str, writers: tuple[str, ...]
) -> tuple[str, ...]:
    """Least privilege on the context table, the decoder's progress table (``progress``, a
    table name in the same schema, if it exists yet) and design 1's joins table (a join a writer
    added would hold the subscription), for the role names ``writers``.

    A writer may insert the ``settings`` column of context rows and nothing else: not read
    other writers' context, not delete rows before a consumer saw them, not set ``writer`` or
    ``xact``.  Every right of any other role on either table is revoked, but the owner's and
    those of roles with REPLICATION (the consumer's: it reads and deletes context rows and
    writes its progress) that no writer is a member of.  A writer with REPLICATION is refused:
    it could advance or drop the slot, and the trail would skip changes.
    """
    roles = ", ".join(literal(name_text(None, w)) for w in writers)
    body = f"""
DECLARE
  writers CONSTANT pg_catalog.regrole[] := ARRAY[{roles}]::pg_catalog.regrole[];
  tables CONSTANT pg_catalog.oid[] := ARRAY[
    pg_catalog.to_regclass({literal(name_text(schema, table))}),
    pg_catalog.to_regclass({literal(name_text(schema, progress))}),
    pg_catalog.to_regclass({literal(name_text(schema, joins_table(table)))})]::pg_catalog.oid[];
  problem text;
  revoke_sql text;
BEGIN
  SELECT pg_catalog.format('role %s cannot be made a writer: %s', w, why)
  INTO problem
  FROM pg_catalog.unnest(writers) AS w, pg_catalog.pg_roles r,
       LATERAL (SELECT CASE
         WHEN r.rolreplication THEN 'it has REPLICATION, so it could advance or drop the '
           'logical slot of change-data-capture and changes would never be recorded'
         ELSE 'it is a member of the owner of the change-data-capture context table' END) AS x(why)
  WHERE r.oid OPERATOR(pg_catalog.=) w
    AND (r.rolreplication OR EXISTS (
      SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) ANY (tables)
        AND pg_catalog.pg_has_role(w, c.relowner, 'MEMBER')))
  LIMIT 1;
  IF problem IS NOT NULL THEN
    RAISE EXCEPTION USING MESSAGE = problem, ERRCODE = 'invalid_grant_operation';
  END IF;
  FOR revoke_sql IN
    SELECT DISTINCT pg_catalog.format('REVOKE ALL ON TABLE %s FROM %s CASCADE',
      c.oid::pg_catalog.regclass,
      CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::text END)
    FROM pg_catalog.pg_class c,
         LATERAL (SELECT x.grantee FROM pg_catalog.aclexplode(c.relacl) x
                  UNION ALL
                  SELECT x.grantee FROM pg_catalog.pg_attribute t,
                         pg_catalog.aclexplode(t.attacl) x
                  WHERE t.attrelid OPERATOR(pg_catalog.=) c.oid AND t.attnum > 0
                    AND NOT t.attisdropped) AS a
    WHERE c.oid OPERATOR(pg_catalog.=) ANY (tables)
      AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
      AND NOT EXISTS (
        SELECT FROM pg_catalog.pg_roles r
        WHERE r.oid OPERATOR(pg_catalog.=) a.grantee AND r.rolreplication
          AND NOT EXISTS (SELECT FROM pg_catalog.unnest(writers) AS w
                          WHERE pg_catalog.pg_has_role(w, r.oid, 'MEMBER')))
  LOOP
    EXECUTE revoke_sql;
  END LOOP;
END
"""
    name = qualified(schema, table)
    roles_quoted = [quote(w) for w in writers]
    usage = (
        [f"GRANT USAGE ON SCHEMA {quote(schema)} TO {w}" for w in roles_quoted] if schema else []
    )
    inserts = [f"GRANT INSERT ({quote(SETTINGS_COLUMN)}) ON {name} TO {w}" for w in roles_quoted]
    return (f"DO {dollar_quote(body)}", *usage, *inserts)


def create_context_publication(publication: str, schema: str | None, table: str) -> str:
    """INSERTs only: consumed rows are deleted on the source without reaching any consumer.
    The publication may exist empty (``create_empty_context_publication``, made before the
    slot), so the table is added when it is not a member; and with INSERT published again when
    it was switched off by hand (the context of every write would be lost)."""
    return _do(
        f"  IF NOT {_publication_exists(publication)} THEN\n"
        f"    CREATE PUBLICATION {quote(publication)} WITH (publish = {literal('insert')});\n"
        "  END IF;\n"
        "  IF EXISTS (SELECT FROM pg_catalog.pg_publication "
        f"WHERE pubname OPERATOR(pg_catalog.=) {literal(publication)} AND NOT pubinsert) THEN\n"
        f"    ALTER PUBLICATION {quote(publication)} SET (publish = {literal('insert')});\n"
        "  END IF;\n" + publish_whole(publication, schema, table)
    )


def create_empty_context_publication(publication: str) -> str:
    """The context publication before its table exists: made with the slot (see
    ``install.publication.ensure_slot``)."""
    return _do(
        f"  IF NOT {_publication_exists(publication)} THEN\n"
        f"    CREATE PUBLICATION {quote(publication)} WITH (publish = {literal('insert')});\n"
        "  END IF;\n"
    )


def drop_publication(publication: str) -> str:
    return f"DROP PUBLICATION IF EXISTS {quote(publication)}"


#: Bound: ``publications`` (text[]).  How many of them do not exist.
MISSING_PUBLICATIONS = (
    "SELECT count(*) FROM pg_catalog.unnest(CAST(:publications AS pg_catalog.text[])) AS n "
    "WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_publication p "
    "WHERE p.pubname OPERATOR(pg_catalog.=) n)"
)
#: The server's replication slots: how many it may have, how many it has, and which are
#: inactive (each named with its database; a physical one has none).
SLOT_PLACES = (
    "SELECT CAST(pg_catalog.current_setting('max_replication_slots') AS pg_catalog.int4) "
    "AS max_slots, (SELECT pg_catalog.count(*) FROM pg_catalog.pg_replication_slots) AS used, "
    "(SELECT pg_catalog.string_agg(pg_catalog.format('%s (%s)', slot_name, "
    "COALESCE(CAST(database AS pg_catalog.text), 'physical')), ', ' ORDER BY slot_name) "
    "FROM pg_catalog.pg_replication_slots WHERE NOT active) AS inactive"
)
#: Whether this transaction wrote yet (a logical slot is made only before its first write).
WRITTEN_YET = "SELECT pg_catalog.pg_current_xact_id_if_assigned()"
#: The server's ``wal_level``: a logical slot needs ``logical``.
WAL_LEVEL = "SELECT pg_catalog.current_setting('wal_level')"
#: Bound: ``slot``.  Must be the first write of its transaction (PostgreSQL's rule).
CREATE_SLOT = "SELECT pg_catalog.pg_create_logical_replication_slot(:slot, 'pgoutput')"
#: PostgreSQL 17+: also bound ``failover``, whether standbys that synchronize slots keep a copy.
CREATE_SLOT_17 = (
    "SELECT pg_catalog.pg_create_logical_replication_slot(:slot, 'pgoutput', "
    "failover => CAST(:failover AS pg_catalog.bool))"
)
#: The server's version, as a number and as it names itself.
SERVER_VERSION = (
    "SELECT CAST(pg_catalog.current_setting('server_version_num') AS pg_catalog.int4), "
    "pg_catalog.current_setting('server_version')"
)
#: What refuses a failover slot before PostgreSQL 17, in a script (``%`` is the version).
_NO_FAILOVER = (
    "naming convention 'audit.slot_failover' asks for a failover slot, which PostgreSQL makes "
    "from version 17 on; this server runs PostgreSQL %"
)


def create_slot(slot: str, *, failover: bool = False) -> str:
    """For scripts (no bound parameters): the slot, unless the server has one of that name.
    Must be the script's first statement, before its transaction writes.  A failover slot is
    refused, naming the version, by a server older than 17 (a ``DO`` block, which writes
    nothing, so the slot is still made before the script's first write)."""
    missing = (
        "NOT EXISTS (SELECT FROM pg_catalog.pg_replication_slots "
        f"WHERE slot_name OPERATOR(pg_catalog.=) {literal(slot)})"
    )
    if not failover:
        return (
            f"SELECT pg_catalog.pg_create_logical_replication_slot({literal(slot)}, 'pgoutput') "
            f"WHERE {missing}"
        )
    return _do(
        "  IF CAST(pg_catalog.current_setting('server_version_num') AS pg_catalog.int4) "
        "OPERATOR(pg_catalog.<) 170000 THEN\n"
        f"    RAISE EXCEPTION {literal(_NO_FAILOVER)}, "
        "pg_catalog.current_setting('server_version');\n"
        "  END IF;\n"
        f"  IF {missing} THEN\n"
        f"    PERFORM pg_catalog.pg_create_logical_replication_slot({literal(slot)}, "
        "'pgoutput', failover => true);\n"
        "  END IF;\n"
    )


#: Bound: ``slot``.  Slot names are the server's, not the database's: ``here`` tells a slot of
#: another database apart.
SLOT_STATE = (
    "SELECT wal_status, database, database OPERATOR(pg_catalog.=) pg_catalog.current_database() "
    "AND plugin OPERATOR(pg_catalog.=) 'pgoutput' AS here "
    "FROM pg_catalog.pg_replication_slots WHERE slot_name OPERATOR(pg_catalog.=) :slot"
)
#: Bound: ``publication``, ``tables`` (regclass text of each table); the tables in it.
PUBLISHED = (
    "SELECT t.name FROM pg_catalog.unnest(CAST(:tables AS text[])) AS t(name) "
    "WHERE EXISTS (SELECT FROM pg_catalog.pg_publication_rel r "
    "JOIN pg_catalog.pg_publication p ON p.oid OPERATOR(pg_catalog.=) r.prpubid "
    "WHERE p.pubname OPERATOR(pg_catalog.=) :publication "
    f"AND r.prrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(t.name) AND {WHOLE}) "
    "OR EXISTS (SELECT FROM pg_catalog.pg_publication p "
    "WHERE p.pubname OPERATOR(pg_catalog.=) :publication AND p.puballtables)"
)
#: Bound: ``publication``, ``tables`` (regclass text of the context and joins tables).  Per
#: table: whether it is in the context publication, and whether that publishes INSERTs (NULL
#: when the publication does not exist).
CONTEXT_PUBLISHED = (
    "SELECT t.name, p.pubinsert, p.puballtables OR EXISTS (SELECT FROM "
    "pg_catalog.pg_publication_rel r WHERE r.prpubid OPERATOR(pg_catalog.=) p.oid "
    "AND r.prrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(t.name) "
    f"AND {WHOLE}) AS member "
    "FROM pg_catalog.unnest(CAST(:tables AS text[])) WITH ORDINALITY AS t(name, position) "
    "LEFT JOIN pg_catalog.pg_publication p ON p.pubname OPERATOR(pg_catalog.=) :publication "
    "ORDER BY t.position"
)
#: What a writer adds in front of its first statement.  Bound: ``_audit_ctx_settings`` (JSON
#: text), prefixed like the writer's ``set_config`` parameters so it cannot meet a statement's.
INSERT_CONTEXT = "INSERT INTO {table} (settings) VALUES (CAST(:_audit_ctx_settings AS jsonb))"


def insert_context(schema: str | None, table: str) -> str:
    return INSERT_CONTEXT.format(table=qualified(schema, table))


def context_arrived(schema: str | None, table: str) -> str:
    """Bound: ``id``.  Whether the target has applied the context row ``id``."""
    return (
        f"SELECT EXISTS (SELECT FROM {qualified(schema, table)} "
        "WHERE id OPERATOR(pg_catalog.=) :id)"
    )


def context_table_exists(schema: str | None, table: str) -> str:
    """Whether a writer here can insert context rows: the table exists and the server is not in
    recovery (a hot standby has the table, and refuses every write).  No parameters (so it runs
    on any driver's raw cursor): the name is a rendered literal."""
    return (
        f"SELECT pg_catalog.to_regclass({literal(name_text(schema, table))}) IS NOT NULL "
        "AND NOT pg_catalog.pg_is_in_recovery()"
    )


def installed_parts(schema: str | None, table: str) -> str:
    """Bound: ``slot``, ``publication``.  Whether the source has the context table, the slot
    and the publication that install makes (a consumer refuses to start without them)."""
    return (
        f"SELECT pg_catalog.to_regclass({literal(name_text(schema, table))}) IS NOT NULL "
        "AS context_table, EXISTS (SELECT FROM pg_catalog.pg_replication_slots "
        "WHERE slot_name OPERATOR(pg_catalog.=) :slot) AS slot, "
        "EXISTS (SELECT FROM pg_catalog.pg_publication "
        "WHERE pubname OPERATOR(pg_catalog.=) :publication) AS publication"
    )


def last_context(schema: str | None, table: str) -> str:
    """The newest context row committed so far (``NULL``: none)."""
    return f"SELECT max(id) FROM {qualified(schema, table)}"


def delete_context(schema: str | None, table: str) -> str:
    """Bound: ``upto``.  Consumed rows; the publication does not publish deletes."""
    return f"DELETE FROM {qualified(schema, table)} WHERE id OPERATOR(pg_catalog.<=) :upto"


#: Context keys a forged row might use to speak for the server: never applied as settings.
CAPTURE_KEYS = (
    "current_user",
    "session_user",
    "application_name",
    "client_addr",
    "statement_timestamp",
    "clock_timestamp",
    "transaction_id",
)
#: Setting types whose text every value is (no cast can fail).
_TEXT_TYPES = frozenset({"TEXT", "VARCHAR", "CHARACTER VARYING"})


def context_trigger(
    schema: str | None, table: str, setting_types: Mapping[str, tuple[str, ...]] | None = None
) -> tuple[str, ...]:
    """Target side: each replicated context row becomes transaction-local ``audit.*`` settings
    for the rest of the applied transaction.

    The row is kept: an applied transaction that writes nothing locally leaves no commit
    record, so the subscription's origin would not move past it, and the consumer's fence (an
    empty context row) would never be seen arriving.  The consumer deletes kept rows it passed.

    ``set_config(..., true)`` inside a function with its own ``SET search_path`` outlives the
    call (only the function's own SET is undone), so the audit triggers fired by the same
    transaction's later changes read them.

    A context row is written by writers, so it must never stop the apply worker (that would
    stop the trail for every writer): settings that are not a JSON object are ignored, keys
    named like a capture (``CAPTURE_KEYS``) are not applied, and a value that one of its
    setting's types (``setting_types``: ``{name: SQL types}``) cannot hold is applied as NULL,
    each with a WARNING in the target's log.
    """
    function = qualified(schema, CONTEXT_TRIGGER)
    checks = "".join(
        f"        IF setting.key OPERATOR(pg_catalog.=) {literal(name)} THEN "
        f"PERFORM CAST(setting_text AS {sql_type}); END IF;\n"
        for name, types in sorted((setting_types or {}).items())
        for sql_type in types
        if sql_type.upper() not in _TEXT_TYPES
    )
    check = (
        "    IF checks AND setting_text OPERATOR(pg_catalog.<>) '' THEN\n      BEGIN\n"
        f"{checks}"
        "      EXCEPTION WHEN OTHERS THEN\n"
        "        RAISE WARNING 'audit setting % of context row % recorded as NULL: %',\n"
        "          setting.key, NEW.id, SQLERRM;\n"
        "        setting_text := '';\n      END;\n    END IF;\n"
        if checks
        else ""
    )
    captures = ", ".join(literal(key) for key in CAPTURE_KEYS)
    body = (
        "\nDECLARE\n  setting record;\n  setting_text pg_catalog.text;\n"
        f"  checks CONSTANT pg_catalog.bool := {'true' if checks else 'false'};\nBEGIN\n"
        "  IF pg_catalog.jsonb_typeof(NEW.settings) OPERATOR(pg_catalog.<>) 'object' THEN\n"
        "    RAISE WARNING 'audit context row % ignored: its settings are not a JSON object',\n"
        "      NEW.id;\n    RETURN NEW;\n  END IF;\n"
        "  FOR setting IN SELECT key, value FROM pg_catalog.jsonb_each_text(NEW.settings)\n"
        f"      WHERE key OPERATOR(pg_catalog.~) {literal(SETTING_KEY)}\n"
        f"        AND key OPERATOR(pg_catalog.<>) ALL (ARRAY[{captures}]) LOOP\n"
        "    setting_text := COALESCE(setting.value, '');\n"
        f"{check}"
        "    PERFORM pg_catalog.set_config('audit.' OPERATOR(pg_catalog.||) setting.key,\n"
        "      setting_text, true);\n"
        "  END LOOP;\n  RETURN NEW;\nEND\n"
    )
    on = qualified(schema, table)
    return (
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger\nLANGUAGE plpgsql\n"
        f"SET search_path TO {SEARCH_PATH}\nAS {dollar_quote(body)}",
        f"DROP TRIGGER IF EXISTS {quote(CONTEXT_TRIGGER)} ON {on}",
        f"CREATE TRIGGER {quote(CONTEXT_TRIGGER)} BEFORE INSERT ON {on}\n"
        f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        enable_always(schema, table, CONTEXT_TRIGGER),
    )


def add_column(schema: str | None, table: str, column: str, type_sql: str) -> str:
    """A column the target's replica or audit table lacks (design 1 following a migration of
    the source); ``type_sql`` is the column type as SQLAlchemy compiles it.  Nullable: rows
    already there have no value."""
    return (
        f"ALTER TABLE {qualified(schema, table)} "
        f"ADD COLUMN IF NOT EXISTS {quote(column)} {type_sql}"
    )


def enable_always(schema: str | None, table: str, trigger: str) -> str:
    """Fire ``trigger`` for changes the apply worker makes too."""
    return f"ALTER TABLE {qualified(schema, table)} ENABLE ALWAYS TRIGGER {quote(trigger)}"


def conninfo(parameters: Mapping[str, object]) -> str:
    """A libpq connection string: every value single-quoted, ``\\`` and ``'`` escaped."""
    parts = []
    for key, value in parameters.items():
        if value is None:
            continue
        text = str(value).replace("\\", "\\\\").replace("'", "\\'")
        parts.append(f"{key}='{text}'")
    return " ".join(parts)


def create_subscription(
    subscription: str,
    connection: str,
    publications: tuple[str, ...],
    slot: str,
    streaming: str,
    *,
    failover: bool = False,
    enabled: bool = True,
) -> str:
    """No initial copy: the slot was created when the tables joined the publication, so its
    stream holds every change since, and the replica is built from them (a copy would fold the
    changes made before the consumer started into one INSERT per row).  It creates no slot, so
    it may run in a transaction block; created disabled, it applies nothing until enabled.

    ``failover`` (a PostgreSQL 17+ subscriber only): a subscriber of 17 or later sets the
    existing slot's failover property to the subscription's when it is created, so a failover
    slot stays one only when the subscription says ``failover = true``."""
    names = ", ".join(quote(p) for p in publications)
    keep_failover = ", failover = true" if failover else ""
    return (
        f"CREATE SUBSCRIPTION {quote(subscription)} CONNECTION {literal(connection)}\n"
        f"PUBLICATION {names}\n"
        f"WITH (create_slot = false, slot_name = {literal(slot)}, copy_data = false, "
        f"streaming = {streaming}{keep_failover}{'' if enabled else ', enabled = false'})"
    )


def enable_subscription(subscription: str) -> str:
    return f"ALTER SUBSCRIPTION {quote(subscription)} ENABLE"


def drop_subscription(subscription: str) -> tuple[str, ...]:
    """Detach the subscription from the source's slot first: the slot is the source's, and
    dropping a subscription would otherwise drop it there."""
    name = quote(subscription)
    return (
        f"ALTER SUBSCRIPTION {name} DISABLE",
        f"ALTER SUBSCRIPTION {name} SET (slot_name = NONE)",
        f"DROP SUBSCRIPTION {name}",
    )


#: Bound: ``slot``.  On the source: the process holding the slot, NULL when none does (or no
#: such slot exists).
SLOT_HOLDER = (
    "SELECT active_pid FROM pg_catalog.pg_replication_slots "
    "WHERE slot_name OPERATOR(pg_catalog.=) :slot AND active"
)

#: Bound: ``slot``, ``subscription``.  On the source: how far the consumer is behind, in bytes
#: (confirmed) and seconds (its last reported flush), and how much WAL the slot holds back.
SLOT_STATUS = (
    "SELECT s.active, s.wal_status, s.database, "
    "s.database OPERATOR(pg_catalog.=) pg_catalog.current_database() AS here, "
    "pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.confirmed_flush_lsn) "
    "AS lag_bytes, "
    "pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn) AS retained_bytes, "
    "(SELECT EXTRACT(epoch FROM r.flush_lag) FROM pg_catalog.pg_stat_replication r "
    "WHERE r.pid OPERATOR(pg_catalog.=) s.active_pid) AS lag_seconds "
    "FROM pg_catalog.pg_replication_slots s WHERE s.slot_name OPERATOR(pg_catalog.=) :slot"
)
#: Bound: ``subscription``.  On the target: the subscription, its apply worker, and (15+) its
#: error counts.
SUBSCRIPTION_STATUS = (
    "SELECT sub.subenabled AS enabled, w.pid, w.last_msg_receipt_time, w.latest_end_time "
    "FROM pg_catalog.pg_subscription sub "
    "LEFT JOIN pg_catalog.pg_stat_subscription w "
    "ON w.subid OPERATOR(pg_catalog.=) sub.oid AND w.relid IS NULL "
    "WHERE sub.subname OPERATOR(pg_catalog.=) :subscription "
    "AND sub.subdbid = (SELECT oid FROM pg_catalog.pg_database "
    "WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
)
#: Bound: ``slot``.  PostgreSQL 17+, on the source: whether the slot is a failover slot, and
#: the physical slots of the standbys that logical consumers wait for.
SLOT_FAILOVER = (
    "SELECT s.failover, pg_catalog.current_setting('synchronized_standby_slots') "
    "AS standby_slots FROM pg_catalog.pg_replication_slots s "
    "WHERE s.slot_name OPERATOR(pg_catalog.=) :slot"
)
#: Bound: ``subscription``.  PostgreSQL 17+, on the target.
SUBSCRIPTION_FAILOVER = (
    "SELECT subfailover FROM pg_catalog.pg_subscription "
    "WHERE subname OPERATOR(pg_catalog.=) :subscription AND subdbid OPERATOR(pg_catalog.=) "
    "(SELECT oid FROM pg_catalog.pg_database "
    "WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
)
SUBSCRIPTION_ERRORS = (
    "SELECT apply_error_count, sync_error_count FROM pg_catalog.pg_stat_subscription_stats "
    "WHERE subname OPERATOR(pg_catalog.=) :subscription"
)
#: Bound: ``publication``.  The publication's tables, by schema and name.
PUBLICATION_TABLES = (
    "SELECT n.nspname AS schema, c.relname AS table FROM pg_catalog.pg_publication p "
    "JOIN pg_catalog.pg_publication_rel r ON r.prpubid OPERATOR(pg_catalog.=) p.oid "
    "JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.prrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
    "WHERE p.pubname OPERATOR(pg_catalog.=) :publication"
)
#: Bound: ``schemas``, ``tables``.  Each existing table's replica identity (``d``, ``f``, ...).
REPLICA_IDENTITY_OF = (
    "SELECT n.nspname AS schema, c.relname AS table, c.relreplident AS identity "
    "FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
    "JOIN ROWS FROM (pg_catalog.unnest(CAST(:schemas AS text[])), "
    "pg_catalog.unnest(CAST(:tables AS text[]))) AS w(s, t) "
    "ON n.nspname OPERATOR(pg_catalog.=) w.s AND c.relname OPERATOR(pg_catalog.=) w.t"
)
#: Which database a connection reaches: the server's start time and port, and the database.
DATABASE_IDENTITY = (
    "SELECT pg_catalog.pg_postmaster_start_time(), pg_catalog.current_setting('port'), "
    "pg_catalog.current_database()"
)
