"""The DEFAULT partition of a partitioned audit table, as statements of a plain SQL script.

``create_all``, ``install`` and Alembic give a new partitioned audit table its DEFAULT
partition from Python (``lifecycle.maintenance.give_default_partition``); a script made for
``psql`` (the ``ddl`` command) must do the same in SQL alone, or every write fails with "no
partition of relation ... found for row" until the first ``maintain``.  Taking rights back
from other roles is a ``DO`` block because who holds them (default privileges) is known only
on the server that runs the script.
"""

from __future__ import annotations

from .partitioning import comment_partition, create_default_partition, default_partition
from .sql import dollar_quote, literal, name_text, qualified


def default_partition_script(schema: str | None, audit_table: str, comment: str) -> tuple[str, ...]:
    """Create the DEFAULT partition (if missing), mark it as audit history with ``comment``,
    and leave it to its owner alone.  The append-only guard's TRUNCATE trigger reaches it when
    the install statements that follow in the script run (``guard.guard_partitions``)."""
    return (
        create_default_partition(schema, audit_table),
        comment_partition(schema, default_partition(audit_table), comment),
        _keep_to_owner(schema, default_partition(audit_table)),
    )


def _keep_to_owner(schema: str | None, name: str) -> str:
    """Revoke every right anyone but the owner holds on ``name`` (PUBLIC included), as
    ``maintenance.keep_to_owner`` does: writers write through the parent."""
    table = literal(name_text(schema, name))  # regclass input: no U&"..."
    revoke = literal(f"REVOKE ALL ON TABLE {qualified(schema, name)} FROM ")
    body = (
        "\nDECLARE\n  grantee pg_catalog.text;\nBEGIN\n"
        "  FOR grantee IN SELECT DISTINCT CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0\n"
        "      THEN 'PUBLIC'\n"
        "      ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END\n"
        "    FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a\n"
        f"    WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass({table})\n"
        "      AND a.grantee OPERATOR(pg_catalog.<>) c.relowner\n"
        "  LOOP\n"
        f"    EXECUTE {revoke} OPERATOR(pg_catalog.||) grantee"
        " OPERATOR(pg_catalog.||) ' CASCADE';\n"
        "  END LOOP;\nEND;\n"
    )
    return f"DO {dollar_quote(body)}"
