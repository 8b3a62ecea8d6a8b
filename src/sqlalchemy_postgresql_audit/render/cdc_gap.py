"""The SQL of design 1's record that a new subscription's first comparison is still to run.

A new subscription (the first, or again after a lost slot) may have missed changes of any table
(a gap): its first run compares every table and records rows the gap deleted as ``D``
versions.  A consumer killed between creating the subscription and that comparison must not
forget it, so the target records it in the transaction that creates the subscription, and the
run that compared deletes it.
"""

from __future__ import annotations

from .sql import qualified

#: In the context schema: the subscriptions whose first comparison is still to run.
PENDING_TABLE = "audit_cdc_first_comparison"


def create_pending_table(schema: str | None) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(schema, PENDING_TABLE)} (\n"
        "  subscription text PRIMARY KEY,\n"
        "  created_at timestamptz NOT NULL DEFAULT pg_catalog.now()\n)"
    )


def record_pending(schema: str | None) -> str:
    """Bound: ``subscription``."""
    return (
        f"INSERT INTO {qualified(schema, PENDING_TABLE)} (subscription) VALUES (:subscription) "
        "ON CONFLICT (subscription) DO NOTHING"
    )


def pending(schema: str | None) -> str:
    """Bound: ``subscription``."""
    return (
        f"SELECT EXISTS (SELECT FROM {qualified(schema, PENDING_TABLE)} "
        "WHERE subscription OPERATOR(pg_catalog.=) :subscription)"
    )


def clear_pending(schema: str | None) -> str:
    """Bound: ``subscription``."""
    return (
        f"DELETE FROM {qualified(schema, PENDING_TABLE)} "
        "WHERE subscription OPERATOR(pg_catalog.=) :subscription"
    )
