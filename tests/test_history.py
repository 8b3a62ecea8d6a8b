"""The history API on a real server: history, changes, as_of, restore, baseline, ORM mapping."""

from __future__ import annotations

import datetime
import decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import sqlalchemy_postgresql_audit as audit
from sqlalchemy_postgresql_audit import AUDIT_TABLE_KEY, AuditError

MODES = ("statement", "row")
UTC = datetime.timezone.utc


def models(
    mode: str = "statement", name: str = "orders", **options: Any
) -> tuple[type[Any], type[Any]]:
    """A fresh declarative base with an audited ``Order`` model; returns (Base, Order)."""

    class Base(DeclarativeBase):
        pass

    class Order(Base):
        __tablename__ = name
        __table_args__ = {
            "info": {
                "audit.options": {
                    "enabled": True,
                    "mode": mode,
                    "session_settings": [sa.Column("username", sa.Text)],
                    "capture": ["transaction_id"],
                    **options,
                }
            }
        }
        id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
        status: Mapped[str]
        total: Mapped[decimal.Decimal] = mapped_column(sa.Numeric(10, 2), default=0)
        note: Mapped[str | None] = mapped_column("Note Text")

    return Base, Order


def lines_table(mode: str = "statement", **options: Any) -> sa.Table:
    return sa.Table(
        "lines",
        sa.MetaData(),
        sa.Column("order_id", sa.Integer, primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.Column("attrs", sa.JSON),
        info={"audit.options": {"enabled": True, "mode": mode, **options}},
    )


def clock(engine: sa.Engine) -> datetime.datetime:
    """A moment between two transactions: after everything committed so far, before the next
    transaction's start."""
    with engine.connect() as connection:
        value: datetime.datetime = connection.execute(
            sa.select(sa.func.clock_timestamp())
        ).scalar_one()
    return value


@pytest.mark.parametrize("mode", MODES)
def test_orm_history_is_typed_versions_in_audit_id_order(
    any_driver_engine: sa.Engine, mode: str
) -> None:
    engine = any_driver_engine
    Base, Order = models(mode)
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        audit.set_session_vars(session, username="ann")
        session.add(Order(id=42, status="new", total=decimal.Decimal("10.00")))
        session.flush()
        for status in ("packed", "paid", "paid", "shipped"):  # many updates, one transaction
            session.execute(sa.update(Order).where(Order.id == 42).values(status=status))
        xid = session.execute(sa.text("SELECT pg_current_xact_id()::text::bigint")).scalar_one()
    with engine.begin() as connection:
        audit.set_session_vars(connection, username="bob")
        connection.execute(sa.update(Order).values(note="fragile", total=12))
        connection.execute(sa.delete(Order))
        connection.execute(sa.insert(Order).values(id=42, status="again", total=1))
        connection.execute(sa.insert(Order).values(id=7, status="other"))

    with Session(engine) as session:
        versions = list(session.scalars(audit.history(Order, 42)))
    assert [v.operation for v in versions] == ["I", "U", "U", "U", "U", "U", "D", "I"]
    assert [v.audit_id for v in versions] == sorted(v.audit_id for v in versions)
    rows = [v.row for v in versions]
    assert all(isinstance(r, Order) for r in rows)
    assert [r.status for r in rows] == [
        "new",
        "packed",
        "paid",
        "paid",
        "shipped",
        "shipped",
        "shipped",
        "again",
    ]
    assert rows[5].total == decimal.Decimal("12.00") and rows[5].note == "fragile"
    assert [v.context["username"] for v in versions] == ["ann"] * 5 + ["bob"] * 3
    assert {v.context["transaction_id"] for v in versions[:5]} == {xid}
    assert versions[0].at.tzinfo is not None and versions[0].current_user
    assert versions[0].changed == {
        "id": (None, 42),
        "status": (None, "new"),
        "total": (None, decimal.Decimal("10.00")),
    }
    assert versions[1].changed == {"status": ("new", "packed")}
    assert versions[3].changed == {}  # paid -> paid: recorded, nothing changed
    assert versions[5].changed == {  # attribute names, not column names ("Note Text")
        "note": (None, "fragile"),
        "total": (decimal.Decimal("10.00"), decimal.Decimal("12.00")),
    }
    assert versions[6].changed == {
        "id": (42, None),
        "status": ("shipped", None),
        "total": (decimal.Decimal("12.00"), None),
        "note": ("fragile", None),
    }
    assert versions[7].changed["status"] == (None, "again")  # re-inserted: no "before"
    # The statement composes and the rows are transient copies, never part of the session.
    with Session(engine) as session:
        last = session.scalars(audit.history(Order, 42).limit(2)).all()
        assert [v.operation for v in last] == ["I", "U"]
        assert last[0].row not in session
        assert session.scalars(audit.history(Order, {"id": 7})).one().row.status == "other"


@pytest.mark.parametrize("mode", MODES)
def test_core_history_and_changes_of_a_composite_key(engine: sa.Engine, mode: str) -> None:
    lines = lines_table(mode)
    lines.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            lines.insert(),
            [
                {"order_id": 1, "line_no": 1, "sku": "a", "qty": 1, "attrs": {"c": "red"}},
                {"order_id": 1, "line_no": 2, "sku": "b", "qty": 1, "attrs": None},
                {"order_id": 2, "line_no": 1, "sku": "a", "qty": 5, "attrs": None},
            ],
        )
        connection.execute(lines.update().values(qty=lines.c.qty + 1))
        connection.execute(
            lines.update().where(lines.c.line_no == 1).values(attrs={"c": "blue"}, sku="a")
        )
        connection.execute(lines.delete().where(lines.c.order_id == 1, lines.c.line_no == 1))
    key = {"order_id": 1, "line_no": 1}
    with engine.connect() as connection:
        rows = connection.execute(audit.history(lines, key)).all()
        changes = connection.execute(audit.changes(lines, key)).all()
        assert connection.execute(audit.history(lines, {"order_id": 9, "line_no": 1})).all() == []
    assert [(r.audit_operation, r.qty, r.attrs) for r in rows] == [
        ("I", 1, {"c": "red"}),
        ("U", 2, {"c": "red"}),
        ("U", 2, {"c": "blue"}),
        ("D", 2, {"c": "blue"}),
    ]
    assert [(c.audit_operation, c.column, c.before, c.after) for c in changes] == [
        ("I", "order_id", None, 1),
        ("I", "line_no", None, 1),
        ("I", "sku", None, "a"),
        ("I", "qty", None, 1),
        ("I", "attrs", None, {"c": "red"}),
        ("U", "qty", 1, 2),
        ("U", "attrs", {"c": "red"}, {"c": "blue"}),  # sku set to its own value: skipped
        ("D", "order_id", 1, None),
        ("D", "line_no", 1, None),
        ("D", "sku", "a", None),
        ("D", "qty", 2, None),
        ("D", "attrs", {"c": "blue"}, None),
    ]
    assert len({c.audit_id for c in changes}) == 4


def test_a_bad_key_or_target_is_named(engine: sa.Engine) -> None:
    lines = lines_table()
    with pytest.raises(AuditError, match=r"'lines' has a composite primary key"):
        audit.history(lines, 1)
    with pytest.raises(AuditError, match=r"'lines'.*exactly \['order_id', 'line_no'\]"):
        audit.as_of(lines, datetime.datetime.now(UTC), {"order_id": 1})
    plain = sa.Table("plain", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    with pytest.raises(AuditError, match="'plain' is not audited"):
        audit.history(plain, 1)
    with pytest.raises(TypeError, match="expected an audited Table or mapped class"):
        audit.changes("orders", 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", MODES)
def test_as_of_one_row_and_the_whole_table(engine: sa.Engine, mode: str) -> None:
    Base, Order = models(mode)
    Base.metadata.create_all(engine)
    table = Order.__table__
    with engine.begin() as connection:
        connection.execute(sa.insert(Order), [{"id": 1, "status": "a"}, {"id": 2, "status": "b"}])
    t1 = clock(engine)
    with engine.begin() as connection:
        connection.execute(sa.update(Order).where(Order.id == 1).values(status="a2"))
        connection.execute(sa.delete(Order).where(Order.id == 2))
        connection.execute(sa.insert(Order).values(id=3, status="c"))
    t2 = clock(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(Order).values(id=2, status="b again"))
        connection.execute(sa.update(Order).where(Order.id == 1).values(status="a3"))
    t3 = clock(engine)

    def state(at: datetime.datetime) -> list[tuple[Any, ...]]:
        with engine.connect() as connection:
            return [tuple(r) for r in connection.execute(audit.as_of(table, at))]

    before = clock(engine) - datetime.timedelta(days=1)
    assert state(before) == []
    assert [(r[0], r[1]) for r in state(t1)] == [(1, "a"), (2, "b")]
    assert [(r[0], r[1]) for r in state(t2)] == [(1, "a2"), (3, "c")]
    assert [(r[0], r[1]) for r in state(t3)] == [(1, "a3"), (2, "b again"), (3, "c")]
    with Session(engine) as session:
        assert [v.row.status for v in session.scalars(audit.as_of(Order, t2))] == ["a2", "c"]
        one = session.scalars(audit.as_of(Order, t2, 1)).one()
        assert (one.operation, one.row.status, one.changed) == ("U", "a2", {})
        assert session.scalars(audit.as_of(Order, t2, 2)).all() == []  # deleted then
        assert session.scalars(audit.as_of(Order, t3, 2)).one().row.status == "b again"


def test_time_zones_naive_and_legacy_timestamps(engine: sa.Engine) -> None:
    Base, Order = models()
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(Order).values(id=1, status="a"))
    at = clock(engine)
    with engine.begin() as connection:
        connection.execute(sa.update(Order).values(status="b"))
    elsewhere = at.astimezone(datetime.timezone(datetime.timedelta(hours=-9, minutes=-30)))
    with engine.connect() as connection:
        connection.execute(sa.text("SET TIME ZONE 'Asia/Kathmandu'"))  # the session's zone
        for moment in (at, elsewhere):  # the same instant in another zone
            assert connection.execute(audit.as_of(Order.__table__, moment, 1)).one().status == "a"
    with pytest.raises(AuditError, match=r"'orders'.*naive datetime"):
        audit.as_of(Order, at.replace(tzinfo=None))

    _, Legacy = models(name="legacy", legacy_timestamp=True)
    with pytest.raises(AuditError, match="must be naive"):
        audit.as_of(Legacy, at)
    Legacy.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL TIME ZONE 'UTC'"))
        connection.execute(sa.insert(Legacy).values(id=1, status="legacy"))
    naive = clock(engine).astimezone(UTC).replace(tzinfo=None)
    with engine.connect() as connection:
        connection.execute(sa.text("SET TIME ZONE 'UTC'"))
        assert connection.execute(audit.as_of(Legacy.__table__, naive)).one().status == "legacy"


@pytest.mark.parametrize("truncate_rows", [False, True])
def test_truncate_empties_the_table_at_its_point(engine: sa.Engine, truncate_rows: bool) -> None:
    Base, Order = models(truncate_rows=truncate_rows)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(Order), [{"id": 1, "status": "a"}, {"id": 2, "status": "b"}])
        connection.execute(sa.delete(Order).where(Order.id == 2))
    t1 = clock(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE orders"))
        connection.execute(sa.insert(Order).values(id=3, status="after"))
    t2 = clock(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(Order).values(id=1, status="back"))
    with engine.connect() as connection:
        assert [r.id for r in connection.execute(audit.as_of(Order.__table__, t1))] == [1]
        assert [r.id for r in connection.execute(audit.as_of(Order.__table__, t2))] == [3]
        assert connection.execute(audit.as_of(Order.__table__, t2, 1)).all() == []
        assert connection.execute(audit.as_of(Order.__table__, clock(engine), 1)).one().status == (
            "back"
        )
        ops = [r.audit_operation for r in connection.execute(audit.history(Order.__table__, 1))]
        # Row 2 was already gone: the TRUNCATE is no part of its history.
        ops_2 = [r.audit_operation for r in connection.execute(audit.history(Order.__table__, 2))]
    assert ops == ["I", "T", "I"]
    assert ops_2 == ["I", "D"]
    with Session(engine) as session:
        versions = session.scalars(audit.history(Order, 1)).all()
    truncated = versions[1]
    assert truncated.operation == "T"
    if truncate_rows:  # the removed row is recorded
        assert truncated.row is not None and truncated.row.status == "a"
    else:  # a marker: no values
        assert truncated.row is None
    assert truncated.changed["status"] == ("a", None)
    assert versions[2].changed["status"] == (None, "back")


@pytest.mark.parametrize("mode", MODES)
def test_restore_updates_reinserts_and_deletes_and_is_audited(engine: sa.Engine, mode: str) -> None:
    Base, Order = models(mode)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(Order).values(id=1, status="a", note="n"))
        connection.execute(sa.insert(Order).values(id=2, status="b"))
    t1 = clock(engine)
    with engine.begin() as connection:
        connection.execute(sa.update(Order).where(Order.id == 1).values(status="a2", note=None))
        connection.execute(sa.delete(Order).where(Order.id == 2))
        connection.execute(sa.insert(Order).values(id=3, status="c"))
    with Session(engine) as session, session.begin():
        audit.set_session_vars(session, username="restorer")
        assert audit.restore(session, Order, 1, t1) == "updated"
        assert audit.restore(session, Order, 2, t1) == "inserted"
        assert audit.restore(session, Order, {"id": 3}, t1) == "deleted"
        assert audit.restore(session, Order, 4, t1) == "unchanged"
        assert audit.restore(session, Order, 1, t1) == "unchanged"  # already restored
    with engine.connect() as connection:
        assert len(connection.execute(audit.history(Order.__table__, 1)).all()) == 3  # I, U, U
        rows = connection.execute(sa.select(Order.__table__).order_by(Order.id)).all()
        assert [(r.id, r.status, r[3]) for r in rows] == [
            (1, "a", "n"),
            (2, "b", None),
        ]
        last = {
            pk: connection.execute(audit.history(Order.__table__, pk)).all()[-1] for pk in (1, 2, 3)
        }
    assert {pk: (r.audit_operation, r.audit_username) for pk, r in last.items()} == {
        1: ("U", "restorer"),
        2: ("I", "restorer"),
        3: ("D", "restorer"),
    }


def test_exclude_columns_and_skip_unchanged(engine: sa.Engine) -> None:
    Base, Order = models(exclude_columns=["Note Text"])
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(Order).values(id=1, status="a", note="secret"))
        connection.execute(sa.update(Order).values(note="still secret"))  # not recorded
        connection.execute(sa.update(Order).values(status="a"))  # no-op: not recorded
        connection.execute(sa.update(Order).values(status="b", note="x"))
    t = clock(engine)
    with Session(engine) as session:
        versions = session.scalars(audit.history(Order, 1)).all()
        assert [v.operation for v in versions] == ["I", "U"]
        assert versions[1].changed == {"status": ("a", "b")}
        assert all("note" not in v.changed and v.row.note is None for v in versions)
        assert session.scalars(audit.as_of(Order, t, 1)).one().row.note is None
    with engine.connect() as connection:
        assert "Note Text" not in list(connection.execute(audit.as_of(Order.__table__, t)).keys())
        assert {c.column for c in connection.execute(audit.changes(Order.__table__, 1))} == {
            "id",
            "status",
            "total",
        }
    with engine.begin() as connection:
        connection.execute(sa.update(Order).values(status="c"))
        assert audit.restore(connection, Order, 1, t) == "updated"  # the note keeps its value
        assert connection.execute(sa.select(Order.status, Order.note)).one() == ("b", "x")


def test_baseline_refuses_to_record_null_for_a_required_setting(engine: sa.Engine) -> None:
    Base, Order = models(session_settings=[sa.Column("username", sa.Text, nullable=False)])
    Base.metadata.create_all(engine)
    audit.uninstall_audit_triggers(Base.metadata, engine)
    with engine.execution_options(audit_runtime_check=False).begin() as connection:
        connection.execute(sa.insert(Order).values(id=1, status="old"))
    audit.install_audit_triggers(Base.metadata, engine)
    audit_table = Order.__table__.info[AUDIT_TABLE_KEY]
    with engine.begin() as connection:
        with pytest.raises(AuditError, match=r"'orders'.*\['username'\] are required"):
            audit.record_baseline(connection, Order)
        assert connection.execute(sa.select(audit_table)).all() == []
        audit.set_session_vars(connection, username="ops")
        assert audit.record_baseline(connection, Order) == 1
    with engine.begin() as connection:  # nothing left to record: nothing to refuse
        assert audit.record_baseline(connection, Order) == 0
        assert connection.execute(sa.select(audit_table.c.audit_username)).scalars().all() == [
            "ops"
        ]


def test_baseline_runs_again_where_the_database_types_differ_from_the_model(
    engine: sa.Engine,
) -> None:
    """The model says String, the database holds text (and float8 for a NUMERIC): the second
    baseline compares the trail with the rows in the audit columns' types, and records nothing
    it already explains."""
    Base, Order = models()
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE orders ALTER COLUMN status TYPE text"))
        connection.execute(sa.text("ALTER TABLE orders ALTER COLUMN total TYPE float8"))
    audit.uninstall_audit_triggers(Base.metadata, engine)
    with engine.execution_options(audit_runtime_check=False).begin() as connection:
        connection.execute(sa.insert(Order), [{"id": 1, "status": "old", "total": 2.5}])
    audit.install_audit_triggers(Base.metadata, engine)
    for expected in (1, 0):
        with engine.begin() as connection:
            assert audit.record_baseline(connection, Order) == expected
    with engine.begin() as connection:
        connection.execute(sa.update(Order).values(status="new"))
        assert audit.record_baseline(connection, Order) == 0


@pytest.mark.parametrize("mode", MODES)
def test_baseline_records_rows_that_existed_before_auditing(engine: sa.Engine, mode: str) -> None:
    Base, Order = models(mode)
    Base.metadata.create_all(engine)
    audit.uninstall_audit_triggers(Base.metadata, engine)
    with engine.execution_options(audit_runtime_check=False).begin() as connection:
        connection.execute(
            sa.insert(Order), [{"id": 1, "status": "old"}, {"id": 2, "status": "old"}]
        )
    audit.install_audit_triggers(Base.metadata, engine)
    before = clock(engine)
    with engine.begin() as connection:
        audit.set_session_vars(connection, username="dba")
        begun = connection.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
        assert audit.record_baseline(connection, Order) == 2
    with engine.begin() as connection:
        assert audit.record_baseline(connection, Order.__table__) == 0  # idempotent
        connection.execute(sa.update(Order).where(Order.id == 1).values(status="new"))
    with Session(engine) as session:
        versions = session.scalars(audit.history(Order, 1)).all()
        assert [(v.operation, v.row.status, v.context["username"]) for v in versions] == [
            ("B", "old", "dba"),
            ("U", "new", None),
        ]
        assert versions[1].changed == {"status": ("old", "new")}
        assert versions[0].at > begun  # stamped when written, not at the transaction's start
        assert session.scalars(audit.as_of(Order, before)).all() == []
        assert [v.operation for v in session.scalars(audit.as_of(Order, clock(engine)))] == [
            "U",
            "B",
        ]
    # Auditing off for a while: the baseline records only the rows the trail does not explain.
    audit.uninstall_audit_triggers(Base.metadata, engine)
    with engine.begin() as connection:
        connection.execute(sa.update(Order).where(Order.id == 2).values(status="drifted"))
        connection.execute(sa.insert(Order).values(id=3, status="unseen"))
        connection.execute(sa.delete(Order).where(Order.id == 1))
    audit.install_audit_triggers(Base.metadata, engine)
    with engine.begin() as connection:
        assert audit.record_baseline(connection, Order) == 2
        baseline = connection.execute(
            sa.select(Order.__table__.info[AUDIT_TABLE_KEY]).where(
                sa.column("audit_operation") == "B"
            )
        ).all()
    assert sorted((r.id, r.status) for r in baseline) == [
        (1, "old"),
        (2, "drifted"),
        (2, "old"),
        (3, "unseen"),
    ]


def test_the_audit_table_maps_with_the_orm(engine: sa.Engine) -> None:
    Base, Order = models()
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(Order).values(id=1, status="a", note="n"))
        connection.execute(sa.update(Order).values(status="b"))
    OrderAudit = audit.audit_model(Order)
    assert audit.audit_model(Order.__table__) is OrderAudit
    with Session(engine) as session:
        records = session.scalars(
            sa.select(OrderAudit).where(OrderAudit.id == 1).order_by(OrderAudit.audit_id)
        ).all()
        assert [(r.audit_operation, r.status, getattr(r, "Note Text")) for r in records] == [
            ("I", "a", "n"),
            ("U", "b", "n"),
        ]
        assert session.get(OrderAudit, records[1].audit_id) is records[1]

    class Recipe(Base):  # the declarative recipe
        __table__ = Order.__table__.info[AUDIT_TABLE_KEY]
        __mapper_args__ = {"primary_key": [__table__.c.audit_id]}

    with Session(engine) as session:
        assert session.scalars(sa.select(Recipe.status).order_by(Recipe.audit_id)).all() == [
            "a",
            "b",
        ]
