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
import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ..declare.audit_table import AUDIT_TABLE_COMMENT_SUFFIX
from ..declare.naming import MAX_IDENTIFIER_BYTES, fit_identifier
from ..declare.options import PartitionInterval
from ..errors import AuditError
from ..install.ddl import AuditDDL, _connection
from ..render import partman as sql
from ..render.conversion import rename_table
from ..render.partitioning import create_range_partition, default_partition, detach_partition
from ..render.sql import name_text, qualified
from .partition_catalog import partition_comment, range_partitions
from .periods import PREMAKE, Period, bound_text, period_of, periods_ahead

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


#: What pg_partman 4.7 cannot take in a schema or table name: the dot it splits
#: ``schema.table`` on, and quotes and backslashes, which some of its statements do not quote.
_UNQUOTED = frozenset(".'\"\\")

#: The length of pg_partman 4.7's partition suffixes (``to_char`` of the period's start).
_SUFFIX_CHARS: dict[PartitionInterval, int] = {"day": 10, "week": 7, "month": 7}


def partman_suffix(period: Period, interval: PartitionInterval) -> str:
    """pg_partman 4.7's suffix of a period's partition: ``2026_12_05``, ``2026w49``,
    ``2026_12``."""
    lower = period.lower
    if interval == "day":
        return f"{lower.year:04d}_{lower:%m_%d}"
    if interval == "week":
        year, week, _ = lower.isocalendar()
        return f"{year:04d}w{week:02d}"
    return f"{lower.year:04d}_{lower:%m}"


def partman_name(audit_table: str, period: Period) -> str:
    """pg_partman 4.7's name of a period's partition (its ``check_name_length``): the table's
    name, cut where it reaches 61 characters with the suffix, ``_p`` and the suffix."""
    suffix = partman_suffix(period, _interval_of(period))
    return f"{audit_table[: 61 - len(suffix)]}_p{suffix}"


def unfit(schema: str, audit_table: str, interval: PartitionInterval) -> str | None:
    """Why pg_partman 4.7 cannot manage this audit table (``None``: it can).  pg_partman cuts
    a name that reaches 61 characters with its suffix (63 for others), where the library
    hashes: two long tables would share partition names, and the DEFAULT partition would not
    be the library's; its template table's name is cut alike, and two tables would share
    one.  Names it does not quote break its statements."""
    for what, name in (("schema", schema), ("name", audit_table)):
        bad = "".join(sorted(set(name) & _UNQUOTED))
        if bad:
            return f"its {what} holds {bad!r}, which pg_partman 4.7 does not quote"
    suffix = _SUFFIX_CHARS[interval]
    most = min(60 - suffix, MAX_IDENTIFIER_BYTES - 2 - suffix)
    if len(audit_table) > most or len(audit_table.encode("utf-8")) > most:
        return (
            f"its name is longer than the {most} characters (bytes) pg_partman leaves it in "
            f"the names of {interval} partitions: it would cut them, and another table's "
            "could be the same"
        )
    template = f"template_{schema}_{audit_table}"
    if len(template) >= 63 or len(template.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        return f"pg_partman would cut the name of its template table {template!r}"
    return None


def partman_for(
    connection: sa.Connection, schema: str | None, audit_table: str, interval: PartitionInterval
) -> Partman | None:
    """pg_partman where it can manage this audit table, else ``None``: ``maintain`` creates
    the partitions itself.  A table pg_partman cannot name (``unfit``) is not registered,
    with a warning naming it; one registered before is unregistered, and the DEFAULT
    partition pg_partman made for it (found by its bound: pg_partman named it its way) takes
    the library's name back."""
    found = partman_of(connection)
    if found is None:
        return None
    current = schema
    if current is None:
        current = connection.execute(sa.select(sa.func.current_schema())).scalar_one()
    problem = unfit(current, audit_table, interval)
    if problem is None:
        return found
    warnings.warn(
        f"audit table {name_text(schema, audit_table)} is not registered with pg_partman: "
        f"{problem}; maintain creates its partitions itself",
        UserWarning,
        stacklevel=3,
    )
    if unregister(connection, schema, audit_table):
        default = connection.execute(
            sa.text(sql.DEFAULT_PARTITION), {"t": name_text(schema, audit_table)}
        ).scalar()
        if default is not None and default != default_partition(audit_table):
            _run(connection, rename_table(schema, default, default_partition(audit_table)))
    return None


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
    # pg_partman's registration makes partitions from ``start`` to those ahead of the
    # present, skipping a name a relation holds: refused here instead, naming it.
    present = connection.execute(sa.select(sa.func.now())).scalar_one()
    last = periods_ahead(present, interval)[-1]
    made = [period_of(start, interval)]
    while made[-1] < last:
        made.append(period_of(made[-1].upper, interval))
    _names_free(connection, parent.split(".", 1)[0], audit_table, made)
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
) -> None:
    """pg_partman's maintenance of one registered table: its partitions ahead of the present
    (``sql.keep_present``).  Those are created first, by ``create_periods`` (whose names are
    checked): pg_partman's maintenance skips a period whose name a relation holds, without a
    word; and on a table left with no partition but its DEFAULT one (retention removed every
    partition before ``keep_present`` was set, or they were dropped by hand) pg_partman 4.x's
    maintenance fails, and from the present's partition it goes on."""
    connection.execute(sa.text(sql.keep_present(partman.schema)), {"parent": parent})
    present = connection.execute(sa.select(sa.func.now())).scalar_one()
    ahead = periods_ahead(present, interval)
    create_periods(connection, partman, parent, ahead)
    # pg_partman's maintenance makes one period more than ``maintain`` keeps: its name too.
    schema, audit_table = parent.split(".", 1)
    further = [period_of(ahead[-1].upper, interval)]
    _names_free(
        connection, schema, audit_table, _uncovered(connection, schema, audit_table, further)
    )
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


_OWNER = sa.text(
    "SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_catalog.pg_class "
    "WHERE oid = CAST(:t AS regclass)"
)

_HOLDER = sa.text(
    "SELECT c.relkind, c.relispartition, pg_catalog.pg_get_userbyid(c.relowner) AS owner, "
    "pg_catalog.obj_description(c.oid, 'pg_class') AS comment "
    "FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(:t)"
)


def create_periods(
    connection: sa.Connection, partman: Partman, parent: str, periods: Sequence[Period]
) -> None:
    """Partitions for the ``periods`` no partition covers, made by pg_partman, named its way.

    pg_partman skips a period whose name a relation holds already, silently, leaving a gap; its
    names are predictable (``partman_suffix``), so they are checked first.  A partition
    retention kept (detached, the owner's, with the partitions' comment) may hold the name
    when its period is made again (a catch-up ``at``, an old row to drain): the new partition
    is made here, under the next free name (``_2``), as on the built-in path.  Any other
    relation is refused, naming it and its owner: it is not audit history."""
    schema, audit_table = parent.split(".", 1)
    wanted = _uncovered(connection, schema, audit_table, periods)
    if not wanted:
        return
    asked, kept = _names_free(connection, schema, audit_table, wanted)
    for name, period in kept:
        _create_beside_kept(connection, schema, audit_table, name, period)
    if asked:
        connection.execute(
            sa.text(sql.create_partition_time(partman.schema)),
            {"parent": parent, "times": [period.lower for period in asked]},
        )
    for period in _uncovered(connection, schema, audit_table, wanted):
        raise AuditError(
            f"pg_partman created no partition of {qualified(schema, audit_table)} for "
            f"[{bound_text(period.lower)}, {bound_text(period.upper)}); nothing was changed"
        )


def _names_free(
    connection: sa.Connection, schema: str, audit_table: str, periods: Sequence[Period]
) -> tuple[list[Period], list[tuple[str, Period]]]:
    """The periods whose pg_partman name is free, and those whose name a partition retention
    kept holds (with that name); any other holder is refused."""
    owner = connection.execute(_OWNER, {"t": name_text(schema, audit_table)}).scalar_one()
    free, kept = [], []
    for period in periods:
        name = partman_name(audit_table, period)
        holder = connection.execute(_HOLDER, {"t": name_text(schema, name)}).first()
        if holder is None:
            free.append(period)
        elif (
            holder.relkind == "r"
            and not holder.relispartition
            and holder.owner == owner
            and holder.comment == partition_comment(audit_table)
        ):
            kept.append((name, period))
        else:
            raise AuditError(
                f"maintain cannot have pg_partman create partition {qualified(schema, name)} "
                f"of audit table {qualified(schema, audit_table)} for "
                f"[{bound_text(period.lower)}, {bound_text(period.upper)}): a relation of "
                f"that name, owned by {holder.owner!r}, is in the way and is not audit "
                "history; find out who created it (any role with CREATE on the schema can), "
                "rename or drop it, and run maintain again"
            )
    return free, kept


def _uncovered(
    connection: sa.Connection, schema: str, audit_table: str, periods: Sequence[Period]
) -> list[Period]:
    current = range_partitions(connection, schema, audit_table)
    return sorted(
        {p for p in periods if not any(c.lower < p.upper and p.lower < c.upper for c in current)}
    )


def _interval_of(period: Period) -> PartitionInterval:
    days = (period.upper - period.lower).days
    return "day" if days == 1 else "week" if days == 7 else "month"


def _create_beside_kept(
    connection: sa.Connection, schema: str, audit_table: str, name: str, period: Period
) -> None:
    """The period's partition, under the first free name after a kept partition's; marked as
    audit history by ``maintain`` with the others pg_partman made."""
    for copy in itertools.count(2):
        partition = fit_identifier(f"{name}_{copy}")
        if connection.execute(_HOLDER, {"t": name_text(schema, partition)}).first() is None:
            lower, upper = bound_text(period.lower), bound_text(period.upper)
            _run(
                connection,
                create_range_partition(schema, audit_table, partition, lower, upper),
            )
            return


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
