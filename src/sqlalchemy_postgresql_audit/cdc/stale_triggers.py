"""Design 1: the stale-row replacement's objects on the target (``render.cdc_stale``), made
disabled: the marker table, the audit tables' trigger that keeps a removal out of the trail,
and on each replica whose key proves a row stale the replacing triggers.

The consumer's start makes them, and switching the replacement on (``.stale``) makes each
replica's triggers again, one table per transaction: the apply worker holds a replica's lock and
then wants its audit table's (or another replica's), so a transaction holding several could
deadlock with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, Table, text

from ..declare.audit_table import AUDIT_TABLE_KEY
from ..declare.cdc import CdcNames
from ..declare.spec import AuditSpec
from ..install.catalog import default_schema
from ..install.ddl import execute_statements
from ..render import cdc_stale as sql
from ..render.sql import name_text
from .errors import CdcError


def refuse_planted(target: Connection, tables: Sequence[str]) -> None:
    """Refuse, naming it, a table of ``tables`` (regclass texts) another role owns: made first
    under the name by a role that may create in the schema, its triggers would run as whoever
    writes to it (this role, or the apply worker)."""
    planted = target.execute(text(sql.NOT_OWNED), {"tables": list(tables)}).scalars().all()
    if planted:
        raise CdcError(
            f"table {planted[0]} on the target is owned by another role than the consumer's: "
            "its triggers would run as the consumer or as the subscription's apply worker.  "
            "The consumer makes the tables it writes to on the target: drop it, or have it "
            "owned by the consumer's role"
        )


def prepare_stale_replacement(
    source: Engine, target: Engine, names: CdcNames, pairs: Sequence[tuple[Table, AuditSpec]]
) -> None:
    """Everything, disabled, at the consumer's start: the function that drops a removal's
    version and its trigger on each audit table, then each replica's triggers; one table per
    transaction."""
    with target.begin() as connection:
        default = default_schema(connection)
        context = names.context_schema or default
        execute_statements(connection, [sql.quiet_function(context)])
    for table, _ in pairs:
        audit = table.info[AUDIT_TABLE_KEY]
        with target.begin() as connection:
            execute_statements(
                connection, sql.quiet_versions(context, audit.schema or default, audit.name)
            )
    for table, _ in pairs:
        with target.begin() as connection, source.connect() as on_source:
            replacing_triggers(connection, on_source, names, table)


def replacing_triggers(
    target: Connection, source: Connection, names: CdcNames, table: Table, *, on: bool = False
) -> bool:
    """The replacing triggers of ``table``'s replica, made again (``on``: switched on), when
    its key proves a row stale; dropped otherwise.  Whether it has them."""
    default = default_schema(target)
    schema = table.schema or default
    key = _replaceable_key(target, source, schema, table.name)
    if key is None:
        execute_statements(target, sql.drop_replacing(schema, table.name))
        return False
    statements = list(sql.replace_stale(names.context_schema or default, schema, table.name, key))
    if on:
        statements += sql.switch(schema, table.name, enabled=True)
    execute_statements(target, statements)
    return True


def _replaceable_key(
    target: Connection, source: Connection, schema: str, table: str
) -> list[sql.KeyColumn] | None:
    """The replica's key columns with their equality operators, when a row on the incoming key
    proves a stale one: the replica's key is the source's primary key (columns, types and
    collations), neither deferrable (the source may pass through two rows of one key inside a
    statement)."""
    name = name_text(schema, table)
    replica = target.execute(text(sql.KEY_OPERATORS), {"table": name}).all()
    on_source = source.execute(text(sql.SOURCE_KEY), {"table": name}).all()
    if (
        not replica
        or [(r.attname, r.type, r.collation) for r in replica]
        != [(s.attname, s.type, s.collation) for s in on_source]
        or any(r.condeferrable for r in replica)
        or any(s.condeferrable for s in on_source)
    ):
        return None
    return [(r.attname, sql.qualified_operator(r.nspname, r.oprname)) for r in replica]
