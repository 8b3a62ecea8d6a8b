"""SQL text of calls into pg_partman 4.x (Debian's ``postgresql-15-partman``) and of the
pg_cron job that runs its maintenance.

pg_partman lives in a schema of the DBA's choice, read from ``pg_extension`` and quoted here;
every value is a bound parameter.  pg_partman names a table ``schema.table``, unquoted (it
splits on the dot), so names holding a dot are refused by ``lifecycle.partman``.
"""

from __future__ import annotations

from .guard import GUARD_TRUNCATE_TRIGGER
from .partitioning import PARTITION_COMMENT_PREFIX
from .sql import dollar_quote, literal, qualified, quote

#: pg_partman 4.x's names for our intervals; ``weekly`` names partitions by ISO week
#: (``_p2026w10``), which starts on Monday like ours.
PARTMAN_INTERVALS = {"day": "daily", "week": "weekly", "month": "monthly"}


def registered(partman: str) -> str:
    return f"SELECT EXISTS (SELECT FROM {quote(partman)}.part_config WHERE parent_table = :parent)"


#: The name of a partitioned table's DEFAULT partition, found by its bound (pg_partman names it
#: its own way): ``:t`` is the parent.
DEFAULT_PARTITION = (
    "SELECT k.relname FROM pg_catalog.pg_inherits i "
    "JOIN pg_catalog.pg_class k ON k.oid = i.inhrelid "
    "WHERE i.inhparent = CAST(:t AS regclass) "
    "AND pg_catalog.pg_get_expr(k.relpartbound, k.oid) = 'DEFAULT'"
)


def create_parent(partman: str) -> str:
    """Register a partitioned table that has no DEFAULT partition (pg_partman creates it, named
    like ours) from ``:start`` on; ``p_jobmon => false``: pg_jobmon is not required."""
    return (
        f"SELECT {quote(partman)}.create_parent(p_parent_table => :parent, "
        "p_control => :control, p_type => 'native', p_interval => :interval, "
        "p_premake => :premake, p_start_partition => :start, p_jobmon => false)"
    )


def keep_present(partman: str) -> str:
    """Have pg_partman make its partitions ahead of the present, not of the newest row it finds
    (its default): an audit table that took no writes for a while would otherwise keep only
    partitions that retention removes, and pg_partman 4.x fails for the whole database on a
    registered table with no partition left."""
    return (
        f"UPDATE {quote(partman)}.part_config SET infinite_time_partitions = true "
        "WHERE parent_table = :parent AND NOT infinite_time_partitions"
    )


def unregister(partman: str) -> str:
    """Remove a table's registration (``part_config_sub`` follows by its foreign key); returns
    the schema and name of the template table pg_partman made for it, if any."""
    return (
        f"DELETE FROM {quote(partman)}.part_config WHERE parent_table = :parent "
        "RETURNING pg_catalog.split_part(template_table, '.', 1) AS schema, "
        "pg_catalog.split_part(template_table, '.', 2) AS name"
    )


def drop_template(schema: str, name: str) -> str:
    return f"DROP TABLE IF EXISTS {qualified(schema, name)}"


def stale_registration(partman: str) -> str:
    """Whether ``:parent`` is registered while no partitioned table of that name exists (a
    conversion undone, the table dropped): pg_partman's maintenance of every table fails on
    it."""
    return (
        f"SELECT EXISTS (SELECT FROM {quote(partman)}.part_config p "
        "WHERE p.parent_table = :parent AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = pg_catalog.split_part(p.parent_table, '.', 1) "
        "AND c.relname = pg_catalog.split_part(p.parent_table, '.', 2) AND c.relkind = 'p'))"
    )


def run_maintenance(partman: str) -> str:
    """pg_partman's maintenance of one partition set: the partitions ahead."""
    return f"SELECT {quote(partman)}.run_maintenance(p_parent_table => :parent, p_jobmon => false)"


def create_partition_time(partman: str) -> str:
    """pg_partman's partitions starting at ``:times`` (period starts), named its way."""
    return (
        f"SELECT {quote(partman)}.create_partition_time(:parent, "
        "CAST(:times AS timestamptz[]), false)"
    )


#: The function pg_cron runs (``lifecycle.partman.schedule_partman_maintenance``).
MAINTENANCE_FUNCTION = "sqlalchemy_postgresql_audit_partman_maintenance"


def maintenance_function(schema: str | None, partman: str, comment_suffix: str) -> str:
    """pg_partman's maintenance of the audit tables registered with it, then the library's
    marks on every partition it made: the ``partition_comment``, the parent's owner and
    nobody else's rights, the parent's ``REPLICA IDENTITY FULL``, and the append-only
    guard's TRUNCATE trigger where the parent has it (the parent's row triggers, which refuse
    UPDATE and DELETE, PostgreSQL clones itself).  pg_partman 4.x has no hook after it creates
    a partition; run together, in one transaction, a partition is complete from the moment
    other sessions can see it.

    A registered audit table left with no partition but its DEFAULT one (pg_partman 4.x's
    maintenance then fails, for every table of the database) first gets the partition holding
    the present, from which pg_partman goes on.

    Audit tables are the partitioned tables registered whose comment ends with
    ``comment_suffix``; other partition sets are not touched.  Not SECURITY DEFINER (it runs
    as the job's role, who must be able to maintain the tables anyway), with a pinned
    ``search_path``; pg_partman cuts periods in the session's time zone, set to UTC for the
    transaction, as ``maintain`` does.  Returns the number of partitions it marked.
    """
    config = f"{quote(partman)}.part_config"
    run = f"{quote(partman)}.run_maintenance"
    create = f"{quote(partman)}.create_partition_time"
    suffix = literal(comment_suffix)
    body = f"""
DECLARE
  parent record;
  child pg_catalog.oid;
  trigger record;
  grantee pg_catalog.oid;
  marked integer := 0;
BEGIN
  PERFORM pg_catalog.set_config('timezone', 'UTC', true);
  FOR parent IN
    SELECT p.parent_table, p.partition_interval, c.oid, c.relname, c.relowner, c.relreplident
    FROM {config} p
    JOIN pg_catalog.pg_namespace n ON n.nspname = pg_catalog.split_part(p.parent_table, '.', 1)
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid
      AND c.relname = pg_catalog.split_part(p.parent_table, '.', 2)
    WHERE c.relkind = 'p'
      AND pg_catalog.right(pg_catalog.obj_description(c.oid, 'pg_class'),
                           pg_catalog.length({suffix})) = {suffix}
    ORDER BY p.parent_table
  LOOP
    IF NOT EXISTS (
      SELECT FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class k ON k.oid = i.inhrelid
      WHERE i.inhparent = parent.oid
        AND pg_catalog.pg_get_expr(k.relpartbound, k.oid) <> 'DEFAULT'
    ) THEN
      PERFORM {create}(parent.parent_table, ARRAY[pg_catalog.date_trunc(
        CASE parent.partition_interval WHEN '1 day' THEN 'day' WHEN '7 days' THEN 'week'
                                       ELSE 'month' END, pg_catalog.now())], false);
    END IF;
    PERFORM {run}(p_parent_table => parent.parent_table, p_jobmon => false);
    FOR child IN
      SELECT i.inhrelid FROM pg_catalog.pg_inherits i
      WHERE i.inhparent = parent.oid
        AND pg_catalog.obj_description(i.inhrelid, 'pg_class') IS NULL
      ORDER BY i.inhrelid
    LOOP
      EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO %I', child::pg_catalog.regclass,
                                pg_catalog.pg_get_userbyid(parent.relowner));
      FOR grantee IN
        SELECT DISTINCT a.grantee
        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid = child AND a.grantee <> c.relowner
      LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM %s CASCADE',
          child::pg_catalog.regclass,
          CASE WHEN grantee = 0 THEN 'PUBLIC'
               ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(grantee)) END);
      END LOOP;
      EXECUTE pg_catalog.format('COMMENT ON TABLE %s IS %L', child::pg_catalog.regclass,
        {literal(PARTITION_COMMENT_PREFIX)} || parent.relname || {suffix});
      IF parent.relreplident = 'f' THEN
        EXECUTE pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY FULL',
                                  child::pg_catalog.regclass);
      END IF;
      FOR trigger IN
        SELECT t.tgname, t.tgfoid FROM pg_catalog.pg_trigger t
        WHERE t.tgrelid = parent.oid AND t.tgname = {literal(GUARD_TRUNCATE_TRIGGER)}
      LOOP
        EXECUTE pg_catalog.format(
          'CREATE OR REPLACE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT '
          'EXECUTE FUNCTION %s()',
          trigger.tgname, child::pg_catalog.regclass, trigger.tgfoid::pg_catalog.regproc);
      END LOOP;
      marked := marked + 1;
    END LOOP;
  END LOOP;
  -- pg_partman restores the search_path it found (the pinned one) at session level, which
  -- outlives this function's SET clause: give the session its default back.
  RESET search_path;
  RETURN marked;
END;
"""
    return (
        f"CREATE OR REPLACE FUNCTION {qualified(schema, MAINTENANCE_FUNCTION)}() "
        "RETURNS integer\nLANGUAGE plpgsql\nSET search_path TO pg_catalog, pg_temp\n"
        f"AS {dollar_quote(body)}"
    )


def revoke_maintenance_function(schema: str | None) -> str:
    return f"REVOKE ALL ON FUNCTION {qualified(schema, MAINTENANCE_FUNCTION)}() FROM PUBLIC"


def maintenance_function_owner(schema: str | None, owner: str) -> str:
    return f"ALTER FUNCTION {qualified(schema, MAINTENANCE_FUNCTION)}() OWNER TO {quote(owner)}"


def run_maintenance_function(schema: str) -> str:
    """What pg_cron runs."""
    return f"SELECT {qualified(schema, MAINTENANCE_FUNCTION)}()"
