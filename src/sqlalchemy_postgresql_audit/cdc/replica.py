"""Design 1: PostgreSQL captures.  A replica on another database whose triggers write the trail.

The target holds a replica of each CDC table (its columns and primary key: no foreign keys, no
partitions, so rows arrive whatever order the source's constraints allowed), its audit table,
and the library's row-level audit triggers, enabled ``ALWAYS`` so that the apply worker of a
subscription (which runs as ``session_replication_role = replica``) fires them.  The audit
rows are the ones trigger mode writes (same columns and codes; TRUNCATE too: the apply worker
runs TRUNCATE triggers), the old values of UPDATE and DELETE come from the replica, and request
context from the replicated context row (``render.cdc.context_trigger``).

Exactly once and commit order come from PostgreSQL: the subscription's replication origin
advances in the same transaction as the rows it applied.  ``streaming = on`` (not
``parallel``): a large transaction is spooled and applied whole at its commit, so ``audit_id``
keeps commit order.

Before anything else, the target records which source database it holds the trail of, and
refuses another (``.owner``); a new subscription's replica starts from the install's baseline
(``.install_rows``); rows the stream never carried otherwise (older than the slot, or brought by
an attached partition) are copied in with a baseline once the subscription runs (``.seed``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    inspect,
    text,
)
from sqlalchemy.engine import URL
from sqlalchemy.schema import DefaultClause

from ..declare.audit_table import AUDIT_TABLE_KEY
from ..declare.cdc import CdcNames, cdc_names
from ..declare.spec import AuditSpec
from ..install.ddl import audited_tables, execute_statements, install_statements
from ..install.publication import CONTEXT_COMMENT, JOINS_COMMENT, refuse_failover_before_17
from ..install.resolve import check_audit_tables, resolve_specs
from ..render import cdc as sql
from ..render import cdc_gap as gap_sql
from ..render import cdc_joins as joins_sql
from ..render import cdc_replica as replica_sql
from ..render import cdc_stale as stale_sql
from ..render import cdc_subscription as subscription_sql
from ..render.sql import literal, name_text
from .claim import creating
from .column_check import refuse_stricter_columns
from .errors import CdcError
from .install_rows import seed_from_install
from .owner import claim_target, refuse_slot_read_elsewhere
from .stale_triggers import prepare_stale_replacement, refuse_planted

_SUBSCRIPTION_EXISTS = text(subscription_sql.SUBSCRIPTION_EXISTS)


@dataclass(frozen=True, slots=True)
class Replica:
    """One MetaData's CDC tables replicated from ``source`` into ``target``."""

    source: Engine
    target: Engine
    metadata: MetaData

    @property
    def names(self) -> CdcNames:
        return cdc_names(self.metadata)

    @property
    def subscription(self) -> str:
        """Named like the slot it reads: one subscription per slot."""
        return self.names.slot

    def pairs(self) -> list[tuple[Table, AuditSpec]]:
        return [(table, spec) for table, spec in audited_tables(self.metadata) if spec.cdc]

    def prepare(self) -> bool:
        """Create on the target what is missing; returns whether the subscription was new.

        Under the target's creation lock (``.claim.creating``), held across the tables'
        transaction and the subscription's, so two consumers starting together (of other
        slots: they share the context table and its trigger) find what the first made."""
        with creating(self.target):
            return self._prepare()

    def _prepare(self) -> bool:
        pairs = self.pairs()
        names = self.names
        if names.failover:
            with self.source.connect() as source:
                refuse_failover_before_17(source, [table.name for table, _ in pairs], failover=True)
        with self.target.begin() as connection:
            _create_schemas(connection, names, pairs)
            context = names.context_schema
            execute_statements(
                connection,
                [
                    replica_sql.create_source_table(context),
                    replica_sql.create_slots_table(context),
                    replica_sql.create_seeded_table(context),
                    replica_sql.create_apply_seen_table(context),
                    gap_sql.create_pending_table(context),
                    stale_sql.create_replaced_table(context),
                    sql.create_context_table(context, names.context_table, CONTEXT_COMMENT),
                    joins_sql.create_joins_table(context, names.context_table, JOINS_COMMENT),
                    joins_sql.create_seeded_joins_table(context),
                ],
            )
            # Before anything writes to them: a table another role made first under one of
            # these names would run its triggers as this role, or as the apply worker.
            refuse_planted(connection, _context_tables(names))
            claim_target(self.source, connection, names)
            execute_statements(
                connection,
                [
                    *sql.context_trigger(context, names.context_table, _setting_types(pairs)),
                    *joins_sql.join_trigger(context, names.context_table),
                ],
            )
            exists = bool(
                connection.execute(
                    _SUBSCRIPTION_EXISTS, {"subscription": self.subscription}
                ).scalar()
            )
            if exists:  # made by an earlier release, or before its record was kept
                connection.execute(text(replica_sql.record_slot(context)), {"slot": names.slot})
            else:
                refuse_slot_read_elsewhere(self.source, connection, names)
            target_version = connection.dialect.server_version_info or (0,)
        # One table's locks per transaction, and its replica's before its audit table's: a
        # busy apply worker holds a replica's, then wants its audit table's, and its source
        # transaction may go on to another table (``.stale_triggers`` likewise).
        for pair in pairs:
            with self.target.begin() as connection, self.source.connect() as source:
                _make_table(connection, source, pair)
        prepare_stale_replacement(self.source, self.target, names, pairs)
        if exists:
            return False
        # Disabled until the replica holds the install's baseline, in one transaction: the
        # apply worker would skip the UPDATEs and DELETEs of rows it lacks (``.install_rows``).
        with self.source.connect() as source, self.target.begin() as connection:
            _refuse_undeclared(source, connection, names)
            connection.execute(
                text(
                    sql.create_subscription(
                        self.subscription,
                        sql.conninfo(_libpq(self.source.url)),
                        names.publications,
                        names.slot,
                        "on",
                        # An older subscriber leaves the slot's property alone.
                        failover=names.failover and target_version >= (17,),
                        enabled=False,
                    )
                )
            )
            connection.execute(
                text(replica_sql.record_slot(names.context_schema)), {"slot": names.slot}
            )
            seed_from_install(source, connection, pairs, names=names)
            connection.execute(
                text(gap_sql.record_pending(names.context_schema)),
                {"subscription": self.subscription},
            )
            connection.execute(text(sql.enable_subscription(self.subscription)))
            source.rollback()
        return True

    def first_comparison_pending(self) -> bool:
        """Whether the subscription's first comparison (after a possible gap) is still to run,
        though the consumer that created it is gone (``render.cdc_gap``)."""
        with self.target.connect() as target:
            query = text(gap_sql.pending(self.names.context_schema))
            return bool(target.execute(query, {"subscription": self.subscription}).scalar())

    def first_comparison_done(self) -> None:
        with self.target.begin() as target:
            query = text(gap_sql.clear_pending(self.names.context_schema))
            target.execute(query, {"subscription": self.subscription})

    def refresh(self) -> set[str]:
        """Make the subscription apply the published tables it does not know yet (a table that
        joined CDC after the subscription was made: the apply worker would skip its changes
        for good); returns them (regclass texts; none: it did not), so the caller seeds as for
        a new subscription.

        Only when the target has every such table (a refresh fails on a missing one: a
        consumer with older models meets the apply worker's error instead) and the
        subscription is enabled (a disabled one cannot be refreshed)."""
        with self.source.connect() as source:
            published = set(
                source.execute(
                    text(replica_sql.PUBLISHED), {"publications": list(self.names.publications)}
                ).scalars()
            )
        params = {"subscription": self.subscription}
        with creating(self.target), self.target.connect() as target:
            if not target.execute(text(subscription_sql.SUBSCRIPTION_ENABLED), params).scalar():
                return set()
            subscribed = target.execute(text(replica_sql.SUBSCRIBED), params).scalars()
            unknown = published - set(subscribed)
            if not unknown:
                return set()
            existing = target.execute(text(replica_sql.EXISTING), {"names": sorted(unknown)})
            if set(existing.scalars()) != unknown:
                return set()
            target.rollback()
            autocommit = target.execution_options(isolation_level="AUTOCOMMIT")
            autocommit.execute(text(replica_sql.refresh_subscription(self.subscription)))
        return unknown

    def drop(self, release_timeout: float = 30.0) -> None:
        """Drop the subscription on the target, leaving the source's slot (and its WAL) alone.

        Returns once the source's walsender has let go of the slot (it exits a moment after
        the subscription's worker), so the next step of a recovery, dropping the slot, does not
        fail with "replication slot ... is active"; after ``release_timeout`` seconds it
        raises, naming the process that still holds it."""
        with self.target.connect().execution_options(isolation_level="AUTOCOMMIT") as autocommit:
            if not autocommit.execute(
                _SUBSCRIPTION_EXISTS, {"subscription": self.subscription}
            ).scalar():
                return
            for statement in sql.drop_subscription(self.subscription):
                autocommit.execute(text(statement))
            # The trail moves away: this target no longer reads the slot (``.owner``).
            context = self.names.context_schema
            if autocommit.execute(text(replica_sql.slots_table_exists(context))).scalar():
                autocommit.execute(
                    text(replica_sql.forget_slot(context)), {"slot": self.names.slot}
                )
        deadline = time.monotonic() + release_timeout
        with self.source.connect().execution_options(isolation_level="AUTOCOMMIT") as source:
            while (
                holder := source.execute(text(sql.SLOT_HOLDER), {"slot": self.names.slot}).scalar()
            ) is not None:
                if time.monotonic() > deadline:
                    raise CdcError(
                        f"the subscription {self.subscription!r} is dropped, but process "
                        f"{holder} on the source still holds slot {self.names.slot!r} after "
                        f"{release_timeout:g} s; drop the slot once it is released"
                    )
                time.sleep(0.1)


def _refuse_undeclared(source: Connection, target: Connection, names: CdcNames) -> None:
    """A subscription cannot be made while the source publishes a table the target lacks
    (PostgreSQL's bare "relation ... does not exist"): name the tables and the two ways to get
    there."""
    published = source.execute(
        text(replica_sql.PUBLISHED), {"publications": list(names.publications)}
    ).scalars()
    wanted = sorted(set(published))
    present = set(target.execute(text(replica_sql.EXISTING), {"names": wanted}).scalars())
    missing = [name for name in wanted if name not in present]
    if missing:
        raise CdcError(
            f"the source's publications {', '.join(names.publications)} hold "
            f"{', '.join(missing)}, which the target lacks under those names: the consumer's "
            "models do not declare them as CDC tables (run it with the models the source was "
            "migrated to; or another MetaData shares the publication: give each its own "
            "'audit.publication' and 'audit.slot'), or the source placed them in a schema by "
            "its search_path that the models leave out (the replica is made under the models' "
            "names: give the tables schema=)"
        )


def _context_tables(names: CdcNames) -> list[str]:
    """The tables the consumer makes next to the context table and writes to (regclass
    texts)."""
    context = names.context_schema
    return [
        name_text(context, table)
        for table in (
            replica_sql.SOURCE_TABLE,
            replica_sql.SLOTS_TABLE,
            replica_sql.SEEDED_TABLE,
            replica_sql.APPLY_SEEN_TABLE,
            gap_sql.PENDING_TABLE,
            stale_sql.REPLACED_TABLE,
            names.context_table,
            joins_sql.joins_table(names.context_table),
            joins_sql.SEEDED_JOINS_TABLE,
        )
    ]


def _make_table(connection: Connection, source: Connection, pair: tuple[Table, AuditSpec]) -> None:
    """A CDC table's replica and audit table where missing or behind the models, and its
    capture triggers, in one transaction: the apply worker never writes a replica without
    them.  A column stricter than the source's is refused before the subscription (it would
    stop the apply worker for good); the refusal rolls back what the transaction made."""
    table, _ = pair
    audit = table.info[AUDIT_TABLE_KEY]
    own = [name_text(table.schema, table.name), name_text(audit.schema, audit.name)]
    # Before the lock and again once made: made first by another role, a table would run its
    # triggers as this role, or as the apply worker.
    refuse_planted(connection, own)
    if inspect(connection).has_table(table.name, schema=table.schema):
        connection.exec_driver_sql(
            replica_sql.lock_against_the_apply_worker(table.schema, table.name)
        )
    _create_tables(connection, [pair])
    refuse_planted(connection, own)
    refuse_stricter_columns(source, connection, [pair])
    _install_capture(connection, [pair])


def _create_schemas(
    connection: Connection, names: CdcNames, pairs: Sequence[tuple[Table, AuditSpec]]
) -> None:
    """The schemas of the replica, audit and context tables, where missing."""
    schemas = {names.context_schema}
    for table, _ in pairs:
        schemas |= {table.schema, table.info[AUDIT_TABLE_KEY].schema}
    for schema in sorted(s for s in schemas if s):
        connection.exec_driver_sql(replica_sql.create_schema(schema))


def _create_tables(connection: Connection, pairs: Sequence[tuple[Table, AuditSpec]]) -> None:
    """The replica of each source table (columns, defaults and primary key only) and its
    audit table, where missing; and, where they exist, the columns the metadata has and they
    lack (a migration of the source: the apply worker waits for them)."""
    _add_missing_columns(connection, pairs)
    replicas = MetaData()
    for source, _ in pairs:
        replica = Table(
            source.name,
            replicas,
            *map(_replica_column, source.columns),
            *_replica_key(source),
            schema=source.schema,
        )
        replica.create(connection, checkfirst=True)
        # checkfirst for its types too: SQLAlchemy 2.0 would create the replica's enum again.
        source.info[AUDIT_TABLE_KEY].create(connection, checkfirst=True)


def _add_missing_columns(connection: Connection, pairs: Sequence[tuple[Table, AuditSpec]]) -> None:
    inspector = inspect(connection)
    statements: list[str] = []
    for source, _ in pairs:
        for table in (source, source.info[AUDIT_TABLE_KEY]):
            if not inspector.has_table(table.name, schema=table.schema):
                continue
            present = {c["name"] for c in inspector.get_columns(table.name, schema=table.schema)}
            for column in table.columns:
                if column.name not in present and column.computed is None:
                    type_sql = column.type.compile(dialect=connection.dialect)
                    default = _default_sql(connection, column) if table is source else None
                    statements.append(
                        sql.add_column(table.schema, table.name, column.name, type_sql)
                        if default is None
                        else replica_sql.add_column_with_default(
                            table.schema, table.name, column.name, type_sql, default
                        )
                    )
    execute_statements(connection, statements)


def _default_sql(connection: Connection, column: Column[Any]) -> str | None:
    """The declared server default of a source column, as ``CREATE TABLE`` renders it (the
    source filled its existing rows with it; a volatile one such as ``now()`` is evaluated
    again on the target, so those rows get the target's value)."""
    default = column.server_default
    if not isinstance(default, DefaultClause):
        return None  # none, or one only the server knows (FetchedValue)
    if isinstance(default.arg, str):
        return literal(default.arg)
    compiled = default.arg.compile(
        dialect=connection.dialect, compile_kwargs={"literal_binds": True}
    )
    return str(compiled)


def _replica_column(column: Column[Any]) -> Column[Any]:
    """Values arrive whole from the source: no defaults, sequences or foreign keys; generated
    columns are computed again (the source does not publish them)."""
    computed = [column.computed._copy()] if column.computed is not None else []
    return Column(
        column.name,
        column.type,
        *computed,
        nullable=column.nullable,
        autoincrement=False,
    )


def _replica_key(source: Table) -> list[PrimaryKeyConstraint]:
    """The source's primary key.  A deferrable one is checked at commit on the replica: the
    apply worker applies one change at a time, so a swap the source did in one statement passes
    through two rows on one key."""
    key = source.primary_key
    if not key.columns:
        return []
    names = [c.name for c in key.columns]
    if key.deferrable:
        return [PrimaryKeyConstraint(*names, deferrable=True, initially="DEFERRED")]
    return [PrimaryKeyConstraint(*names)]


def _setting_types(pairs: Sequence[tuple[Table, AuditSpec]]) -> dict[str, tuple[str, ...]]:
    """``{setting name: the SQL types its audit columns have}`` over the CDC tables."""
    types: dict[str, tuple[str, ...]] = {}
    for _, spec in pairs:
        for setting in spec.settings:
            known = types.get(setting.name.lower(), ())
            if setting.sql_type not in known:
                types[setting.name.lower()] = (*known, setting.sql_type)
    return types


def install_capture(connection: Connection, metadata: MetaData) -> None:
    """(Re)install the target's capture triggers of ``metadata``'s CDC tables.

    For schema changes: run it on the target in the transaction that migrates the replica and
    audit tables, so no applied change meets a new column with the old trigger function.
    """
    _install_capture(connection, [(t, s) for t, s in audited_tables(metadata) if s.cdc])


def _install_capture(connection: Connection, pairs: Sequence[tuple[Table, AuditSpec]]) -> None:
    """The row-level audit triggers, firing for applied changes too (``ENABLE ALWAYS``)."""
    specs = resolve_specs(connection, [spec.capture_spec for _, spec in pairs])
    check_audit_tables(connection, specs)
    statements = list(install_statements(specs))
    for spec in specs:
        statements += [sql.enable_always(spec.schema, spec.table, t.name) for t in spec.triggers]
    execute_statements(connection, statements)


def _libpq(url: URL) -> dict[str, object]:
    """The source's connection parameters as the target's server will use them."""
    query = dict(url.query)
    return {
        "host": url.host or query.get("host"),
        "port": url.port or query.get("port"),
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
    }
