"""Autogenerate's part of the upgrade from 0.5.x: replace in place, convert timestamps knowingly.

- A declared table with a 0.5.x installation (see ``..install.legacy``) gets a
  ``replace_audit_trigger`` whose ``previous`` is the template-0 spec, not a
  ``create_audit_trigger`` beside the old trigger.
- Alembic's own ``alter_column`` of ``audit_operation_timestamp`` from ``TIMESTAMP WITHOUT TIME
  ZONE`` to ``WITH TIME ZONE`` would convert the stored wall-clock times with the migration
  session's ``TimeZone``, a silent guess.  It is rewritten to say ``postgresql_using=
  "audit_operation_timestamp AT TIME ZONE '<zone>'"``, with the zone the old rows were written in
  taken from ``context.configure(..., audit_legacy_time_zone="<zone>")``; without that option,
  autogenerate stops and says so.  The same expression converts back on downgrade.
"""

from __future__ import annotations

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.autogenerate.render import _alter_column
from alembic.operations import ops
from sqlalchemy import Connection, DateTime, Table, text

from ..declare.audit_table import IS_AUDIT_TABLE_KEY
from ..declare.spec import AUDIT_TIMESTAMP, AuditSpec
from ..errors import AuditError
from ..install.compare import Change, InstallAudit, ReplaceAudit
from ..render import legacy_timestamp_using

#: The ``context.configure()`` option naming the time zone 0.5.x timestamps were written in.
TIME_ZONE_OPTION = "audit_legacy_time_zone"

_KNOWN_ZONE = text(
    "SELECT EXISTS (SELECT FROM pg_catalog.pg_timezone_names WHERE name = :zone)"
    " OR EXISTS (SELECT FROM pg_catalog.pg_timezone_abbrevs WHERE abbrev = :zone)"
)


class LegacyTimestampAlterOp(ops.AlterColumnOp):
    """``alter_column`` of a zone-less audit timestamp, rendered with its ``postgresql_using``
    (Alembic's renderer drops that argument).  Its reverse is one too: ``AT TIME ZONE`` turns a
    time zone aware timestamp back into that zone's wall-clock time."""


@renderers.dispatch_for(LegacyTimestampAlterOp)
def _render_timestamp_alter(autogen_context: AutogenContext, op: LegacyTimestampAlterOp) -> str:
    rendered: str = _alter_column(autogen_context, op)
    using = op.kw["postgresql_using"]
    return f"{rendered[:-1]},\n{' ' * 11}postgresql_using={using!r})"


def upgrade_legacy(
    changes: list[Change], legacy: dict[tuple[str, str], AuditSpec], default_schema: str
) -> list[Change]:
    """Turn the install of a table that has a 0.5.x installation into a replace of it."""
    upgraded: list[Change] = []
    for change in changes:
        found = (
            legacy.get((change.spec.schema or default_schema, change.spec.table))
            if isinstance(change, InstallAudit)
            else None
        )
        upgraded.append(change if found is None else ReplaceAudit(change.spec, found))
    return upgraded


def convert_timestamps(
    autogen_context: AutogenContext,
    upgrade_ops: ops.UpgradeOps,
    declared_tables: dict[tuple[str, str], Table],
    default_schema: str,
) -> None:
    """Give every zone-less -> time zone aware audit timestamp alter its explicit zone."""
    for table_ops in upgrade_ops.ops:
        if not isinstance(table_ops, ops.ModifyTableOps):
            continue
        table = declared_tables.get((table_ops.schema or default_schema, table_ops.table_name))
        if table is None or IS_AUDIT_TABLE_KEY not in table.info:
            continue
        for index, op in enumerate(table_ops.ops):
            if _adds_time_zone(op):
                assert isinstance(op, ops.AlterColumnOp)
                zone = _time_zone(autogen_context, table)
                table_ops.ops[index] = LegacyTimestampAlterOp(
                    op.table_name,
                    op.column_name,
                    schema=op.schema,
                    existing_type=op.existing_type,
                    existing_server_default=op.existing_server_default,
                    existing_nullable=op.existing_nullable,
                    existing_comment=op.existing_comment,
                    modify_nullable=op.modify_nullable,
                    modify_comment=op.modify_comment,
                    modify_server_default=op.modify_server_default,
                    modify_name=op.modify_name,
                    modify_type=op.modify_type,
                    **{**op.kw, "postgresql_using": legacy_timestamp_using(AUDIT_TIMESTAMP, zone)},
                )


def _adds_time_zone(op: ops.MigrateOperation) -> bool:
    return (
        isinstance(op, ops.AlterColumnOp)
        and op.column_name == AUDIT_TIMESTAMP
        and isinstance(op.modify_type, DateTime)
        and isinstance(op.existing_type, DateTime)
        and bool(op.modify_type.timezone)
        and not op.existing_type.timezone
    )


def _time_zone(autogen_context: AutogenContext, table: Table) -> str:
    zone = autogen_context.opts.get(TIME_ZONE_OPTION)
    connection = autogen_context.connection
    assert connection is not None
    if zone is None:
        raise AuditError(
            f"audit table {table.fullname!r}: {AUDIT_TIMESTAMP} changes from TIMESTAMP WITHOUT "
            "TIME ZONE to TIMESTAMP WITH TIME ZONE.  Its rows hold the wall-clock time of the "
            "sessions that wrote them (0.5.x, like legacy_timestamp, wrote now() into it), and "
            "which time zone that was "
            "is not recorded anywhere.  Say it in env.py: context.configure(..., "
            f"{TIME_ZONE_OPTION}='UTC') (this session's TimeZone is "
            f"{_session_zone(connection)!r}), or keep zone-less timestamps with the option "
            "legacy_timestamp: True"
        )
    if not isinstance(zone, str) or not connection.execute(_KNOWN_ZONE, {"zone": zone}).scalar():
        raise AuditError(
            f"{TIME_ZONE_OPTION}={zone!r} is not a time zone PostgreSQL knows "
            "(pg_timezone_names, pg_timezone_abbrevs)"
        )
    return zone


def _session_zone(connection: Connection) -> str:
    return str(connection.execute(text("SELECT pg_catalog.current_setting('TimeZone')")).scalar())
