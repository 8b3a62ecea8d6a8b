"""Design 1: the stale-row replacement's objects on the target (``render.cdc_stale``), made
disabled: the marker table, the audit tables' trigger that keeps a removal out of the trail,
and on each replica whose key proves a row stale the replacing triggers.

The consumer's start makes them all in its preparing transaction; switching the replacement on
(``.stale``) makes each replica's triggers again in a transaction of its own, holding one
table's lock at a time: the apply worker, retrying, holds the replica's and then wants the
audit table's, so a transaction holding both in the other order would deadlock with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Table, text

from ..declare.audit_table import AUDIT_TABLE_KEY
from ..declare.cdc import CdcNames
from ..declare.spec import AuditSpec
from ..install.catalog import default_schema
from ..install.ddl import execute_statements
from ..render import cdc_stale as sql
from ..render.sql import name_text
from .errors import CdcError


def prepare_stale_replacement(
    target: Connection,
    source: Connection,
    names: CdcNames,
    pairs: Sequence[tuple[Table, AuditSpec]],
) -> None:
    """Everything, disabled, in the consumer's preparing transaction."""
    default = default_schema(target)
    context = names.context_schema or default
    execute_statements(target, [sql.create_replaced_table(context), sql.quiet_function(context)])
    replaced = name_text(context, sql.REPLACED_TABLE)
    if target.execute(text(sql.NOT_OWNED), {"tables": [replaced]}).first() is not None:
        raise CdcError(
            f"table {replaced} on the target is owned by another role than the consumer's: "
            "its triggers would run as the subscription's apply worker; drop it (the consumer "
            "makes it)"
        )
    statements: list[str] = []
    for table, _ in pairs:
        audit_table = table.info[AUDIT_TABLE_KEY]
        statements += sql.quiet_versions(context, audit_table.schema or default, audit_table.name)
    execute_statements(target, statements)
    for table, _ in pairs:
        replacing_triggers(target, source, names, table)


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
    proves a stale one: the replica's key is the source's primary key, neither deferrable (the
    source may pass through two rows of one key inside a statement)."""
    name = name_text(schema, table)
    replica = target.execute(text(sql.KEY_OPERATORS), {"table": name}).all()
    on_source = source.execute(text(sql.SOURCE_KEY), {"table": name}).all()
    if (
        not replica
        or [r.attname for r in replica] != [s.attname for s in on_source]
        or any(r.condeferrable for r in replica)
        or any(s.condeferrable for s in on_source)
    ):
        return None
    return [(r.attname, sql.qualified_operator(r.nspname, r.oprname)) for r in replica]
