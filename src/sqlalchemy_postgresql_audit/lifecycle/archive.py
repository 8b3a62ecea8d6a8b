"""An archive server, by PostgreSQL's logical replication: the primary publishes its audit
tables, the archive subscribes and keeps everything.

- ``publish_via_partition_root``: a partitioned audit table is published as one table, so the
  archive may partition it differently, or not at all;
- INSERT and UPDATE only: retention's DETACH and DROP are never replicated, and a purge's
  DELETE is not published, so the primary may keep 30 days while the archive keeps
  everything; an erasure's UPDATE is published, and so reaches the archive for the rows the
  primary still has (``erase`` must run on the archive for the others, and says so);
- on PostgreSQL 15 and later, a row filter keeps the retention and purge markers (``X``, ``P``)
  off the archive, whose history was not removed (on 14 they arrive: the archive then says
  history was removed that it still holds);
- ``REPLICA IDENTITY FULL`` on every partition: a table publishing UPDATE needs a replica
  identity, and audit tables have no key (``maintain`` gives new partitions the same);
- ``maintain``'s drain moves rows out of the DEFAULT partition only through detached tables,
  so a drained row is not published twice.

The archive gets its audit tables from the same MetaData (``create_all``), and a ``hold`` on
each table keeps its own ``maintain`` from applying retention there.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from ..declare.declaration import declared_audit, declared_tables
from ..declare.naming import fit_identifier
from ..declare.spec import AuditSpec
from ..errors import AuditError
from ..install.ddl import AuditDDL, _connection, audited_tables, resolve_spec
from ..render import archive as sql
from ..render.partitioning import replica_identity_full
from ..render.sql import name_text

#: The publication's name unless told otherwise.
PUBLICATION = "audit_trail"
#: The subscription's (and its slot's) name unless told otherwise.
SUBSCRIPTION = "audit_archive"


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    publication: str
    #: ``schema.table`` of each published audit table.
    tables: tuple[str, ...]
    #: Whether the retention and purge markers are kept off the archive (PostgreSQL 15+).
    markers_filtered: bool
    #: The server's ``wal_level``: a subscriber receives nothing until it is ``logical``.
    wal_level: str = "logical"


def publish(
    bind: sa.Engine | sa.Connection,
    target: sa.MetaData | sa.Table | Sequence[sa.Table] | None = None,
    *,
    name: str = PUBLICATION,
) -> Published:
    """Create or update the publication ``name`` of the audit tables of ``target`` (a
    MetaData, tables, or every declared audited table when ``None``); it then publishes
    exactly those, so run it again after adding audited tables."""
    specs = _specs(target)
    if not specs:
        raise AuditError("no audited table to publish")
    with _connection(bind) as connection:
        resolved = [resolve_spec(connection, spec) for spec in specs]
        tables = [(spec.schema, spec.audit_table) for spec in resolved]
        for schema, table in tables:
            for each_schema, each in _tree(connection, schema, table):
                _run(connection, replica_identity_full(each_schema, each))
        version = int(connection.execute(sa.text("SHOW server_version_num")).scalar_one())
        wal_level = str(connection.execute(sa.text("SHOW wal_level")).scalar_one())
        row_filter = version >= 150000
        exists = connection.execute(_EXISTS, {"name": name}).scalar()
        if exists:
            _run(connection, sql.set_publication_tables(name, tables, row_filter))
            _run(connection, sql.set_publication_options(name))
        else:
            _run(connection, sql.create_publication(name, tables, row_filter))
    if wal_level != "logical":
        # Created all the same: the setting needs a restart, and the publication may be
        # made before it.
        warnings.warn(
            f"publication {name!r} is in place, but the server runs with wal_level={wal_level}: "
            "no subscriber receives anything until wal_level = logical is set in "
            "postgresql.conf and the server restarted",
            RuntimeWarning,
            stacklevel=2,
        )
    return Published(
        publication=name,
        tables=tuple(name_text(schema, table) for schema, table in tables),
        markers_filtered=row_filter,
        wal_level=wal_level,
    )


def subscribe_archive(
    archive: sa.Engine,
    source_url: str | URL,
    *,
    publication: str = PUBLICATION,
    name: str = SUBSCRIPTION,
    create_slot: bool = True,
    copy_timeout: float = 600.0,
) -> None:
    """Subscribe the archive database (``archive``, where the audit tables exist already) to
    the publication of the database at ``source_url``; the existing rows are copied first,
    and it returns once they are (``AuditError`` after ``copy_timeout`` seconds).

    Wait for it before ``maintain`` runs on the source: the initial copy reads the rows as
    they were when it began, through the partitions that exist when it reads them, so a
    drain of the DEFAULT partition in between would hide the rows it moved from the copy.

    The slot on the source is named like the subscription.  Into a database of the *same*
    cluster as the source, pass ``create_slot=False`` after creating the slot on the source
    (``SELECT pg_create_logical_replication_slot(name, 'pgoutput')``): PostgreSQL cannot create
    it from within ``CREATE SUBSCRIPTION`` there, and would wait forever.  A slot's name is
    unique per server, not per database: archiving a second database of the same source server
    needs another ``name``, and a slot of that name there already is an ``AuditError`` saying
    so (when the source can be reached from here to look).
    """
    url = make_url(source_url)
    if create_slot:
        _refuse_taken_slot(url, name)
    query = {key: str(value) for key, value in url.query.items() if isinstance(value, str)}
    parts = {  # a socket directory may come as ?host=/path (libpq's own form)
        "host": url.host or query.get("host", ""),
        "port": str(url.port or query.get("port", "")),
        "dbname": url.database or "",
        "user": url.username or "",
    }
    if url.password is not None:
        parts["password"] = str(url.password)
    statement = sql.create_subscription(
        name, sql.conninfo({k: v for k, v in parts.items() if v}), publication, create_slot, name
    )
    # CREATE SUBSCRIPTION that creates its slot cannot run inside a transaction block.
    with archive.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        _run(connection, statement)
        _wait_for_copy(connection, name, copy_timeout)


def _wait_for_copy(connection: sa.Connection, name: str, timeout: float) -> None:
    """Until every table of subscription ``name`` has its initial rows."""
    deadline = time.monotonic() + timeout
    while True:
        state = connection.execute(sa.text(sql.UNSYNCED), {"name": name}).one()
        if not state.subscribed or not state.copying:
            return
        if time.monotonic() > deadline:
            raise AuditError(
                f"subscription {name!r}: {state.copying} table(s) still copying their "
                f"initial rows after {timeout:g} s (see pg_subscription_rel and the archive's "
                "server log); do not run maintain on the source until they are copied"
            )
        time.sleep(0.2)


_SLOT = sa.text("SELECT database FROM pg_catalog.pg_replication_slots WHERE slot_name = :name")


def _refuse_taken_slot(url: URL, name: str) -> None:
    """Raise when the source server already has a replication slot ``name``: the subscription
    could not create its own (whichever database made it, as slots are per server)."""
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError):
        return  # a URL only the archive's libpq reads: CREATE SUBSCRIPTION reports the clash
    try:
        with engine.connect() as connection:
            taken = connection.execute(_SLOT, {"name": name}).first()
    except sa.exc.DBAPIError:
        return  # unreachable from here: likewise
    finally:
        engine.dispose()
    if taken is None:
        return
    database = url.database or ""
    suggestion = fit_identifier(f"{SUBSCRIPTION}_{re.sub('[^a-z0-9_]', '_', database.lower())}")
    raise AuditError(
        f"replication slot {name!r} already exists on the source server (for database "
        f"{taken.database!r}): slot names are unique per server, so each database archived "
        f"from it needs its own subscription name: pass name=, e.g. name={suggestion!r}"
    )


def unsubscribe_archive(archive: sa.Engine, *, name: str = SUBSCRIPTION) -> None:
    """Drop the subscription (and its slot on the source): the archive keeps its rows."""
    with archive.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        _run(connection, sql.drop_subscription(name))


def _specs(target: sa.MetaData | sa.Table | Sequence[sa.Table] | None) -> list[AuditSpec]:
    if isinstance(target, sa.MetaData):
        return [spec for _, spec in audited_tables(target)]
    if target is None:
        tables: Sequence[sa.Table] = declared_tables()
    elif isinstance(target, sa.Table):
        tables = [target]
    else:
        tables = target
    found = []
    for table in tables:
        spec, _ = declared_audit(table)
        found.append(spec)
    return found


_EXISTS = sa.text("SELECT EXISTS (SELECT FROM pg_catalog.pg_publication WHERE pubname = :name)")

#: A table and every partition under it.
_TREE = sa.text(
    "SELECT n.nspname, c.relname FROM pg_catalog.pg_partition_tree(CAST(:t AS regclass)) t "
    "JOIN pg_catalog.pg_class c ON c.oid = t.relid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ORDER BY t.level, 2"
)


def _tree(connection: sa.Connection, schema: str | None, table: str) -> list[tuple[str, str]]:
    rows = connection.execute(_TREE, {"t": name_text(schema, table)})
    return [(row[0], row[1]) for row in rows]


def _run(connection: sa.Connection, statement: str) -> None:
    connection.execute(AuditDDL(statement))
