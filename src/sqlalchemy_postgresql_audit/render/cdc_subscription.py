"""The SQL design 1's consumer reads of its subscription's settings, and the statements it
advises when one of them would stop the trail (``cdc.subscription_guard``).

Every value is a bound parameter (``:subscription``); the advised statements quote the
subscription's name as an identifier.
"""

from __future__ import annotations

from .sql import quote

_THIS_DATABASE = (
    "WHERE subname OPERATOR(pg_catalog.=) :subscription AND subdbid OPERATOR(pg_catalog.=) "
    "(SELECT oid FROM pg_catalog.pg_database "
    "WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
)

#: Bound: ``subscription``.  Whether this database has it (``pg_subscription`` is shared by
#: the server's databases: another target database on the server may have one of that name).
SUBSCRIPTION_EXISTS = f"SELECT EXISTS (SELECT FROM pg_catalog.pg_subscription {_THIS_DATABASE})"
#: Bound: ``subscription``.  Whether this database's is enabled (a disabled one cannot be
#: refreshed).
SUBSCRIPTION_ENABLED = f"SELECT subenabled FROM pg_catalog.pg_subscription {_THIS_DATABASE}"

#: Bound: ``subscription``, ``publication``.  Whether this database is design 1's target of
#: that slot's trail: the consumer names its subscription after the slot.
TARGET_OF = (
    f"SELECT EXISTS (SELECT FROM pg_catalog.pg_subscription {_THIS_DATABASE} "
    "AND CAST(:publication AS pg_catalog.text) OPERATOR(pg_catalog.=) ANY (subpublications))"
)

#: Bound: ``subscription``.  On the target (PostgreSQL 15+): whether the subscription is
#: enabled, and whether an apply error disables it (``disable_on_error``); no row when there is
#: no such subscription in this database.
SUBSCRIPTION_SETTINGS = (
    "SELECT subenabled AS enabled, subdisableonerr AS disable_on_error "
    f"FROM pg_catalog.pg_subscription {_THIS_DATABASE}"
)
#: ``SUBSCRIPTION_SETTINGS`` before PostgreSQL 15, which has no ``disable_on_error``.
SUBSCRIPTION_SETTINGS_14 = (
    "SELECT subenabled AS enabled, false AS disable_on_error "
    f"FROM pg_catalog.pg_subscription {_THIS_DATABASE}"
)


def keep_on_error(subscription: str) -> str:
    """The statement that stops an apply error from disabling ``subscription``."""
    return f"ALTER SUBSCRIPTION {quote(subscription)} SET (disable_on_error = false)"
