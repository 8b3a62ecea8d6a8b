"""Build what the 0.5.x releases installed, for upgrade tests.

The shape follows the released 0.5.x behaviour: the audit table holds ``audit_operation
VARCHAR(1) NOT NULL``, ``audit_operation_timestamp TIMESTAMP WITHOUT TIME ZONE NOT NULL``, one
``audit_<name>`` column per session setting (keeping the setting column's nullability), then a
nullable copy of every source column; one row-level ``AFTER INSERT OR UPDATE OR DELETE`` trigger
named ``<schema>_<table>_audit`` calls a function of the same name (created unqualified, so in
the first schema of the search path) that reads ``current_setting('audit.<name>', <missing_ok>)``
cast to the setting's type and raises when a required setting is the empty string.  Tables
needed an explicit schema in 0.5.x.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_QUOTE = _DIALECT.identifier_preparer.quote


def legacy_audit_table(source: sa.Table, settings: list[sa.Column[Any]]) -> sa.Table:
    """The 0.5.x audit table of ``source``, in a MetaData of its own."""
    return sa.Table(
        f"{source.name}_audit",
        sa.MetaData(),
        sa.Column("audit_operation", sa.String(1), nullable=False),
        sa.Column("audit_operation_timestamp", sa.DateTime, nullable=False),
        *(sa.Column(f"audit_{s.name}", s.type, nullable=s.nullable) for s in settings),
        *(sa.Column(c.name, c.type, nullable=True) for c in source.columns),
        schema=source.schema,
    )


def legacy_function_sql(source: sa.Table, settings: list[sa.Column[Any]]) -> list[str]:
    """The 0.5.x function and trigger DDL of ``source`` (schema required, as in 0.5.x)."""
    assert source.schema, "0.5.x required an explicit schema"
    name = f"{source.schema}_{source.name}_audit"
    audit_full = f"{_QUOTE(source.schema)}.{_QUOTE(source.name + '_audit')}"
    table_full = f"{_QUOTE(source.schema)}.{_QUOTE(source.name)}"
    columns = [
        "audit_operation",
        "audit_operation_timestamp",
        *(f"audit_{s.name}" for s in settings),
        *(c.name for c in source.columns),
    ]
    setting_values = [
        f"current_setting('audit.{s.name}', {'true' if s.nullable else 'false'})"
        f"::{s.type.compile(dialect=_DIALECT)}"
        for s in settings
    ]
    checks = " ".join(
        f"IF {value}::VARCHAR = '' THEN RAISE EXCEPTION "
        f"'audit.{s.name} session setting must be set to a non null/empty value'; END IF;"
        for s, value in zip(settings, setting_values, strict=True)
        if not s.nullable
    )

    def elements(code: str, row: str) -> str:
        return ", ".join(
            [
                f"'{code}'",
                "now()",
                *setting_values,
                *(f"{row}.{_QUOTE(c.name)}" for c in source.columns),
            ]
        )

    column_list = ", ".join(_QUOTE(c) for c in columns)
    function = (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS TRIGGER AS ${name}$\n"
        f"BEGIN\n    {checks}\n\n"
        f"    IF (TG_OP = 'DELETE') THEN\n"
        f"        INSERT INTO {audit_full} ({column_list}) SELECT {elements('D', 'OLD')};\n"
        f"    ELSIF (TG_OP = 'UPDATE') THEN\n"
        f"        INSERT INTO {audit_full} ({column_list}) SELECT {elements('U', 'NEW')};\n"
        f"    ELSIF (TG_OP = 'INSERT') THEN\n"
        f"        INSERT INTO {audit_full} ({column_list}) SELECT {elements('I', 'NEW')};\n"
        f"    END IF;\n"
        f"    RETURN NULL; -- result is ignored since this is an AFTER trigger\n"
        f"END;\n${name}$ LANGUAGE plpgsql"
    )
    return [
        function,
        f"DROP TRIGGER IF EXISTS {name} ON {table_full}",
        f"CREATE TRIGGER {name}\nAFTER INSERT OR UPDATE OR DELETE ON {table_full}\n"
        f"FOR EACH ROW EXECUTE PROCEDURE {name}()",
    ]


def install_legacy(
    connection: sa.Connection, source: sa.Table, settings: list[sa.Column[Any]]
) -> sa.Table:
    """Create ``source`` (if missing), its 0.5.x audit table, function and trigger."""
    source.create(connection, checkfirst=True)
    audit_table = legacy_audit_table(source, settings)
    audit_table.create(connection)
    for statement in legacy_function_sql(source, settings):
        connection.exec_driver_sql(statement.replace("%", "%%"))
    return audit_table
