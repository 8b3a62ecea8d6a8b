"""Recognise the target of change-data-capture design 1, for ``check``.

There the consumer made a subscription on the source's slot, a replica of each CDC table, and
the row-level audit triggers of ``AuditSpec.capture_spec`` enabled ``ALWAYS`` (the apply worker
runs as ``session_replication_role = replica`` and fires no other trigger).  Compared with the
declared CDC spec such a database looks wrong (not published, no slot, and an installed audit
nobody declared), so ``check`` compares it with what the consumer installs instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import ARRAY, Connection, Text, bindparam, text

from ..declare.spec import AuditSpec

#: The subscriptions of the current database: the consumer names its subscription after the
#: source's slot (``cdc.replica.Replica.subscription``).  No ``subconninfo``, which only a
#: superuser may read.
_SUBSCRIPTIONS = text(
    "SELECT s.subname, s.subpublications FROM pg_catalog.pg_subscription AS s "
    "JOIN pg_catalog.pg_database AS d ON d.oid OPERATOR(pg_catalog.=) s.subdbid "
    "WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()"
)

#: Bound: ``table`` (a regclass text), ``names``.  The named triggers on it that do not fire
#: ``ALWAYS``, with how they fire.
_NOT_ALWAYS = text(
    "SELECT t.tgname, t.tgenabled::text AS enabled FROM pg_catalog.pg_trigger AS t "
    "WHERE t.tgrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(:table) "
    "AND t.tgname OPERATOR(pg_catalog.=) ANY (:names) "
    "AND t.tgenabled OPERATOR(pg_catalog.<>) 'A' ORDER BY t.tgname"
).bindparams(bindparam("names", type_=ARRAY(Text())))

#: Bound: ``subscription``, ``table`` (a regclass text).  Whether the subscription applies the
#: table's changes: the apply worker skips, without a word, those of a published table missing
#: from ``pg_subscription_rel`` (one that joined the publication after the subscription).
_APPLIES = text(
    "SELECT EXISTS (SELECT FROM pg_catalog.pg_subscription_rel AS r "
    "JOIN pg_catalog.pg_subscription AS s ON s.oid OPERATOR(pg_catalog.=) r.srsubid "
    "WHERE s.subname OPERATOR(pg_catalog.=) :subscription "
    "AND r.srrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(:table))"
)

_FIRES = {"O": "only for local writes", "R": "only for applied changes", "D": "never"}


def subscriptions(connection: Connection) -> Mapping[str, tuple[str, ...]]:
    """``{subscription: its publications}`` in the connection's database."""
    return {row.subname: tuple(row.subpublications) for row in connection.execute(_SUBSCRIPTIONS)}


def not_always(connection: Connection, capture: AuditSpec, qualified_table: str) -> list[str]:
    """Why the capture triggers of ``capture`` (resolved) on ``qualified_table`` miss changes
    the subscription applies: each one not enabled ``ALWAYS``."""
    rows = connection.execute(
        _NOT_ALWAYS,
        {"table": qualified_table, "names": [t.name for t in capture.triggers]},
    )
    return [
        f"trigger {row.tgname} fires {_FIRES.get(row.enabled, row.enabled)}, not ALWAYS: the "
        "subscription's changes are not recorded (the consumer enables it again on its next run)"
        for row in rows
    ]


def not_applied(connection: Connection, subscription: str, qualified_table: str) -> list[str]:
    """Why ``subscription`` does not apply the changes of ``qualified_table``: it does not know
    the table (it joined the publication after the subscription was made or refreshed)."""
    if connection.execute(
        _APPLIES, {"subscription": subscription, "table": qualified_table}
    ).scalar():
        return []
    return [
        f"subscription {subscription!r} does not apply this table's changes (the table is not "
        "among its relations: it joined the publication after the subscription was made), so "
        "they are skipped and not recorded; the CDC consumer refreshes the subscription on its "
        "next run (cdc run) with models that declare the table"
    ]
