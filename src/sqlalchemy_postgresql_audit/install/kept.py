"""An audited table as the database records it, for reading history without the models.

The history API (``history``, ``changes``, ``as_of``) reads any ``Table`` whose ``info`` holds a
spec and an audit table.  ``reflect_audited`` builds one from the database alone, including for
a table that is no longer audited, whose audit table was kept when auditing was uninstalled, the
models stopped declaring it, or the table itself was dropped (``alembic downgrade``):

- the spec is the installed audit function's (kept as JSON in its comment: what the triggers
  run), while there is one;
- otherwise it is read from the kept audit table, found by the comment that names its source
  table: columns named ``audit_<name>`` that the source table does not have are the session
  settings and captures (the default ``audit.column`` convention), the others are the mirrored
  columns, and the key is the source table's primary key or, when the table was dropped, the
  audit table's history index (its columns before ``audit_id``);
- a dropped source table is rebuilt from the audit table's mirrored columns, so the history
  reads; ``restore`` into it fails, as there is nothing to restore into.
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, MetaData, Table, inspect
from sqlalchemy.exc import NoSuchTableError

from ..declare.audit_table import (
    AUDIT_TABLE_COMMENT_SUFFIX,
    AUDIT_TABLE_KEY,
    SPEC_KEY,
    is_audit_table,
)
from ..declare.options import CAPTURES
from ..declare.spec import AUDIT_ID, FIXED_AUDIT_COLUMNS, AuditSpec, SettingSpec, capture_column
from ..errors import AuditError
from .catalog import default_schema, installed_audits

#: The prefix of the audit columns that hold settings and captures (``audit.column``'s default).
_CONTEXT_PREFIX = "audit_"


def reflect_audited(connection: Connection, name: str, *, schema: str | None = None) -> Table:
    """The table ``name`` (in ``schema``, else the default schema), with what the history API
    needs in its ``info``; ``AuditError`` naming the table when the database holds no audit
    trail of it."""
    where = schema or default_schema(connection)
    metadata = MetaData(schema=schema)  # unqualified names stay unqualified, as in the models
    source = _reflect(connection, metadata, name)
    if source is not None and is_audit_table(source):
        raise AuditError(f"table {name!r} is an audit table; name the table it audits")
    spec = _installed_spec(connection, where, name)
    audit_name = _kept_audit_table(connection, where, name) if spec is None else spec.audit_table
    audit = None if audit_name is None else _reflect(connection, metadata, audit_name)
    if audit is None:
        if source is None:
            raise AuditError(
                f"no table {name!r} in the database (schema {where}), nor an audit table "
                "recording it"
            )
        raise AuditError(
            f"table {name!r} is not audited in the database (no audit function installed, "
            "and no audit table recording it)"
        )
    if spec is None:
        spec = _spec_of_kept_table(audit, source, where, name)
    if source is None:
        source = _rebuilt_source(metadata, name, spec, audit)
    source.info = {**source.info, SPEC_KEY: spec, AUDIT_TABLE_KEY: audit}
    return source


def _reflect(connection: Connection, metadata: MetaData, name: str) -> Table | None:
    try:
        return Table(name, metadata, autoload_with=connection, resolve_fks=False)
    except NoSuchTableError:
        return None


def _installed_spec(connection: Connection, schema: str, name: str) -> AuditSpec | None:
    for item in installed_audits(connection, [schema]):
        if item.spec is not None and item.schema == schema and item.spec.table == name:
            return item.spec
    return None


def _kept_audit_table(connection: Connection, schema: str, name: str) -> str | None:
    """The audit table whose comment names ``name`` as its source (as declared: with or
    without the schema)."""
    wanted = {
        f"Audit history of {source}{AUDIT_TABLE_COMMENT_SUFFIX}"
        for source in (name, f"{schema}.{name}")
    }
    comments = inspect(connection).get_multi_table_comment(schema=schema)
    found = sorted(table for (_, table), comment in comments.items() if comment["text"] in wanted)
    return found[0] if found else None


def _spec_of_kept_table(audit: Table, source: Table | None, schema: str, name: str) -> AuditSpec:
    source_columns = set() if source is None else set(source.c.keys())
    context: list[Column[object]] = []
    mirrored: list[str] = []
    for column in audit.c:
        if column.name in FIXED_AUDIT_COLUMNS:
            continue
        if column.name.startswith(_CONTEXT_PREFIX) and column.name not in source_columns:
            context.append(column)
        else:
            mirrored.append(column.name)
    names = {column.name for column in context}
    captures = tuple(c for c in CAPTURES if capture_column(c) in names)
    settings = tuple(
        SettingSpec(
            name=column.name[len(_CONTEXT_PREFIX) :],
            column=column.name,
            sql_type=str(column.type),
        )
        for column in context
        if column.name not in {capture_column(c) for c in captures}
    )
    return AuditSpec(
        schema=schema,
        table=name,
        audit_table=audit.name,
        function="",
        triggers=(),
        columns=tuple(mirrored),
        settings=settings,
        key_columns=_key(audit, source, mirrored),
        captures=captures,
    )


def _key(audit: Table, source: Table | None, mirrored: list[str]) -> tuple[str, ...]:
    """The source's primary key, else the history index's columns before ``audit_id``; empty
    when neither is known (the history API then says the table has no primary key)."""
    if source is not None and source.primary_key.columns:
        key = tuple(column.name for column in source.primary_key.columns)
        if all(column in mirrored for column in key):
            return key
    for index in sorted(audit.indexes, key=lambda index: str(index.name)):
        columns = [column.name for column in index.columns]
        if len(columns) > 1 and columns[-1] == AUDIT_ID and set(columns[:-1]) <= set(mirrored):
            return tuple(columns[:-1])
    return ()


def _rebuilt_source(metadata: MetaData, name: str, spec: AuditSpec, audit: Table) -> Table:
    """The dropped source table, as far as its audit table recorded it."""
    return Table(
        name,
        metadata,
        *(
            Column(column, audit.c[column].type, primary_key=column in spec.key_columns)
            for column in spec.columns
        ),
    )
