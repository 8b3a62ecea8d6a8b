"""What template version 2 runs per trigger call, where the writer pays for it (issue 17).

Speed itself lives in ``bench/breakdown.py``; these tests pin the shape that makes a call cheap,
so that a later change cannot bring the cost back unnoticed.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, SPEC_KEY, AuditSpec
from sqlalchemy_postgresql_audit.render import render


def declare(mode: str) -> sa.Table:
    return sa.Table(
        "lot",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("place", sa.Text),
        info={"audit.options": {"enabled": True, "mode": mode}},
    )


def count_statements_into(connection: sa.Connection, audit: str) -> None:
    """Count every INSERT statement into ``audit``, even one that writes no row."""
    for sql in (
        "CREATE TABLE public.audit_inserts (n int)",
        "CREATE FUNCTION public.count_audit_insert() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN INSERT INTO public.audit_inserts VALUES (1); RETURN NULL; END $$",
        f"CREATE TRIGGER count_inserts BEFORE INSERT ON {audit} FOR EACH STATEMENT "
        "EXECUTE FUNCTION public.count_audit_insert()",
    ):
        connection.exec_driver_sql(sql)


def inserts(connection: sa.Connection) -> int:
    return int(connection.exec_driver_sql("SELECT count(*) FROM public.audit_inserts").scalar_one())


@pytest.mark.parametrize("mode", ["statement", "row"])
def test_an_update_that_moves_no_key_runs_one_insert_into_the_audit_table(
    engine: sa.Engine, mode: str
) -> None:
    """The look for moved keys comes before the ``K`` INSERT: an INSERT that writes nothing
    still opens the audit table and its indexes, as much again as a single-row UPDATE's write."""
    table = declare(mode)
    table.metadata.create_all(engine)
    audit = table.info[AUDIT_TABLE_KEY]
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, place="a"))
        count_statements_into(connection, "public.lot_audit")
        connection.execute(table.update().values(place="b"))
        assert inserts(connection) == 1
        connection.execute(table.update().values(id=2))  # the key moves: K, then U
        assert inserts(connection) == 3
        rows = connection.execute(
            sa.select(audit.c.audit_operation, audit.c.id).order_by(audit.c.audit_id)
        ).all()
    assert [tuple(r) for r in rows] == [("I", 1), ("U", 1), ("K", 1), ("U", 2)]


def test_row_mode_compares_keys_before_it_looks_the_old_key_up() -> None:
    """PL/pgSQL evaluates a condition without a subquery in its fast path; one holding EXISTS
    goes through the executor on every call, even when its first operand is false."""
    spec = declare("row").info[SPEC_KEY]
    assert isinstance(spec, AuditSpec)
    body = render(spec).function_body
    condition = body.split('IF ROW(OLD."id") IS DISTINCT FROM ROW(NEW."id")', 1)[1]
    assert condition.lstrip().startswith("THEN")
