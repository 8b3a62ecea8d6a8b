"""On psycopg2 the history API's queries run as server-side prepared statements: one PREPARE
per DBAPI connection and query shape, then EXECUTE with the values as bound parameters.

The results must be those of the same query unprepared, also after ``maintain`` made and
dropped partitions and after DDL on the audit table; ``DISCARD ALL``, a ``DEALLOCATE`` behind
the library's back, an aborted transaction and a lost connection must not break the next call;
``audit_prepare=False`` prepares nothing; psycopg 3 (which prepares by itself) is left alone.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from partition_models import accounts
from sqlalchemy_postgresql_audit import as_of, audit_context, changes, history, maintain
from sqlalchemy_postgresql_audit.context import prepared
from sqlalchemy_postgresql_audit.context.prepared import NAME_PREFIX

UTC = datetime.timezone.utc
HELD = sa.text(
    "SELECT name, prepare_time, generic_plans + custom_plans AS runs "
    "FROM pg_prepared_statements WHERE from_sql ORDER BY name"
)


@pytest.fixture
def one_connection(database_url: URL) -> Iterator[sa.Engine]:
    """psycopg2, one DBAPI connection for the whole test: what it prepared stays prepared."""
    engine = sa.create_engine(
        database_url.set(drivername="postgresql+psycopg2"), pool_size=1, max_overflow=0
    )
    yield engine
    engine.dispose()


@pytest.fixture
def unprepared(database_url: URL) -> Iterator[sa.Engine]:
    engine = sa.create_engine(
        database_url.set(drivername="postgresql+psycopg2"),
        execution_options={"audit_prepare": False},
    )
    yield engine
    engine.dispose()


def held(connection: sa.Connection) -> list[Any]:
    return [row for row in connection.execute(HELD).all() if row.name.startswith(NAME_PREFIX)]


def queries(table: sa.Table, at: datetime.datetime) -> list[sa.Select[Any]]:
    return [
        history(table, 1),
        history(table, 2),
        as_of(table, at, 1),
        as_of(table, at),
        changes(table, 1),
        changes(table, 1, since=at - datetime.timedelta(weeks=1), until=at),
    ]


def results(engine: sa.Engine, table: sa.Table, at: datetime.datetime) -> list[list[Any]]:
    with engine.connect() as connection:
        return [list(connection.execute(query).all()) for query in queries(table, at)]


def write(engine: sa.Engine, *statements: str) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement))


def test_history_is_prepared_once_per_connection_and_then_executed(
    one_connection: sa.Engine, unprepared: sa.Engine
) -> None:
    table = accounts()
    table.metadata.create_all(one_connection)
    write(one_connection, "INSERT INTO accounts VALUES (1, 10), (2, 20)")
    write(one_connection, "UPDATE accounts SET balance = balance + 1")
    with one_connection.connect() as connection:
        for _ in range(3):
            rows = connection.execute(history(table, 1)).all()
            assert [r.audit_operation for r in rows] == ["I", "U"]
        (statement,) = held(connection)
        assert statement.runs == 3
        assert [r.balance for r in connection.execute(history(table, 2))] == [20, 21]
        assert [s.runs for s in held(connection)] == [4]  # same shape, other key: reused
    with unprepared.connect() as connection:
        assert connection.execute(history(table, 1)).all() == rows
        assert held(connection) == []


def write_at(engine: sa.Engine, moment: datetime.datetime, statement: str) -> None:
    """Run ``statement``, then move its audit row to ``moment`` (as ``maintain``'s tests do:
    past the append-only guard, as a replica's apply would)."""
    with engine.begin() as connection:
        connection.execute(sa.text(statement))
        connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(
            sa.text(
                "UPDATE accounts_audit SET audit_operation_timestamp = :moment "
                "WHERE audit_id = (SELECT max(audit_id) FROM accounts_audit)"
            ),
            {"moment": moment},
        )


def test_results_equal_unprepared_across_maintain_retention_and_ddl(
    one_connection: sa.Engine, unprepared: sa.Engine
) -> None:
    """PostgreSQL plans a prepared statement again when the partitions of its table change: the
    statements prepared before stay (same prepare_time) and see the changed partitions."""
    table = accounts(retention=datetime.timedelta(weeks=2))
    table.metadata.create_all(one_connection)
    maintain(unprepared, table)
    now = datetime.datetime.now(UTC)
    old = now - datetime.timedelta(weeks=4)
    write_at(one_connection, old, "INSERT INTO accounts VALUES (1, 10)")
    write_at(one_connection, old, "INSERT INTO accounts VALUES (2, 20)")
    write(one_connection, "UPDATE accounts SET balance = 11 WHERE id = 1")
    at = now + datetime.timedelta(minutes=1)
    first = results(one_connection, table, at)
    assert first == results(unprepared, table, at)
    with one_connection.connect() as connection:
        before = {s.name: s.prepare_time for s in held(connection)}
    assert len(before) == 5  # history (both keys), as_of by key and of all, changes twice

    (retained,) = maintain(unprepared, table)  # drains DEFAULT into an old week, then drops it
    assert retained.drained == 2 and retained.dropped
    after_retention = results(one_connection, table, at)
    assert after_retention == results(unprepared, table, at)
    assert [r.audit_operation for r in after_retention[0]] == ["X", "U"]
    assert [r.audit_operation for r in after_retention[1]] == ["X"]

    later = now + datetime.timedelta(weeks=3)
    (ahead,) = maintain(unprepared, table, at=later)
    assert ahead.created
    write(
        one_connection, "DELETE FROM accounts WHERE id = 1", "INSERT INTO accounts VALUES (3, 30)"
    )
    at = datetime.datetime.now(UTC) + datetime.timedelta(minutes=1)
    after_maintain = results(one_connection, table, at)
    assert after_maintain == results(unprepared, table, at)
    assert after_maintain != after_retention

    write(one_connection, "ALTER TABLE accounts_audit ADD COLUMN note text")
    assert results(one_connection, table, at) == results(unprepared, table, at)
    with one_connection.connect() as connection:
        after = {s.name: s.prepare_time for s in held(connection)}
    assert after == before  # prepared once, planned again by the server as the tables changed


def test_audit_prepare_false_prepares_nothing(
    one_connection: sa.Engine, unprepared: sa.Engine
) -> None:
    table = accounts()
    table.metadata.create_all(one_connection)
    write(one_connection, "INSERT INTO accounts VALUES (1, 10)")
    at = datetime.datetime.now(UTC) + datetime.timedelta(minutes=1)
    results(unprepared, table, at)
    with unprepared.connect() as connection:
        assert held(connection) == []
    with one_connection.connect().execution_options(audit_prepare=False) as connection:
        for query in queries(table, at):
            connection.execute(query).all()
        connection.execute(history(table, 1).execution_options(audit_prepare=False)).all()
        assert held(connection) == []


def test_discard_and_deallocate_do_not_break_the_next_call(one_connection: sa.Engine) -> None:
    table = accounts()
    table.metadata.create_all(one_connection)
    write(one_connection, "INSERT INTO accounts VALUES (1, 10)")
    autocommit = one_connection.execution_options(isolation_level="AUTOCOMMIT")
    with autocommit.connect() as connection:
        expected = connection.execute(history(table, 1)).all()
        connection.exec_driver_sql("DISCARD ALL")
        assert held(connection) == []
        assert connection.execute(history(table, 1)).all() == expected
        assert len(held(connection)) == 1
    with one_connection.connect() as connection:
        connection.execute(sa.text("DEALLOCATE ALL"))
        assert connection.execute(history(table, 1)).all() == expected
        connection.rollback()
        # Behind the library's back: the one call that finds its statement gone fails ...
        raw = connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute("DEALLOCATE ALL")
        cursor.close()
        with pytest.raises(sa.exc.OperationalError, match="does not exist"):
            connection.execute(history(table, 1))
        connection.rollback()
        # ... and the next one prepares it again.
        assert connection.execute(history(table, 1)).all() == expected
        assert len(held(connection)) == 1


def test_a_result_column_retyped_fails_one_call_then_prepares_again(
    one_connection: sa.Engine,
) -> None:
    """The one schema change PostgreSQL will not plan a prepared statement again for: a result
    column of another type.  That call fails; the failed statement is deallocated, and the
    next call prepares it anew."""
    table = accounts()
    table.metadata.create_all(one_connection)
    write(one_connection, "INSERT INTO accounts VALUES (1, 10)")
    with one_connection.connect() as connection:
        connection.execute(history(table, 1)).all()
        (before,) = held(connection)
        connection.commit()
        connection.execute(sa.text("ALTER TABLE accounts_audit ALTER COLUMN balance TYPE bigint"))
        connection.commit()
        with pytest.raises(sa.exc.NotSupportedError, match="must not change result type"):
            connection.execute(history(table, 1))
        connection.rollback()
        assert [r.balance for r in connection.execute(history(table, 1))] == [10]
        (after,) = held(connection)
    assert after.name == before.name and after.prepare_time > before.prepare_time


def test_an_aborted_transaction_fails_with_its_own_error(one_connection: sa.Engine) -> None:
    table = accounts()
    table.metadata.create_all(one_connection)
    write(one_connection, "INSERT INTO accounts VALUES (1, 10)")
    with one_connection.connect() as connection:
        with pytest.raises(sa.exc.DataError):
            connection.execute(sa.text("SELECT 1 / 0"))
        with pytest.raises(sa.exc.InternalError, match="current transaction is aborted"):
            connection.execute(history(table, 1))
        connection.rollback()
        assert held(connection) == []  # nothing was sent in front of it
        assert [r.balance for r in connection.execute(history(table, 1))] == [10]
        assert len(held(connection)) == 1


def test_a_lost_connection_is_replaced_and_prepares_again(
    one_connection: sa.Engine, unprepared: sa.Engine
) -> None:
    table = accounts()
    table.metadata.create_all(one_connection)
    write(one_connection, "INSERT INTO accounts VALUES (1, 10)")
    with one_connection.connect() as connection:
        expected = connection.execute(history(table, 1)).all()
        pid = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    with unprepared.connect() as other:
        other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with one_connection.connect() as connection, pytest.raises(sa.exc.OperationalError):
        connection.execute(history(table, 1))
    with one_connection.connect() as connection:
        assert connection.execute(history(table, 1)).all() == expected
        assert len(held(connection)) == 1


def test_percent_signs_repeated_and_expanding_parameters_compose(
    one_connection: sa.Engine, unprepared: sa.Engine
) -> None:
    """A ``%`` operator (``%%`` for psycopg2), a parameter used twice and IN lists of two
    lengths, composed onto the returned select: each text prepared as it is, results as
    unprepared."""
    table = accounts()
    table.metadata.create_all(one_connection)
    write(one_connection, "INSERT INTO accounts VALUES (1, 10)")
    for balance in range(11, 16):
        write(one_connection, f"UPDATE accounts SET balance = {balance}")
    both = sa.bindparam("both", type_=sa.Integer)

    def composed(operations: list[str]) -> sa.Select[Any]:
        query = history(table, 1)
        balance = query.selected_columns.balance
        return query.where(
            balance.op("%")(2) == 0,
            sa.or_(balance > both, balance == both),
            query.selected_columns.audit_operation.in_(operations),
        ).params(both=12)

    for operations in (["U"], ["I", "U"]):
        with one_connection.connect() as connection:
            got = connection.execute(composed(operations)).all()
        with unprepared.connect() as connection:
            assert got == connection.execute(composed(operations)).all()
        assert [r.balance for r in got] == [12, 14]
    with one_connection.connect() as connection:
        assert len(held(connection)) == 2


class Elsewhere(sa.types.UserDefinedType[str]):
    """A type of another database's: this one has none of that name."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "no_such_type_here"


def test_a_select_the_server_cannot_prepare_runs_unprepared(
    one_connection: sa.Engine, unprepared: sa.Engine
) -> None:
    """A parameter whose SQLAlchemy type names a type this server does not have: PREPARE
    fails in its savepoint, the transaction goes on, and the select runs as it would have
    (psycopg2 quotes the value as a string, which the server takes as text)."""
    table = accounts()
    table.metadata.create_all(one_connection)
    write(one_connection, "INSERT INTO accounts VALUES (1, 10)")
    query = history(table, 1).add_columns(sa.literal("x", Elsewhere()).label("label"))
    with unprepared.connect() as connection:
        expected = connection.execute(query).all()
    with one_connection.begin() as connection:
        for _ in range(2):
            assert connection.execute(query).all() == expected
        assert held(connection) == []
        assert [r.balance for r in connection.execute(history(table, 1))] == [10]
        assert len(held(connection)) == 1


def test_least_recently_used_is_deallocated_beyond_the_limit(
    one_connection: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepared, "MAX_PREPARED", 2)
    table = accounts()
    table.metadata.create_all(one_connection)
    write(one_connection, "INSERT INTO accounts VALUES (1, 10)")
    at = datetime.datetime.now(UTC) + datetime.timedelta(minutes=1)
    with one_connection.connect() as connection:
        for query in queries(table, at):
            connection.execute(query).all()
        assert len(held(connection)) == 2
        assert [r.balance for r in connection.execute(history(table, 1))] == [10]


def test_settings_of_audit_context_ride_in_front_of_the_execute(
    one_connection: sa.Engine,
) -> None:
    table = accounts(session_settings=[sa.Column("username", sa.Text)])
    table.metadata.create_all(one_connection)
    write(one_connection, "INSERT INTO accounts VALUES (1, 10)")
    with audit_context(username="alice"), one_connection.begin() as connection:
        for _ in range(2):
            assert [r.balance for r in connection.execute(history(table, 1))] == [10]
        assert (
            connection.execute(sa.text("SELECT current_setting('audit.username')")).scalar()
            == "alice"
        )
        assert len(held(connection)) == 1


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = {"info": {"audit.options": {"enabled": True, "partition": "week"}}}
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    balance: Mapped[int]


def test_orm_session_history_is_prepared(one_connection: sa.Engine) -> None:
    Base.metadata.create_all(one_connection)
    with Session(one_connection) as session:
        session.add(Account(id=1, balance=10))
        session.commit()
        for _ in range(2):
            versions = session.scalars(history(Account, 1)).all()
            assert [v.row.balance for v in versions if v.row is not None] == [10]
        assert len(held(session.connection())) == 1


def test_psycopg_3_is_left_to_prepare_by_itself(database_url: URL) -> None:
    engine = sa.create_engine(database_url.set(drivername="postgresql+psycopg"))
    table = accounts()
    table.metadata.create_all(engine)
    write(engine, "INSERT INTO accounts VALUES (1, 10)")
    with engine.connect() as connection:
        for _ in range(7):
            assert [r.balance for r in connection.execute(history(table, 1))] == [10]
        assert held(connection) == []
    engine.dispose()
