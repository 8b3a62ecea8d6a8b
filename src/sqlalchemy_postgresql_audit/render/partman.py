"""SQL text of calls into pg_partman 4.x (Debian's ``postgresql-15-partman``) and of the
pg_cron job that runs its maintenance.

pg_partman lives in a schema of the DBA's choice, read from ``pg_extension`` and quoted here;
every value is a bound parameter.  pg_partman names a table ``schema.table``, unquoted (it
splits on the dot), so names holding a dot are refused by ``lifecycle.partman``.
"""

from __future__ import annotations

from .sql import quote

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
    return (
        f"SELECT {quote(partman)}.run_maintenance(p_parent_table => :parent, p_jobmon => false)"
    )


def create_partition_time(partman: str) -> str:
    """pg_partman's partitions starting at ``:times`` (period starts), named its way."""
    return (
        f"SELECT {quote(partman)}.create_partition_time(:parent, "
        "CAST(:times AS timestamptz[]), false)"
    )


def run_maintenance_proc(partman: str) -> str:
    """What pg_cron runs: every partition set's maintenance, committing after each."""
    return f"CALL {quote(partman)}.run_maintenance_proc(p_jobmon => false)"

