"""pg_partman, where the database has it: partitioned audit tables are registered with it, and
its maintenance (run by ``maintain``, or on its own from pg_cron) creates their partitions.

Supported: pg_partman 4.x (Debian's ``postgresql-15-partman`` is 4.7), whose ``create_parent``
takes ``p_type => 'native'`` and named intervals (``weekly``).  pg_partman 5.x changed that API
(``p_type => 'range'``, intervals as ``interval`` values, ``p_default_table``, a different
partition suffix, no ``partition_data_time`` for native sets' DEFAULT partitions); where the
database has 5.x, ``maintain`` keeps to its built-in path, as where it has none.

What stays ``maintain``'s own, partman or not: draining the DEFAULT partition (pg_partman's
``partition_data_*`` deletes rows from it, which the append-only guard refuses; ``maintain``
detaches it instead, and asks pg_partman to create the partitions the rows need, named its
way), and retention (pg_partman's would drop partitions without the trail's ``X`` marker and
past a hold), and marking partitions as audit history (comment, owner-only rights, guard):
``maintain`` marks those pg_partman makes when it runs it, and the function the pg_cron job
runs (``schedule_partman_maintenance``) marks those its own run makes, in the same
transaction.  pg_partman works in the session's time zone; both set UTC for their calls, so
that pg_partman cuts periods where the library does.

pg_partman 4.x's maintenance fails for every table of the database on one registered table
with no partition left, or one that is not partitioned: registrations make partitions ahead of
the present (``premake``), a table left with none gets the present's back, and a table that
stops being partitioned or is dropped is unregistered (``unregister``, ``on_table_dropping``);
``check`` reports a registration left behind (``stale_registration``).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ..declare.audit_table import AUDIT_TABLE_COMMENT_SUFFIX
from ..declare.naming import fit_identifier
from ..declare.options import PartitionInterval
from ..errors import AuditError
from ..install.ddl import AuditDDL, _connection
from ..render import partman as sql
from ..render.conversion import rename_table
from ..render.partitioning import default_partition, detach_partition
from ..render.sql import name_text
from .periods import PREMAKE, Period, bound_text, period_of

_EXTENSION = sa.text(
    "SELECT n.nspname, e.extversion FROM pg_catalog.pg_extension e "
    "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_partman'"
)


@dataclass(frozen=True, slots=True)
class Partman:
    """pg_partman in this database: its schema and version."""

    schema: str
    version: str


def partman_of(connection: sa.Connection) -> Partman | None:
    """The database's pg_partman when it is a version this library drives (4.x), else None."""
    found = connection.execute(_EXTENSION).first()
    if found is None or not str(found.extversion).startswith("4."):
        return None
    return Partman(schema=found.nspname, version=found.extversion)


def parent_name(connection: sa.Connection, schema: str | None, audit_table: str) -> str:
    """pg_partman's name of a table: ``schema.table``, unquoted."""
    if schema is None:
        schema = connection.execute(sa.select(sa.func.current_schema())).scalar_one()
    if "." in schema or "." in audit_table:
        raise AuditError(
            f"audit table {audit_table!r} in schema {schema!r}: pg_partman cannot manage a "
            "table whose schema or name holds a dot"
        )
    return f"{schema}.{audit_table}"


def register(
    connection: sa.Connection,
    partman: Partman,
    schema: str | None,
    audit_table: str,
    interval: PartitionInterval,
    start: datetime.datetime,
) -> str | None:
    """Register the audit table with pg_partman unless it is; when registered now, returns
    the name of the library's DEFAULT partition, set aside with its rows, else None.

    pg_partman creates the DEFAULT partition itself, under the name the library gives it, so
    the library's is detached and renamed first.  Its rows are not sent through the parent
    again (a publication of the audit table would publish them a second time): ``maintain``
    moves them straight into their partitions, as it drains the DEFAULT partition
    (``lifecycle.drain``), and drops it.
    """
    parent = parent_name(connection, schema, audit_table)
    if connection.execute(sa.text(sql.registered(partman.schema)), {"parent": parent}).scalar():
        return None
    default = default_partition(audit_table)
    aside = fit_identifier(f"{audit_table}_default_aside")
    _run(connection, detach_partition(schema, audit_table, default))
    _run(connection, rename_table(schema, default, aside))
    connection.execute(
        sa.text(sql.create_parent(partman.schema)),
        {
            "parent": parent,
            "control": "audit_operation_timestamp",
            "interval": sql.PARTMAN_INTERVALS[interval],
            "premake": PREMAKE,
            "start": bound_text(start),
        },
    )
    return aside


def premake(
    connection: sa.Connection,
    partman: Partman,
    parent: str,
    interval: PartitionInterval,
    *,
    recover: bool,
) -> None:
    """pg_partman's maintenance of one registered table: its partitions ahead of the present
    (``sql.keep_present``).  ``recover``: the table has no partition but its DEFAULT one
    (retention removed every partition before ``keep_present`` was set, or they were dropped
    by hand), on which pg_partman 4.x's maintenance fails: the partition holding the present
    is created first, from which pg_partman goes on."""
    connection.execute(sa.text(sql.keep_present(partman.schema)), {"parent": parent})
    if recover:
        present = connection.execute(sa.select(sa.func.now())).scalar_one()
        create_periods(connection, partman, parent, [period_of(present, interval)])
    connection.execute(sa.text(sql.run_maintenance(partman.schema)), {"parent": parent})


def unregister(connection: sa.Connection, schema: str | None, audit_table: str) -> bool:
    """Remove the audit table's registration with pg_partman (its ``part_config`` row, the
    ``part_config_sub`` rows that follow it, the template table pg_partman made), for a table
    that stops being partitioned: pg_partman's maintenance of every table in the database
    fails on a registered table that is not partitioned.  Returns whether it was registered."""
    found = partman_of(connection)
    if found is None or "." in (schema or "") or "." in audit_table:
        return False  # such a table is never registered (``parent_name``)
    parent = parent_name(connection, schema, audit_table)
    templates = connection.execute(sa.text(sql.unregister(found.schema)), {"parent": parent}).all()
    for template in templates:
        if template.name:
            _run(connection, sql.drop_template(template.schema, template.name))
    return bool(templates)


_AUDIT_TABLE_COMMENT = sa.text(
    "SELECT pg_catalog.obj_description(pg_catalog.to_regclass(:t), 'pg_class')"
)


def on_table_dropping(table: sa.Table, connection: sa.Connection, **_: object) -> None:
    """Unregister an audit table from pg_partman as it is dropped (``drop_all``, Alembic's
    ``op.drop_table``), in the same transaction.  Known by its comment in the catalog: the
    Table Alembic drops carries no comment, and tables of the application that the DBA
    registered are none of the library's business.  Offline (``alembic --sql``, no
    connection) nothing can be read, and nothing is done."""
    if not isinstance(connection, sa.Connection) or partman_of(connection) is None:
        return
    comment = connection.execute(
        _AUDIT_TABLE_COMMENT, {"t": name_text(table.schema, table.name)}
    ).scalar()
    if comment is not None and str(comment).endswith(AUDIT_TABLE_COMMENT_SUFFIX):
        unregister(connection, table.schema, table.name)


def stale_registration(
    connection: sa.Connection, schema: str | None, audit_table: str
) -> str | None:
    """Why the audit table's registration with pg_partman breaks pg_partman's maintenance:
    it is registered but no partitioned table of its name exists.  ``None`` when it is fine
    (or not registered, or the database has no pg_partman 4.x)."""
    found = partman_of(connection)
    if found is None or "." in (schema or "") or "." in audit_table:
        return None
    parent = parent_name(connection, schema, audit_table)
    if not connection.execute(
        sa.text(sql.stale_registration(found.schema)), {"parent": parent}
    ).scalar():
        return None
    return (
        f"pg_partman still has {parent!r} registered ({found.schema}.part_config) but it is "
        "not a partitioned table: pg_partman's maintenance fails for every table of the "
        "database; remove the registration (lifecycle.partman.unregister)"
    )


def create_periods(
    connection: sa.Connection, partman: Partman, parent: str, periods: Sequence[Period]
) -> None:
    if periods:
        connection.execute(
            sa.text(sql.create_partition_time(partman.schema)),
            {"parent": parent, "times": [period.lower for period in periods]},
        )


def _run(connection: sa.Connection, statement: str) -> None:
    connection.execute(AuditDDL(statement))


#: The pg_cron job ``schedule_partman_maintenance`` creates (one per database it names).
CRON_JOB = "sqlalchemy_postgresql_audit_partman"

_SCHEDULE = sa.text("SELECT cron.schedule_in_database(:job, :schedule, :command, :database)")
_SCHEDULE_AS = sa.text(
    "SELECT cron.schedule_in_database(:job, :schedule, :command, :database, :owner)"
)


def install_maintenance_function(
    connection: sa.Connection, partman: Partman, schema: str | None, owner: str | None
) -> str:
    """Install (or replace) the function the pg_cron job runs, ``schema``'s (the connection's
    current schema when ``None``), owned by ``owner`` (the connection's role when ``None``)
    alone; returns the statement that runs it."""
    if schema is None:
        schema = connection.execute(sa.select(sa.func.current_schema())).scalar_one()
    _run(connection, sql.maintenance_function(schema, partman.schema, AUDIT_TABLE_COMMENT_SUFFIX))
    _run(connection, sql.revoke_maintenance_function(schema))
    if owner is not None:
        _run(connection, sql.maintenance_function_owner(schema, owner))
    return sql.run_maintenance_function(schema)


def schedule_partman_maintenance(
    cron_bind: sa.Engine | sa.Connection,
    target_bind: sa.Engine | sa.Connection,
    *,
    schedule: str = "*/30 * * * *",
    job_name: str | None = None,
    schema: str | None = None,
    owner: str | None = None,
) -> int:
    """Have pg_cron run pg_partman's maintenance of the audit tables in ``target_bind``'s
    database on ``schedule``, and return the job's id (``cron.unschedule(id)`` removes it).

    The job runs a function installed here (``render.partman.maintenance_function``, in
    ``schema``, by default the connection's current one): pg_partman's ``run_maintenance`` of
    each audit table registered with it, then, in the same transaction, the comment,
    owner-only rights, replica identity and append-only guard on every partition it made, so
    that a partition is complete as soon as it exists (pg_partman 4.x has no hook to do that
    after it creates one).  The function and the job belong to ``owner`` (by default the role
    of ``target_bind``, which should be the audit tables' owner; naming another role for the
    job takes a superuser in ``cron_bind``).

    ``cron_bind`` is the database pg_cron was created in (``cron.database_name``, ``postgres``
    by default); a job of the same name is replaced.  ``maintain`` still drains the DEFAULT
    partition and applies retention: schedule it too, less often.
    """
    with _connection(target_bind) as target:
        found = partman_of(target)
        database = target.execute(sa.select(sa.func.current_database())).scalar_one()
        if found is None:
            raise AuditError(f"database {database!r} has no pg_partman 4.x to schedule")
        command = install_maintenance_function(target, found, schema, owner)
    name = job_name or f"{CRON_JOB}_{database}"
    values = {"job": name, "schedule": schedule, "command": command, "database": database}
    with _connection(cron_bind) as cron:
        if owner is None:
            job = cron.execute(_SCHEDULE, values).scalar_one()
        else:
            job = cron.execute(_SCHEDULE_AS, {**values, "owner": owner}).scalar_one()
    return int(job)
