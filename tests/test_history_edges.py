"""The history API at its edges: concurrent writers, key changes, identity keys, column names
like the queries' own labels, and who made each change."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session

import sqlalchemy_postgresql_audit as audit
from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, AuditError
from sqlalchemy_postgresql_audit.cli.trail import describe
from sqlalchemy_postgresql_audit.cli.trail import versions as shown_versions
from test_history import MODES, clock, models


def tracks_commit_times(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        return connection.execute(sa.text("SHOW track_commit_timestamp")).scalar_one() == "on"


def status_at(engine: sa.Engine, table: sa.Table, at: datetime.datetime, pk: object) -> Any:
    with engine.connect() as connection:
        row = connection.execute(audit.as_of(table, at, pk)).first()
    return None if row is None else row.status


@pytest.mark.parametrize("mode", MODES)
def test_as_of_between_a_commit_and_an_older_transactions_later_write(
    engine: sa.Engine, mode: str
) -> None:
    """A starts first, B changes the row and commits, then A changes it: between B's commit and
    A's write the row was B's, whichever transaction started first."""
    Base, Order = models(mode)
    Base.metadata.create_all(engine)
    table = Order.__table__
    with engine.begin() as connection:
        connection.execute(sa.insert(Order).values(id=1, status="start"))
    with engine.connect() as a, engine.connect() as b:
        a.execute(sa.select(sa.func.now()))  # A's transaction has started
        with b.begin():
            b.execute(sa.update(Order).where(Order.id == 1).values(status="by B"))
        between = clock(engine)
        a.execute(sa.update(Order).where(Order.id == 1).values(status="by A"))
        a.commit()
    assert status_at(engine, table, between, 1) == "by B"
    assert status_at(engine, table, clock(engine), 1) == "by A"
    with engine.begin() as connection:
        assert audit.restore(connection, Order, 1, between) == "updated"
        assert connection.execute(sa.select(Order.status)).scalar_one() == "by B"


def _in_flight(engine: sa.Engine, table: sa.Table) -> list[datetime.datetime]:
    """Row 1 is inserted as "old" (first moment), then changed to "new" by a transaction that
    writes before the second moment and commits before the third."""
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, status="old"))
    inserted = clock(engine)
    with engine.begin() as connection:
        connection.execute(table.update().values(status="new"))
        written = clock(engine)
    return [inserted, written, clock(engine)]


#: The capture that makes a change count from its commit (with ``track_commit_timestamp``).
EXACT = {"capture": ["transaction_id"]}
#: A table that does not record transaction ids counts written times on every server.
WRITTEN = {"capture": []}


def require_commit_times(engine: sa.Engine) -> None:
    if not tracks_commit_times(engine):
        pytest.skip("the server does not track commit timestamps (track_commit_timestamp)")


def test_where_commit_times_are_tracked_a_change_counts_from_its_commit(engine: sa.Engine) -> None:
    require_commit_times(engine)
    Base, Order = models(**EXACT)
    Base.metadata.create_all(engine)
    table = Order.__table__
    _, written, committed = _in_flight(engine, table)
    assert status_at(engine, table, written, 1) == "old"  # written, not yet visible
    assert status_at(engine, table, committed, 1) == "new"
    with engine.begin() as connection:
        assert audit.restore(connection, Order, 1, written) == "updated"
        assert connection.execute(sa.select(Order.status)).scalar_one() == "old"


@pytest.mark.parametrize("options", [WRITTEN, EXACT], ids=["without transaction_id", "with it"])
def test_elsewhere_a_change_counts_from_when_it_was_written(
    engine: sa.Engine, options: dict[str, Any]
) -> None:
    """A table that does not capture ``transaction_id`` counts written times even where the
    server tracks commit times: only the recorded 64-bit id names its transaction exactly."""
    if options == EXACT and tracks_commit_times(engine):
        pytest.skip("the server tracks commit timestamps: as_of counts commits")
    Base, Order = models(**options)
    Base.metadata.create_all(engine)
    table = Order.__table__
    inserted, written, _ = _in_flight(engine, table)
    assert status_at(engine, table, written, 1) == "new"  # the documented written-time meaning
    assert status_at(engine, table, inserted, 1) == "old"


def test_a_transaction_id_from_before_the_last_wraparound_counts_its_written_time(
    engine: sa.Engine,
) -> None:
    """A version whose recorded id is 2**32 transactions old has the same low 32 bits (the
    ``xid`` commit times are kept under) as a recent transaction: its commit time is not the
    version's, so it counts from when it was written."""
    require_commit_times(engine)
    Base, Order = models(**EXACT)
    Base.metadata.create_all(engine)
    table, trail = Order.__table__, Order.__table__.info[AUDIT_TABLE_KEY]
    with engine.begin() as connection:
        connection.execute(sa.insert(Order).values(id=1, status="old"))
    between = clock(engine)
    with engine.begin() as connection:  # as if written one wraparound before this transaction
        connection.execute(
            trail.update().values(
                audit_transaction_id=sa.text("pg_current_xact_id()::text::int8 - 4294967296")
            )
        )
    with engine.connect() as connection:
        recent = connection.execute(
            sa.select(
                sa.func.pg_xact_commit_timestamp(
                    sa.text("(audit_transaction_id + 4294967296)::text::xid8::xid")
                )
            ).select_from(trail)
        ).scalar_one()
    assert recent is not None and recent > between  # what the low 32 bits name: a recent commit
    assert status_at(engine, table, between, 1) == "old"


def test_the_readers_own_uncommitted_changes_do_not_count(engine: sa.Engine) -> None:
    """Where commits count, a change counts once committed: not in the transaction that made
    it, at any moment; other transactions do not see it at all until then."""
    require_commit_times(engine)
    Base, Order = models(**EXACT)
    Base.metadata.create_all(engine)
    table = Order.__table__
    with engine.begin() as connection:
        connection.execute(sa.insert(Order).values(id=1, status="old"))
    with engine.connect() as writer:
        writer.execute(sa.update(Order).values(status="mine"))
        at = writer.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
        assert writer.execute(audit.as_of(table, at, 1)).one().status == "old"
        assert status_at(engine, table, at, 1) == "old"
        writer.commit()
    assert status_at(engine, table, at, 1) == "old"
    assert status_at(engine, table, clock(engine), 1) == "mine"


def test_one_rows_state_at_a_commit_is_read_from_the_history_index(engine: sa.Engine) -> None:
    """The commit-time test is a filter on the key's index range, newest first: the query
    stops at the first version that counts, whatever the size of the trail."""
    Base, Order = models(**EXACT)
    Base.metadata.create_all(engine)
    table, trail = Order.__table__, Order.__table__.info[AUDIT_TABLE_KEY]
    with engine.begin() as connection:
        connection.execute(
            sa.insert(Order).from_select(
                ["id", "status"],
                sa.select(sa.column("g"), sa.literal("a")).select_from(
                    sa.func.generate_series(1, 5000).alias("g")
                ),
            )
        )
        connection.execute(sa.update(Order).values(status="b"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f"ANALYZE {trail.name}"))
        compiled = audit.as_of(table, clock(engine), 5).compile(
            engine, compile_kwargs={"literal_binds": True}
        )
        plan = "\n".join(connection.execute(sa.text(f"EXPLAIN {compiled}")).scalars())
    index = next(iter(trail.indexes)).name
    assert f"Index Scan Backward using {index}" in plan and "Index Cond: ((id = 5)" in plan
    assert "Seq Scan" not in plan and "pg_xact_commit_timestamp" in plan


@pytest.mark.parametrize("mode", MODES)
def test_restore_an_exact_version(engine: sa.Engine, mode: str) -> None:
    Base, Order = models(mode)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(Order), [{"id": 1, "status": "a"}, {"id": 2, "status": "z"}])
    for status in ("b", "c"):
        with engine.begin() as connection:
            connection.execute(sa.update(Order).where(Order.id == 1).values(status=status))
    with engine.begin() as connection:
        connection.execute(sa.delete(Order).where(Order.id == 1))
    with engine.connect() as connection:
        *kept, gone = connection.execute(audit.history(Order.__table__, 1)).all()
        ids = {r.status: r.audit_id for r in kept}
        deleted = gone.audit_id
        other = connection.execute(audit.history(Order.__table__, 2)).one().audit_id

    def restore(version: int) -> tuple[str, Any]:
        with engine.begin() as connection:
            outcome = audit.restore(connection, Order, 1, version=version)
            status = connection.execute(sa.select(Order.status).where(Order.id == 1)).scalar()
        return outcome, status

    assert restore(ids["b"]) == ("inserted", "b")
    assert restore(ids["a"]) == ("updated", "a")
    assert restore(ids["a"]) == ("unchanged", "a")
    assert restore(deleted) == ("deleted", None)  # a DELETE version leaves the row absent
    assert restore(ids["c"]) == ("inserted", "c")
    with engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE orders"))
    with engine.connect() as connection:
        marker = connection.execute(audit.history(Order.__table__, 1)).all()[-1]
    assert (marker.audit_operation, marker.id) == ("T", None)  # the TRUNCATE's marker row
    assert restore(ids["a"]) == ("inserted", "a")
    assert restore(marker.audit_id) == ("deleted", None)
    with engine.begin() as connection:
        with pytest.raises(AuditError, match=rf"'orders': {other} is not a version of key"):
            audit.restore(connection, Order, 1, version=other)
        with pytest.raises(TypeError, match=r"'orders'.*exactly one of 'at'.*or 'version'"):
            audit.restore(connection, Order, 1)
        with pytest.raises(TypeError, match="exactly one of"):
            audit.restore(connection, Order, 1, clock(engine), version=ids["a"])
        with pytest.raises(TypeError, match="'version' must be an audit_id"):
            audit.restore(connection, Order, 1, version=str(ids["a"]))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", MODES)
def test_a_key_change_ends_the_old_keys_life(engine: sa.Engine, mode: str) -> None:
    Base, Order = models(mode)
    Base.metadata.create_all(engine)
    table = Order.__table__
    with engine.begin() as connection:
        connection.execute(sa.insert(Order).values(id=1, status="a"))
    with engine.begin() as connection:
        connection.execute(sa.update(Order).values(id=2, status="b"))
    now = clock(engine)
    with engine.connect() as connection:
        old = connection.execute(audit.history(table, 1)).all()
        new = connection.execute(audit.history(table, 2)).all()
        assert [r.id for r in connection.execute(audit.as_of(table, now))] == [2]
        assert connection.execute(audit.as_of(table, now, 1)).all() == []
        moved = [
            (c.audit_operation, c.column, c.before, c.after)
            for c in connection.execute(audit.changes(table, 1))
        ]
    assert [(r.audit_operation, r.status) for r in old] == [("I", "a"), ("K", "a")]
    assert [(r.audit_operation, r.status) for r in new] == [("U", "b")]
    assert [m for m in moved if m[0] == "K"] == [
        ("K", "id", 1, None),
        ("K", "status", "a", None),
        ("K", "total", 0, None),
    ]
    with Session(engine) as session:
        typed = session.scalars(audit.history(Order, 1)).all()
        assert typed[-1].operation == "K" and typed[-1].changed["id"] == (1, None)
    with engine.connect() as connection:
        shown = shown_versions(connection, table, {"id": 1})  # what the command line prints
    assert [v["operation"] for v in shown] == ["INSERT", "KEY CHANGE"]
    assert describe(shown[1]) == "key changed: the row moved away to another key"
    with engine.begin() as connection:
        assert audit.restore(connection, Order, 1, now) == "unchanged"  # no ghost row 1
        assert audit.restore(connection, Order, 1, version=old[0].audit_id) == "inserted"
        rows = connection.execute(sa.select(Order.id, Order.status).order_by(Order.id)).all()
    assert [tuple(r) for r in rows] == [(1, "a"), (2, "b")]


@pytest.mark.parametrize("mode", MODES)
def test_keys_moved_onto_each_other_in_one_statement(engine: sa.Engine, mode: str) -> None:
    """2 -> 1 and 3 -> 2 in one UPDATE: key 2 is both left and taken."""
    Base, Order = models(mode)
    Base.metadata.create_all(engine)
    table = Order.__table__
    with engine.begin() as connection:
        connection.execute(sa.insert(Order), [{"id": 2, "status": "two"}])
        connection.execute(sa.insert(Order), [{"id": 3, "status": "three"}])
    before = clock(engine)
    with engine.begin() as connection:
        connection.execute(sa.update(Order).values(id=Order.id - 1))
        expected = connection.execute(sa.select(Order.id, Order.status).order_by(Order.id)).all()
    assert [tuple(r) for r in expected] == [(1, "two"), (2, "three")]
    with engine.connect() as connection:
        now = [tuple(r)[:2] for r in connection.execute(audit.as_of(table, clock(engine)))]
        then = [tuple(r)[:2] for r in connection.execute(audit.as_of(table, before))]
        assert connection.execute(audit.as_of(table, clock(engine), 3)).all() == []
    assert now == [(1, "two"), (2, "three")]
    assert then == [(2, "two"), (3, "three")]


@pytest.mark.parametrize("mode", MODES)
def test_restore_keeps_a_generated_always_identity_key(engine: sa.Engine, mode: str) -> None:
    tickets = sa.Table(
        "tickets",
        sa.MetaData(),
        sa.Column("id", sa.Integer, sa.Identity(always=True), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        info={"audit.options": {"enabled": True, "mode": mode}},
    )
    tickets.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(tickets.insert(), [{"title": "first"}, {"title": "second"}])
    with engine.begin() as connection:
        connection.execute(tickets.update().where(tickets.c.id == 1).values(title="first, edited"))
    edited = clock(engine)
    with engine.begin() as connection:
        connection.execute(tickets.delete().where(tickets.c.id == 1))
    with engine.connect() as connection:
        first = connection.execute(audit.history(tickets, 1)).first()
    assert first is not None
    with engine.begin() as connection:
        assert audit.restore(connection, tickets, 1, edited) == "inserted"
        back = connection.execute(sa.select(tickets).order_by(tickets.c.id)).all()
        assert [tuple(r) for r in back] == [(1, "first, edited"), (2, "second")]
        assert audit.restore(connection, tickets, 1, version=first.audit_id) == "updated"
        connection.execute(tickets.insert().values(title="third"))  # the identity goes on
        rows = connection.execute(sa.select(tickets).order_by(tickets.c.id)).all()
    assert [tuple(r) for r in rows] == [(1, "first"), (2, "second"), (3, "third")]


#: Every name the history queries give a computed column, and the ones the next prefix takes.
LABEL_LIKE = (
    "audit_history_marker",
    "audit_history_previous_operation",
    "audit_history_before_0",
    "audit_history_after_0",
    "audit_history_changed_1",
    "audit_history_lag_1",
    "audit_history1_marker",
    "column",
    "before",
    "after",
    "position",
)


@pytest.mark.parametrize("mode", MODES)
def test_source_columns_named_like_internal_labels(engine: sa.Engine, mode: str) -> None:
    table = sa.Table(
        "labels",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        *(sa.Column(name, sa.Text) for name in LABEL_LIKE),
        info={"audit.options": {"enabled": True, "mode": mode}},
    )
    table.metadata.create_all(engine)
    first = {name: f"{name}-1" for name in LABEL_LIKE}
    with engine.begin() as connection:
        connection.execute(table.insert().values(id=1, **first))
    moment = clock(engine)
    with engine.begin() as connection:
        connection.execute(table.update().values(audit_history_marker="changed"))
        connection.execute(table.delete())

    class Base(DeclarativeBase):
        pass

    class Labels(Base):
        __table__ = table

    with engine.connect() as connection:
        history = connection.execute(audit.history(table, 1)).all()
        changes = connection.execute(audit.changes(table, 1)).all()
        state = connection.execute(audit.as_of(table, moment)).mappings().one()
    assert [r.audit_operation for r in history] == ["I", "U", "D"]
    assert history[0].audit_history_marker == "audit_history_marker-1"
    updated = [(c.column, c.before, c.after) for c in changes if c.audit_operation == "U"]
    assert updated == [("audit_history_marker", "audit_history_marker-1", "changed")]
    assert dict(state) == {"id": 1, **first}
    with Session(engine) as session:
        versions = session.scalars(audit.history(Labels, 1)).all()
        assert versions[1].changed == {
            "audit_history_marker": ("audit_history_marker-1", "changed")
        }
        then = session.scalars(audit.as_of(Labels, moment)).one()
        assert then.row is not None and then.row.position == "position-1"
    with engine.begin() as connection:
        assert audit.restore(connection, table, 1, moment) == "inserted"
        assert connection.execute(sa.select(table.c.before)).scalar_one() == "before-1"


def test_changes_name_who_made_each_change(engine: sa.Engine) -> None:
    Base, Order = models()
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        audit.set_session_vars(connection, username="ann")
        connection.execute(sa.insert(Order).values(id=1, status="new"))
        writer = connection.execute(sa.select(sa.func.current_user())).scalar_one()
    with engine.begin() as connection:
        audit.set_session_vars(connection, username="bob")
        connection.execute(sa.update(Order).values(status="paid"))
    with engine.connect() as connection:
        rows = connection.execute(audit.changes(Order, 1)).all()
        columns = list(connection.execute(audit.changes(Order, 1)).keys())
    assert columns == [
        "audit_id",
        "audit_operation",
        "audit_operation_timestamp",
        "audit_current_user",
        "audit_username",
        "column",
        "before",
        "after",
    ]
    assert [(r.audit_username, r.column, r.after) for r in rows] == [
        ("ann", "id", 1),
        ("ann", "status", "new"),
        ("ann", "total", 0),
        ("bob", "status", "paid"),
    ]
    assert {r.audit_current_user for r in rows} == {writer}


def test_keys_given_as_an_instance_a_one_tuple_or_a_wrong_type(
    any_driver_engine: sa.Engine,
) -> None:
    """An instance stands for its row, a 1-tuple for its one value; a value the key column
    cannot compare with is refused when the statement is built, naming table, column and value,
    and the caller's transaction goes on."""
    engine = any_driver_engine
    Base, Order = models()
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        order = Order(id=7, status="new")
        session.add(order)
        session.flush()
        order.status = "paid"
        session.flush()
    moment = clock(engine)
    by_value = [(v.operation, v.row.status) for v in _run(engine, audit.history(Order, 7))]
    assert by_value == [("I", "new"), ("U", "paid")]
    with Session(engine) as session:
        loaded = session.get(Order, 7)
        assert [v.row.status for v in session.scalars(audit.history(Order, loaded))] == [
            "new",
            "paid",
        ]
        by_tuple = session.scalars(audit.history(Order, (7,)))
        assert [v.row.status for v in by_tuple] == ["new", "paid"]
    with engine.connect() as connection:
        table = Order.__table__
        assert len(connection.execute(audit.history(table, loaded)).all()) == 2
        with pytest.raises(AuditError, match=r"'orders': key column 'id' is INTEGER.*'abc'"):
            audit.history(Order, "abc")
        with pytest.raises(AuditError, match=r"'orders': key column 'id' is INTEGER.*'7'"):
            audit.as_of(table, clock(engine), pk="7")
        with pytest.raises(AuditError, match=r"'orders': key column 'id' takes one value"):
            audit.history(table, (7, 8))
        with pytest.raises(AuditError, match=r"'orders'.*Order instance has no row yet"):
            audit.history(Order, Order(id=8, status="new"))
        with pytest.raises(AuditError, match=r"'orders': key column 'id'.*True"):
            audit.restore(connection, Order, True, moment)
        assert connection.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 1


def _run(engine: sa.Engine, statement: Any) -> list[Any]:
    with Session(engine) as session:
        return list(session.scalars(statement))
