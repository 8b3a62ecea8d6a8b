"""The SQL of the change-data-capture consumers' locks: one consumer per slot, one creator at a
time.

Both are advisory locks on two ``int4`` keys (a class of the library's, then a key of the
slot's or the creation's), so they show in ``pg_locks`` as ``classid``, ``objid`` and
``objsubid = 2``.  Every value is a bound parameter (``:class_``, ``:key``, ``:slot``).
"""

from __future__ import annotations

_KEYS = "CAST(:class_ AS pg_catalog.int4), CAST(:key AS pg_catalog.int4)"

#: A consumer's claim on its slot, for as long as its session holds it.
TRY_CLAIM = f"SELECT pg_catalog.pg_try_advisory_lock({_KEYS})"
RELEASE_CLAIM = f"SELECT pg_catalog.pg_advisory_unlock({_KEYS})"

#: Who holds a claim: the server process, its application name and client address.
CLAIM_HOLDER = (
    "SELECT l.pid, a.application_name, CAST(a.client_addr AS pg_catalog.text) AS client_addr "
    "FROM pg_catalog.pg_locks l "
    "LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid "
    "WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory' AND l.granted "
    "AND l.database OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database "
    "WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()) "
    "AND l.classid OPERATOR(pg_catalog.=) CAST(:class_ AS pg_catalog.oid) "
    "AND l.objid OPERATOR(pg_catalog.=) CAST(:key AS pg_catalog.oid) "
    "AND l.objsubid OPERATOR(pg_catalog.=) 2"
)

#: Creating what a consumer needs on the target: held to the end of the creating transaction
#: (``CREATING``), or by a session around steps that run in several (``HOLD_CREATING`` and
#: ``RELEASE_CREATING``: a subscription is created outside the tables' transaction).
CREATING = f"SELECT pg_catalog.pg_advisory_xact_lock({_KEYS})"
HOLD_CREATING = f"SELECT pg_catalog.pg_advisory_lock({_KEYS})"
RELEASE_CREATING = RELEASE_CLAIM

#: Who reads the slot right now (PostgreSQL refuses a second reader while one does): its
#: server process, and what it is (a subscription's walsender carries the subscription's name
#: as its application name).
SLOT_READER = (
    "SELECT s.active_pid, a.application_name, a.backend_type "
    "FROM pg_catalog.pg_replication_slots s "
    "LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) s.active_pid "
    "WHERE s.slot_name OPERATOR(pg_catalog.=) :slot"
)
