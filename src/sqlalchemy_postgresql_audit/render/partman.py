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


def create_parent(partman: str) -> str:
    """Register a partitioned table that has no DEFAULT partition (pg_partman creates it, named
    like ours) from ``:start`` on; ``p_jobmon => false``: pg_jobmon is not required."""
    return (
        f"SELECT {quote(partman)}.create_parent(p_parent_table => :parent, "
        "p_control => :control, p_type => 'native', p_interval => :interval, "
        "p_premake => :premake, p_start_partition => :start, p_jobmon => false)"
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

    Audit tables are those registered whose comment ends with ``comment_suffix``; other
    partition sets are not touched.  Not SECURITY DEFINER (it runs as the job's role, who
    must be able to maintain the tables anyway), with a pinned ``search_path``; pg_partman
    cuts periods in the session's time zone, set to UTC for the transaction, as ``maintain``
    does.  Returns the number of partitions it marked.
    """
    config = f"{quote(partman)}.part_config"
    run = f"{quote(partman)}.run_maintenance"
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
    SELECT p.parent_table, c.oid, c.relname, c.relowner, c.relreplident
    FROM {config} p
    JOIN pg_catalog.pg_namespace n ON n.nspname = pg_catalog.split_part(p.parent_table, '.', 1)
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid
      AND c.relname = pg_catalog.split_part(p.parent_table, '.', 2)
    WHERE pg_catalog.right(pg_catalog.obj_description(c.oid, 'pg_class'),
                           pg_catalog.length({suffix})) = {suffix}
    ORDER BY p.parent_table
  LOOP
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
