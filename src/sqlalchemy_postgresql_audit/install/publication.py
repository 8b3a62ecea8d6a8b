"""Install change-data-capture on the source: the publications, the slot and the context table.

A CDC table (``mode="cdc"``) gets no audit trigger; what makes it audited is that its changes
reach a consumer: it belongs to the CDC publication and a logical slot holds the WAL since
before its first write.  Installing (``create_all``, ``install_audit_triggers``, Alembic) adds
both; the runtime check and ``check`` refuse or report a CDC table without them, naming it,
and a publication whose options were changed by hand (``option_drifts``), or a context
publication no longer carrying the request context (``context_drifts``).  ``check`` also
reports what else decides whether every change is captured (``captured_states``).  Each
partition of a partitioned CDC table gets a guard refusing a TRUNCATE of it alone, which
PostgreSQL would not publish (``render.cdc_truncate``).

The slot is created first, before anything else the installing transaction writes: PostgreSQL
creates a logical slot only in a transaction that has not written (and waits for the write
transactions running then to end), so a slot made afterwards, in its own transaction, would
wait forever on the installing one.  Its publications exist before it, committed (empty at
first, in a transaction of their own): before PostgreSQL 18, pgoutput fails for good on the
first change committed while a publication it was asked for did not exist yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import ARRAY, Connection, MetaData, Table, Text, bindparam, text

from ..declare.audit_table import AUDIT_TABLE_COMMENT_SUFFIX
from ..declare.cdc import CdcNames, cdc_names, replica_identity
from ..declare.naming import PUBLICATION_KEY, SLOT_FAILOVER_KEY, SLOT_KEY
from ..declare.spec import AuditSpec
from ..errors import AuditConfigurationError
from ..render import cdc as sql
from ..render import cdc_joins as joins
from ..render import cdc_subscription as subscription_sql
from ..render import cdc_truncate as truncate
from ..render.baseline import render_baseline
from ..render.sql import name_text
from .catalog import (
    partition_guards,
    publication_options,
    replica_identity_code,
    table_columns,
)
from .compare import (
    OK,
    OUTDATED,
    Watched,
    partition_guard_drifts,
    publication_option_drifts,
    replica_identity_drifts,
)
from .planted import planted
from .watch import column_state

#: The context table's comment: marks it as the library's (Alembic never drops it).
CONTEXT_COMMENT = "audit context of change-data-capture writes" + AUDIT_TABLE_COMMENT_SUFFIX
#: The joins table's comment (``render.cdc_joins``).
JOINS_COMMENT = "tables that joined change-data-capture" + AUDIT_TABLE_COMMENT_SUFFIX


def source_statements(names: CdcNames, pairs: Iterable[tuple[Table, AuditSpec]]) -> list[str]:
    """Idempotent: the context table and its publication, the CDC publication with the tables
    of ``pairs`` (resolved specs), and each table's replica identity."""
    statements = [
        sql.create_context_table(names.context_schema, names.context_table, CONTEXT_COMMENT),
        sql.create_context_publication(
            names.context_publication, names.context_schema, names.context_table
        ),
        joins.create_joins_table(names.context_schema, names.context_table, JOINS_COMMENT),
        joins.publish_joins_table(
            names.context_publication, names.context_schema, names.context_table
        ),
        sql.create_publication(names.publication),
        sql.set_publication_options(names.publication),
    ]
    schemas: set[str | None] = set()
    for _, spec in pairs:
        identity = replica_identity(spec)
        statements.append(sql.replica_identity(spec.schema, spec.table, identity))
        statements.append(sql.add_table(names.publication, spec.schema, spec.table))
        if spec.schema not in schemas:
            schemas.add(spec.schema)
            statements.append(truncate.guard_function(spec.schema))
        statements.append(truncate.install_guard(spec.schema, spec.table))
    return statements


def removal_statements(names: CdcNames, pairs: Iterable[tuple[Table, AuditSpec]]) -> list[str]:
    """Take the tables of ``pairs`` out of the publication (their replica identity stays),
    and their partitions' TRUNCATE guards off."""
    return [
        statement
        for _, spec in pairs
        for statement in (
            sql.drop_table(names.publication, spec.schema, spec.table),
            truncate.drop_guard(spec.schema, spec.table),
        )
    ]


def _refuse_the_target(connection: Connection, names: CdcNames, tables: Sequence[str]) -> None:
    """Design 1's target holds the trail through its consumer, which makes there all it needs:
    installing the models there would make a slot nothing reads, keeping the target's WAL."""
    found = connection.execute(
        text(subscription_sql.TARGET_OF),
        {"subscription": names.slot, "publication": names.publication},
    ).scalar()
    if found:
        database = connection.engine.url.database
        raise AuditConfigurationError(
            tables[0] if tables else "(cdc)",
            "mode",
            f"is 'cdc', but database {database!r} is the target of its trail (subscription "
            f"{names.slot!r} reads publication {names.publication!r} here): install the models "
            "on the source database; the consumer makes the replica, audit tables and triggers "
            "here, and a slot made here would keep this server's WAL with nothing reading it.  "
            "Models of another trail that only share the default names: give them their own "
            f"{SLOT_KEY!r} and {PUBLICATION_KEY!r} naming-convention keys",
        )


def ensure_slot(connection: Connection, names: CdcNames, tables: Sequence[str]) -> None:
    """Create the logical slot of ``names`` unless it exists (a failover slot when asked);
    refuse a lost one, and a server whose ``wal_level`` cannot decode (naming the CDC tables
    ``tables`` and how to set it).  Its publications are made first, empty, in a transaction
    of their own (``publications_first``).

    Must run before the transaction writes anything: the error says how to proceed when it did.
    An existing slot is left as it is, failover or not (``cdc status`` reports a difference).
    """
    slot, failover = names.slot, names.failover
    _refuse_the_target(connection, names, tables)
    state = connection.execute(text(sql.SLOT_STATE), {"slot": slot}).first()
    if state is not None:
        if not state.here:
            raise AuditConfigurationError(
                tables[0] if tables else "(cdc)",
                SLOT_KEY,
                f"names slot {slot!r}, which the server already has for database "
                f"{state.database!r} (or not on pgoutput): slot names are the server's, so give "
                "each database its own with the naming convention "
                f"{{{SLOT_KEY!r}: ...}}",
            )
        if state.wal_status == "lost":
            raise AuditConfigurationError(
                tables[0] if tables else "(cdc)",
                SLOT_KEY,
                f"slot {slot!r} is invalidated (wal_status 'lost'): changes since it lost its "
                "WAL were never captured.  Drop it (pg_drop_replication_slot), install again "
                "to create a new one, and take a baseline of the CDC tables",
            )
        return
    level = connection.execute(text(sql.WAL_LEVEL)).scalar()
    if level != "logical":
        raise AuditConfigurationError(
            ", ".join(tables) or "(cdc)",
            "mode",
            f"is 'cdc', but the server's wal_level is {level!r}: change-data-capture "
            "needs wal_level = logical.  Set it with ALTER SYSTEM SET wal_level = logical and "
            "restart the server (on a managed service, in its parameter group, e.g. "
            "rds.logical_replication = 1 on Amazon RDS); nothing was installed",
        )
    written = connection.execute(text(sql.WRITTEN_YET))
    if written.scalar() is not None:
        raise AuditConfigurationError(
            ", ".join(tables) or "(cdc)",
            SLOT_KEY,
            f"needs the logical replication slot {slot!r}, which PostgreSQL creates only in a "
            "transaction that has not written yet, and this one has: install in a fresh "
            "transaction (install_audit_triggers(metadata, engine)), or create the slot first "
            "with sqlalchemy_postgresql_audit.cdc.create_slot(engine, metadata)",
        )
    version = refuse_failover_before_17(connection, tables, failover=failover)
    places = connection.execute(text(sql.SLOT_PLACES)).one()
    if places.used >= places.max_slots:
        raise AuditConfigurationError(
            ", ".join(tables) or "(cdc)",
            SLOT_KEY,
            f"needs the logical replication slot {slot!r}, but all {places.max_slots} "
            "replication slots of the server (max_replication_slots) are in use (inactive: "
            f"{places.inactive or 'none'}): drop the ones no consumer reads any more "
            "(SELECT pg_drop_replication_slot('NAME'), in the database of a logical one), or "
            "raise max_replication_slots and restart the server; nothing was installed",
        )
    publications_first(connection, names)
    if version >= FAILOVER_VERSION:
        connection.execute(text(sql.CREATE_SLOT_17), {"slot": slot, "failover": failover})
    else:
        connection.execute(text(sql.CREATE_SLOT), {"slot": slot})


def publications_first(connection: Connection, names: CdcNames) -> None:
    """Commit ``names``' publications (empty when new) before their slot exists, on another
    connection of the same engine: ``connection``'s transaction must not write before the slot.

    Before PostgreSQL 18, pgoutput looks a publication up in the catalog as of each change it
    decodes and fails, at every retry, on a change committed before the publication existed, so
    one write by another session between the slot and the installing commit would stop the
    consumer for good."""
    missing = connection.execute(
        text(sql.MISSING_PUBLICATIONS), {"publications": list(names.publications)}
    ).scalar()
    if not missing:
        return
    with connection.engine.begin() as other:
        other.execute(text(sql.create_publication(names.publication)))
        other.execute(text(sql.create_empty_context_publication(names.context_publication)))


#: The first PostgreSQL release with failover slots (``server_version_num``).
FAILOVER_VERSION = 170000


def refuse_failover_before_17(
    connection: Connection, tables: Sequence[str], *, failover: bool
) -> int:
    """The server's ``server_version_num``; refuse a failover slot on a server without them."""
    number, version = connection.execute(text(sql.SERVER_VERSION)).one()
    if failover and int(number) < FAILOVER_VERSION:
        raise AuditConfigurationError(
            ", ".join(tables) or "(cdc)",
            SLOT_FAILOVER_KEY,
            f"asks for a failover slot, which PostgreSQL makes from version 17 on; this server "
            f"runs PostgreSQL {version}.  Leave {SLOT_FAILOVER_KEY!r} out (after a failover, "
            "reinstall on the new primary and record a baseline), or upgrade the server",
        )
    return int(number)


_PUBLISHED = text(sql.PUBLISHED).bindparams(bindparam("tables", type_=ARRAY(Text())))


def baseline_statements(
    connection: Connection, pairs: Sequence[tuple[Table, AuditSpec]]
) -> list[str]:
    """The baseline of the CDC tables of ``pairs`` (resolved specs) that installing publishes
    (``first_published``, whatever their replica identity; a table without a key has none): a
    ``B`` version of every row, whatever the trail holds (a table switched from trigger mode
    too), and its row in the joins table (``render.cdc_joins``); and of the rows without a
    version in the trail of the published ones it switches from ``FULL`` to ``default``
    (``switched_to_default``).

    Run in the installing transaction, after publishing: the baseline locks each table
    ``IN SHARE MODE`` (adding it to the publication does not block its writers) until it
    commits, so every change committed before is in it and, decoded with a catalog where the
    table was not published yet, not in the WAL's stream; every change after it is.  So the
    baseline is exactly the state the stream's first change of the table applies to:

    - the decoder rebuilds old rows from it under ``default`` (without it, it would meet an
      UPDATE or DELETE of a row the trail never saw and stop for good: the WAL of a DELETE
      holds only the key); under ``FULL`` the trail may have lost versions (a purge, a
      retention), which nothing rebuilt from while the WAL carried whole old rows;
    - design 1's consumer seeds its replica with it (``cdc.install_rows``) before the
      subscription applies any later change of the table: written by the transaction that
      published the table, it is found by that transaction's id, which the joins row names and
      at which the target holds the subscription until the consumer has seeded the table.
      Every row, so it is the table's whole state whatever the trail held before.
    """
    first = first_published(connection, pairs)
    switched = switched_to_default(connection, pairs)
    return [
        *(
            statement
            for table, spec in first
            if spec.key_columns
            for statement in _join_statements(cdc_names(table.metadata), spec).all()
        ),
        *(
            statement
            for _, spec in switched
            if replica_identity(spec) == "default"
            for statement in render_baseline(spec)
        ),
    ]


class JoinStatements(NamedTuple):
    """What the transaction publishing a CDC table for the first time records of it
    (``baseline_statements``), after publishing it; Alembic's ``op.record_cdc_join`` and the
    CLI's ``install`` run the same."""

    #: ``LOCK`` the table, then the ``INSERT`` of a ``B`` version of every row (last).
    baseline: tuple[str, ...]
    #: The table's row in the joins table (``render.cdc_joins``), naming this transaction.
    join: str

    def all(self) -> tuple[str, ...]:
        return (*self.baseline, self.join)


def _join_statements(names: CdcNames, spec: AuditSpec) -> JoinStatements:
    return join_statements(names.context_schema, names.context_table, spec)


def join_statements(
    context_schema: str | None, context_table: str, spec: AuditSpec
) -> JoinStatements:
    """For a resolved ``spec`` with a key, whose context table is ``context_table``."""
    return JoinStatements(
        render_baseline(spec, every_row=True),
        joins.record_join(context_schema, context_table, _table_text(spec)),
    )


def switched_to_default(
    connection: Connection, pairs: Sequence[tuple[Table, AuditSpec]]
) -> list[tuple[Table, AuditSpec]]:
    """The published CDC tables of ``pairs`` (resolved specs) declared ``default`` whose
    identity is ``FULL`` now: installing switches them."""
    first = {_table_text(spec) for _, spec in first_published(connection, pairs)}
    return [
        (table, spec)
        for table, spec in pairs
        if spec.cdc
        and replica_identity(spec) == "default"
        and _table_text(spec) not in first
        and replica_identity_code(connection, spec.schema, spec.table) == "f"
    ]


def first_published(
    connection: Connection, pairs: Sequence[tuple[Table, AuditSpec]]
) -> list[tuple[Table, AuditSpec]]:
    """The CDC tables of ``pairs`` (resolved specs) not yet in their publication: the ones
    whose rows installing baselines.  A table already published gets no baseline: its changes
    since are in the WAL, and one taken while the consumer lags would record rows ahead of
    changes it has not written yet (``record_baseline`` waits for it)."""
    by_publication: dict[str, list[tuple[Table, AuditSpec]]] = {}
    for table, spec in pairs:
        if spec.cdc:
            by_publication.setdefault(cdc_names(table.metadata).publication, []).append(
                (table, spec)
            )
    first: list[tuple[Table, AuditSpec]] = []
    for name, group in by_publication.items():
        names = [_table_text(spec) for _, spec in group]
        found = {
            row[0] for row in connection.execute(_PUBLISHED, {"publication": name, "tables": names})
        }
        first += [pair for pair in group if _table_text(pair[1]) not in found]
    return first


def unpublished(
    connection: Connection, publication: str, slot: str, specs: Sequence[AuditSpec]
) -> list[str]:
    """Which of ``specs``' tables (qualified names) are not captured: missing from the
    publication, or (all of them) when the slot is missing or lost."""
    names = [_table_text(spec) for spec in specs]
    state = connection.execute(text(sql.SLOT_STATE), {"slot": slot}).first()
    if state is None or not state.here or state.wal_status == "lost":
        return names
    found = {
        row[0]
        for row in connection.execute(_PUBLISHED, {"publication": publication, "tables": names})
    }
    return [name for name in names if name not in found]


def option_drifts(connection: Connection, publication: str) -> list[str]:
    """How ``publication``'s options differ from what installing sets (each one names the
    publication and the option); empty when they match or it does not exist."""
    return publication_option_drifts(publication, publication_options(connection, publication))


_CONTEXT_PUBLISHED = text(sql.CONTEXT_PUBLISHED).bindparams(
    bindparam("tables", type_=ARRAY(Text()))
)


def context_drifts(connection: Connection, names: CdcNames) -> list[str]:
    """How the context publication fails to carry what a consumer needs from the source: the
    context table's INSERTs (the request context of writes, ``audit_context``) and the joins
    table's (``render.cdc_joins``).  Taken out of it, or its INSERTs switched off, by hand, the
    trail would record no context, silently.  Each names the table, the publication and the
    remedy; empty when installed as installing makes it."""
    publication = names.context_publication
    tables = (names.context_table, joins.joins_table(names.context_table))
    shown = [".".join(part for part in (names.context_schema, t) if part) for t in tables]
    regclasses = [name_text(names.context_schema, table) for table in tables]
    rows = connection.execute(
        _CONTEXT_PUBLISHED, {"publication": publication, "tables": regclasses}
    ).all()
    if rows[0].pubinsert is None:
        return [
            f"the context publication {publication!r} does not exist, so the request context "
            f"of writes ({shown[0]}) would not reach the trail (install again to make it)"
        ]
    drifts = [
        f"{name} is not in the context publication {publication!r} (or only with a row "
        "filter or column list), so "
        + ("the request context of writes" if name == shown[0] else "the tables joining CDC")
        + " would not reach the trail (install again to put it back)"
        for name, row in zip(shown, rows, strict=True)
        if not row.member
    ]
    if not rows[0].pubinsert:
        drifts.append(
            f"the context publication {publication!r} has publish insert off, so the request "
            f"context of writes ({shown[0]}) would not reach the trail (install again to put "
            "it back)"
        )
    return drifts


def context_state(connection: Connection, names: CdcNames) -> Watched:
    """For ``check``: the context publication (``context_drifts``)."""
    drifts = context_drifts(connection, names)
    return Watched(
        "context publication",
        names.context_publication,
        OUTDATED if drifts else OK,
        tuple(drifts),
    )


def captured_states(
    connection: Connection, publication: str, table: Table, spec: AuditSpec, schema: str
) -> list[Watched]:
    """For ``check``: what decides whether a published CDC table's changes are all captured,
    beside membership and the slot (``unpublished``): the publication's options, the table's
    replica identity, source columns the declaration does not know (no audit column: a
    consumer drops their values), and the TRUNCATE guards of its partitions."""
    drifts = option_drifts(connection, publication)
    guards = partition_guard_drifts(partition_guards(connection, schema, spec.table))
    identity = replica_identity_drifts(
        f"{schema}.{spec.table}",
        replica_identity(spec),
        replica_identity_code(connection, schema, spec.table),
    )
    return [
        Watched("publication", publication, OUTDATED if drifts else OK, tuple(drifts)),
        Watched(
            "replica identity",
            f"replica identity of {schema}.{spec.table}",
            OUTDATED if identity else OK,
            tuple(identity),
        ),
        column_state(spec, table_columns(connection, schema, spec.table)),
        Watched(
            "partition TRUNCATE guards",
            f"partitions of {schema}.{spec.table}",
            OUTDATED if guards else OK,
            tuple(guards),
        ),
    ]


def _table_text(spec: AuditSpec) -> str:
    return name_text(spec.schema, spec.table)


def prepare(connection: Connection, pairs: Sequence[tuple[Table, AuditSpec]]) -> None:
    """Before an installation writes anything: the slot of each MetaData with CDC tables."""
    by_slot: dict[CdcNames, list[str]] = {}
    for table, spec in pairs:
        if spec.cdc:
            by_slot.setdefault(cdc_names(table.metadata), []).append(table.name)
    for names, tables in by_slot.items():
        ensure_slot(connection, names, tables)


def refuse_planted(connection: Connection, pairs: Sequence[tuple[Table, AuditSpec]]) -> None:
    """After ``install_statements`` made the context and joins tables, before anything writes
    to them: refuse one another role made first, or carrying code the library did not make
    (``.planted``), naming it, its owner and the remedy."""
    by_names: dict[CdcNames, list[str]] = {}
    for table, spec in pairs:
        if spec.cdc:
            by_names.setdefault(cdc_names(table.metadata), []).append(table.name)
    for names, tables in by_names.items():
        problem = planted(connection, names)
        if problem is not None:
            raise AuditConfigurationError(tables[0], "mode", problem)


def slot_statements(pairs: Sequence[tuple[Table, AuditSpec]]) -> list[str]:
    """For a script: create each MetaData's slot first (``prepare`` does it online).

    The script stays runnable as one string (one implicit transaction), so its publications
    come after the slot, not committed before it as online: before PostgreSQL 18, a write by
    another session in between stops pgoutput for good.  ``cdc create-slot`` first avoids it.
    """
    slots = {
        (names.slot, names.failover)
        for names in (cdc_names(table.metadata) for table, spec in pairs if spec.cdc)
    }
    return [sql.create_slot(slot, failover=failover) for slot, failover in sorted(slots)]


def install_statements(pairs: Sequence[tuple[Table, AuditSpec]]) -> list[str]:
    """``source_statements`` for the CDC tables of ``pairs`` (resolved specs), per MetaData."""
    return _per_metadata(pairs, source_statements)


def uninstall_statements(pairs: Sequence[tuple[Table, AuditSpec]]) -> list[str]:
    return _per_metadata(pairs, removal_statements)


def _per_metadata(pairs: Sequence[tuple[Table, AuditSpec]], statements: Any) -> list[str]:
    groups: dict[int, tuple[MetaData, list[tuple[Table, AuditSpec]]]] = {}
    for table, spec in pairs:
        if spec.cdc:
            groups.setdefault(id(table.metadata), (table.metadata, []))[1].append((table, spec))
    result: list[str] = []
    for metadata, group in groups.values():
        result += statements(cdc_names(metadata), group)
    return result
