"""What design 1's tests share: CDC tables of ``(id, value)`` under a slot name of their own (a
partitioned ``measure``; a plain ``other`` shows whether the whole trail goes on), and readers of
the target's replica and trail."""

from __future__ import annotations

import uuid

import sqlalchemy as sa


def cdc_metadata() -> sa.MetaData:
    """A MetaData with a slot of its own: tests sharing a server never share a slot."""
    return sa.MetaData(naming_convention={"audit.slot": f"cdc_{uuid.uuid4().hex[:12]}"})


def cdc_table(metadata: sa.MetaData, name: str, **options: object) -> sa.Table:
    """``name (id integer key, value integer)`` in CDC mode; ``options`` go to ``sa.Table``."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": "cdc"}},
        **options,
    )


def measure_models(partition_by: str = "RANGE (id)") -> tuple[sa.MetaData, sa.Table]:
    """``measure`` partitioned by ``partition_by`` (its partitions are the test's to make)."""
    metadata = cdc_metadata()
    return metadata, cdc_table(metadata, "measure", postgresql_partition_by=partition_by)


def rows(engine: sa.Engine, query: str) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(query)]


def trail(engine: sa.Engine, table: str = "measure") -> list[tuple[object, ...]]:
    """``(operation, id, value)`` of ``table``'s audit rows, in ``audit_id`` order."""
    return rows(engine, f"SELECT audit_operation, id, value FROM {table}_audit ORDER BY audit_id")


def run_ddl(engine: sa.Engine, *statements: str) -> None:
    """``statements`` in one transaction."""
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


def column_type(spec: str) -> sa.types.UserDefinedType[object]:
    """A column type SQLAlchemy does not know, by its SQL text (``point``, ``app.num``)."""

    class Named(sa.types.UserDefinedType[object]):
        cache_ok = True

        def get_col_spec(self, **kw: object) -> str:
            return spec

    return Named()
