"""CDC tables do not follow ``schema_translate_map``: refuse installing one through it.

A trigger-mode table installed through a translate map is audited in the tenant's schema by
its own function there.  A CDC table's trail is written by a consumer, which reads the tables
the publication holds and looks each up among its metadata's declared tables: a tenant's table
(``tenant_a.account``, published because the map sent the install there) is no declared table
of the metadata (``account``), so design 2 stops on it as undeclared and design 1 lacks its
replica.  Every tenant's trail would stop for good while the slot keeps the WAL, so such an
install is refused before anything is written (before the slot is made).  A write through the
map to such a table is refused by the runtime check (``runtime_check``), as the table it
addresses is not published.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Table

from ..declare.spec import AuditSpec
from ..errors import AuditConfigurationError


def _translated(connection: Connection, schema: str | None) -> str | None:
    """``schema`` as ``connection``'s ``schema_translate_map`` sends it."""
    translate = connection.get_execution_options().get("schema_translate_map") or {}
    return translate.get(schema, schema)


def refuse_translated(connection: Connection, pairs: Sequence[tuple[Table, AuditSpec]]) -> None:
    """Raise ``AuditConfigurationError`` naming the first CDC table of ``pairs`` (declared
    specs) whose schema ``connection``'s ``schema_translate_map`` maps to another schema."""
    for _, spec in pairs:
        if spec.cdc:
            refuse_translated_table(connection, spec.table, spec.schema)


def refuse_translated_table(connection: Connection, table: str, schema: str | None) -> None:
    """``refuse_translated`` for one CDC table declared in ``schema``."""
    translated = _translated(connection, schema)
    if translated != schema:
        raise AuditConfigurationError(
            table,
            "mode",
            f"is 'cdc', but this connection's schema_translate_map sends the table's schema "
            f"({schema or 'none declared'}) to {translated or 'none'}: change-data-capture does "
            "not follow schema_translate_map (the consumer reads the published tables as the "
            "metadata declares them, so no trail of the tenant's table could be written).  "
            "Declare each tenant's tables with schema= (in one MetaData, or a MetaData per "
            "tenant with its own publication and slot names), or use a trigger mode "
            "(mode='row' or 'statement') for tables installed through schema_translate_map; "
            "nothing was installed",
        )
