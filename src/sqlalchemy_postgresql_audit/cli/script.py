"""SQL scripts of table DDL, compiled by SQLAlchemy for a plain ``psql`` file."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.schema import CreateIndex, CreateTable, SetColumnComment, SetTableComment
from sqlalchemy.sql.ddl import ExecutableDDLElement

from ..declare.audit_table import PARTITION_BY, is_audit_table
from ..lifecycle.partition_catalog import partition_comment
from ..render import FALLBACK_SCHEMA
from ..render.partition_script import default_partition_script

# The named paramstyle: no ``%`` doubling, which is for format-style drivers, not a file.
_DIALECT = PGDialect(paramstyle="named")  # type: ignore[no-untyped-call]


def tables_script(tables: Iterable[sa.Table], *, if_not_exists: bool = False) -> str:
    """``CREATE TABLE``, its indexes and ``COMMENT ON`` for each table, as ``create_all`` emits
    them, with a table declared without a schema named in ``public``: the functions of a script
    rendered without a connection write there (see ``render``), so the tables must be there.
    A partitioned audit table gets its DEFAULT partition right after it, as ``create_all``
    gives it one: without it every write fails until the first ``maintain``."""
    script = ""
    for table in tables:
        statements: list[ExecutableDDLElement] = [CreateTable(table, if_not_exists=if_not_exists)]
        statements.extend(
            CreateIndex(index, if_not_exists=if_not_exists)
            for index in sorted(table.indexes, key=lambda index: str(index.name))
        )
        if table.comment:
            statements.append(SetTableComment(table))
        statements.extend(SetColumnComment(c) for c in table.columns if c.comment)
        script += "".join(f"{_text(statement)};\n\n" for statement in statements)
        script += "".join(f"{sql};\n\n" for sql in _partitions(table))
    return script


def _partitions(table: sa.Table) -> tuple[str, ...]:
    """The DEFAULT partition of a partitioned audit table (nothing for any other table)."""
    if not is_audit_table(table):
        return ()
    if table.dialect_options["postgresql"].get("partition_by") != PARTITION_BY:
        return ()
    schema = table.schema or FALLBACK_SCHEMA
    return default_partition_script(schema, table.name, partition_comment(table.name))


def _text(statement: ExecutableDDLElement) -> str:
    compiled = str(
        statement.compile(
            dialect=_DIALECT,
            schema_translate_map={None: FALLBACK_SCHEMA},
            render_schema_translate=True,
        )
    ).strip()
    return "\n".join(line.rstrip() for line in compiled.splitlines())
