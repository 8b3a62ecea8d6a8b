"""Capture filters: ``exclude_columns`` and ``skip_unchanged``, validated and on a real server."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from sqlalchemy_postgresql_audit import (
    AUDIT_TABLE_KEY,
    SPEC_KEY,
    AuditConfigurationError,
    AuditSpec,
    set_session_vars,
)

MODES = ("statement", "row")


def declare(mode: str, *, name: str = "account", **options: Any) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(40), nullable=False),
        sa.Column("balance", sa.Numeric(12, 2)),
        sa.Column("seen_at", sa.DateTime(timezone=True)),
        sa.Column("doc", sa.JSON),  # json has no equality operator
        info={"audit.options": {"enabled": True, "mode": mode, **options}},
    )


def history(connection: sa.Connection, table: sa.Table) -> list[dict[str, Any]]:
    audit_table = table.info[AUDIT_TABLE_KEY]
    rows = connection.execute(sa.select(audit_table).order_by(audit_table.c.audit_id))
    return [dict(row._mapping) for row in rows]


def ops(connection: sa.Connection, table: sa.Table) -> list[tuple[Any, ...]]:
    return [(r["audit_operation"], r["id"], r["owner"]) for r in history(connection, table)]


# --- declaration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "key", "message"),
    [
        ({"exclude_columns": ["nope"]}, "exclude_columns", "'nope', not a column"),
        ({"exclude_columns": "seen_at"}, "exclude_columns", "must be a list"),
        ({"exclude_columns": [1]}, "exclude_columns", "must hold names"),
        ({"exclude_columns": ["seen_at", "seen_at"]}, "exclude_columns", "twice"),
        ({"exclude_columns": ["id"]}, "exclude_columns", "primary key"),
        ({"skip_unchanged": "yes"}, "skip_unchanged", "True or False"),
        (
            {"exclude_columns": ["seen_at"], "skip_unchanged": False},
            "skip_unchanged",
            "cannot be False",
        ),
    ],
)
def test_bad_filter_options_name_table_and_key(
    options: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(AuditConfigurationError, match=message) as caught:
        declare("statement", **options)
    assert caught.value.table == "account"
    assert caught.value.key == key


def test_excluding_every_column_but_the_key_is_allowed_but_not_every_column() -> None:
    table = sa.Table(
        "pairs",
        sa.MetaData(),
        sa.Column("a", sa.Integer),
        sa.Column("b", sa.Integer),
        info={"audit.options": {"enabled": True, "mode": "row", "exclude_columns": ["a"]}},
    )
    assert table.info[SPEC_KEY].columns == ("b",)
    with pytest.raises(AuditConfigurationError, match="every column") as caught:
        sa.Table(
            "pairs",
            sa.MetaData(),
            sa.Column("a", sa.Integer),
            info={"audit.options": {"enabled": True, "mode": "row", "exclude_columns": ["a"]}},
        )
    assert caught.value.key == "exclude_columns"


@pytest.mark.parametrize(
    ("options", "key"),
    [({"skip_unchanged": True}, "skip_unchanged"), ({"exclude_columns": ["a"]}, "exclude_columns")],
)
def test_statement_mode_filters_need_a_primary_key(options: dict[str, Any], key: str) -> None:
    def keyless(mode: str) -> sa.Table:
        return sa.Table(
            "keyless",
            sa.MetaData(),
            sa.Column("a", sa.Integer),
            sa.Column("b", sa.Integer),
            info={"audit.options": {"enabled": True, "mode": mode, **options}},
        )

    with pytest.raises(AuditConfigurationError, match="needs a primary key") as caught:
        keyless("statement")
    assert (caught.value.table, caught.value.key) == ("keyless", key)
    assert keyless("row").info[SPEC_KEY].key_columns == ()  # row mode needs no pairing


def test_spec_records_filters_and_round_trips_through_json() -> None:
    spec = declare("statement", exclude_columns=["seen_at"]).info[SPEC_KEY]
    assert spec.exclude_columns == ("seen_at",)
    assert "seen_at" not in spec.columns
    assert spec.skip_unchanged is True  # implied by exclude_columns
    assert spec.key_columns == ("id",)
    assert AuditSpec.from_json(spec.to_json()) == spec
    plain = declare("row").info[SPEC_KEY]
    assert (plain.exclude_columns, plain.skip_unchanged, plain.key_columns) == ((), False, ("id",))
    # A spec written before the filters existed reads back with their defaults.
    legacy = {
        key: value
        for key, value in json.loads(plain.to_json()).items()
        if key not in ("exclude_columns", "skip_unchanged", "captures", "truncate_rows")
    }
    assert AuditSpec.from_dict(legacy) == plain


def test_excluded_columns_are_not_mirrored_and_appended_columns_still_are() -> None:
    table = declare("statement", exclude_columns=["seen_at", "doc"])
    audit_table = table.info[AUDIT_TABLE_KEY]
    assert "seen_at" not in audit_table.c
    assert "doc" not in audit_table.c
    assert {"id", "owner", "balance"} <= set(audit_table.c.keys())
    table.append_column(sa.Column("extra", sa.Text))
    assert "extra" in audit_table.c
    assert table.info[SPEC_KEY].columns == ("id", "owner", "balance", "extra")


# --- capture ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_exclude_columns_on_a_real_server(any_driver_engine: sa.Engine, mode: str) -> None:
    table = declare(mode, exclude_columns=["seen_at", "doc"])
    table.metadata.create_all(any_driver_engine)
    with any_driver_engine.begin() as connection:
        connection.execute(
            table.insert(),
            [
                {"id": 1, "owner": "ann", "doc": {"a": 1}},
                {"id": 2, "owner": "bob", "doc": {"a": 2}},
            ],
        )
        # Touches only excluded columns: no audit row at all.
        connection.execute(table.update().values(seen_at=sa.func.now(), doc={"b": 1}))
        # Touches a recorded column of one row (and excluded ones of both).
        connection.execute(
            table.update().values(
                seen_at=sa.func.now(),
                balance=sa.case((table.c.id == 2, 5), else_=table.c.balance),
            )
        )
        connection.execute(table.delete().where(table.c.id == 1))
    with any_driver_engine.connect() as connection:
        rows = history(connection, table)
        assert [(r["audit_operation"], r["id"], r["owner"], r["balance"]) for r in rows] == [
            ("I", 1, "ann", None),
            ("I", 2, "bob", None),
            ("U", 2, "bob", 5),
            ("D", 1, "ann", None),
        ]
        assert not {"seen_at", "doc"} & set(rows[0])
        columns = set(
            connection.execute(
                sa.text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'account_audit'"
                )
            ).scalars()
        )
        assert not {"seen_at", "doc"} & columns


@pytest.mark.parametrize("mode", MODES)
def test_skip_unchanged_records_only_rows_that_changed(
    any_driver_engine: sa.Engine, mode: str
) -> None:
    table = declare(mode, skip_unchanged=True)
    table.metadata.create_all(any_driver_engine)
    with any_driver_engine.begin() as connection:
        connection.execute(
            table.insert(),
            [
                {"id": 1, "owner": "ann", "balance": None, "doc": {"a": 1}},
                {"id": 2, "owner": "bob", "balance": 1, "doc": None},
                {"id": 3, "owner": "cy", "balance": 2, "doc": [1, 2]},
            ],
        )
        connection.execute(table.update().values(owner=table.c.owner))  # changes nothing
        connection.execute(table.update().values(doc={"a": 1}).where(table.c.id == 1))  # same
        connection.execute(table.update().values(balance=None).where(table.c.id <= 2))  # 2 only
        connection.execute(table.update().values(doc=[1, 2, 3]).where(table.c.id == 3))  # json
        connection.execute(table.update().values(balance=1.5).where(table.c.id == 1))  # NULL->1.5
    with any_driver_engine.connect() as connection:
        rows = history(connection, table)
    assert [(r["audit_operation"], r["id"], r["balance"], r["doc"]) for r in rows] == [
        ("I", 1, None, {"a": 1}),
        ("I", 2, 1, None),
        ("I", 3, 2, [1, 2]),
        ("U", 2, None, None),
        ("U", 3, 2, [1, 2, 3]),
        ("U", 1, 1.5, {"a": 1}),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_without_skip_unchanged_every_updated_row_is_recorded(engine: sa.Engine, mode: str) -> None:
    table = declare(mode)
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": 1, "owner": "ann"}, {"id": 2, "owner": "bob"}])
        connection.execute(table.update().values(owner=table.c.owner))
    with engine.connect() as connection:
        assert [op for op, *_ in ops(connection, table)] == ["I", "I", "U", "U"]


@pytest.mark.parametrize("mode", MODES)
def test_skip_unchanged_records_every_row_whose_primary_key_changed(
    engine: sa.Engine, mode: str
) -> None:
    # A deferrable key is checked at the end of each statement, so keys can shift and swap.
    table = sa.Table(
        "account",
        sa.MetaData(),
        sa.Column("id", sa.Integer),
        sa.Column("owner", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("id", deferrable=True, initially="IMMEDIATE"),
        info={"audit.options": {"enabled": True, "mode": mode, "skip_unchanged": True}},
    )
    table.metadata.create_all(engine)
    seen = 0

    def step(statement: Any) -> list[tuple[Any, ...]]:
        """Run one statement; return the audit rows it wrote, sorted."""
        nonlocal seen
        with engine.begin() as connection:
            connection.execute(statement)
            recorded = ops(connection, table)
        new, seen = recorded[seen:], len(recorded)
        return sorted(new)

    assert step(table.insert().values([(1, "x"), (2, "x")])) == [("I", 1, "x"), ("I", 2, "x")]
    # Same values under shifted keys: pairing new id 2 with old id 2 would see an unchanged row,
    # but old key 1 is gone, so the keys changed and every row is recorded; key 1 gets its K row.
    assert step(table.update().values(id=table.c.id + 1)) == [
        ("K", 1, "x"),
        ("U", 2, "x"),
        ("U", 3, "x"),
    ]
    assert step(table.insert().values(id=10, owner="y")) == [("I", 10, "y")]
    # One key change among unchanged rows.
    moved = step(table.update().values(id=sa.case((table.c.id == 10, 20), else_=table.c.id)))
    if mode == "row":  # PostgreSQL pairs OLD and NEW: only the row that changed
        assert moved == [("K", 10, "y"), ("U", 20, "y")]
    else:  # a statement that changed keys cannot be paired: every row, as without the filter
        assert moved == [("K", 10, "y"), ("U", 2, "x"), ("U", 3, "x"), ("U", 20, "y")]
    # Keys swapped between rows with different values: both changed under their key, and
    # neither key was left behind (no K row).
    swap = table.update().values(id=23 - table.c.id).where(table.c.id.in_([3, 20]))
    assert step(swap) == [("U", 3, "y"), ("U", 20, "x")]
    # Keys swapped between identical rows (2 and 20 both hold "x"): every key holds the values
    # it held before.  Row mode sees each row's key change; statement mode cannot tell this
    # statement from one that changed nothing, and records nothing (documented).
    same = step(table.update().values(id=22 - table.c.id).where(table.c.id.in_([2, 20])))
    assert same == ([("U", 2, "x"), ("U", 20, "x")] if mode == "row" else [])


def test_skip_unchanged_pairs_on_a_composite_primary_key(engine: sa.Engine) -> None:
    table = sa.Table(
        "line",
        sa.MetaData(),
        sa.Column("order_id", sa.Integer, primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("qty", sa.Integer),
        info={"audit.options": {"enabled": True, "skip_unchanged": True}},
    )
    assert table.info[SPEC_KEY].key_columns == ("order_id", "line_no")
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            table.insert(),
            [{"order_id": o, "line_no": n, "qty": 1} for o in (1, 2) for n in (1, 2)],
        )
        # (1, 2) and (2, 1) would pair wrongly on either key column alone.
        connection.execute(
            table.update().values(qty=sa.case((table.c.order_id == table.c.line_no, 9), else_=1))
        )
    with engine.connect() as connection:
        audit_table = table.info[AUDIT_TABLE_KEY]
        rows = connection.execute(
            sa.select(audit_table.c.order_id, audit_table.c.line_no, audit_table.c.qty).where(
                audit_table.c.audit_operation == "U"
            )
        ).all()
    assert sorted(rows) == [(1, 1, 9), (2, 2, 9)]


@pytest.mark.parametrize("mode", MODES)
def test_an_update_that_records_nothing_needs_no_required_setting(
    engine: sa.Engine, mode: str
) -> None:
    table = declare(
        mode,
        skip_unchanged=True,
        session_settings=[sa.Column("username", sa.String, nullable=False)],
    )
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        set_session_vars(connection, username="ann")
        connection.execute(table.insert().values(id=1, owner="ann"))
    with engine.begin() as connection:
        connection.execute(table.update().values(owner="ann"))  # unchanged: nothing to record
    with pytest.raises(sa.exc.IntegrityError, match=r"audit\.username"), engine.begin() as c:
        c.execute(table.update().values(owner="bob"))
    with engine.connect() as connection:
        assert ops(connection, table) == [("I", 1, "ann")]


@pytest.mark.parametrize("mode", MODES)
def test_filters_with_awkward_identifiers(engine: sa.Engine, mode: str) -> None:
    table = sa.Table(
        "Order Items",
        sa.MetaData(),
        sa.Column("select", sa.Integer, primary_key=True),
        sa.Column("if", sa.Text),
        sa.Column('a"b', sa.Text),
        sa.Column("50%", sa.Text),
        info={"audit.options": {"enabled": True, "mode": mode, "exclude_columns": ['a"b']}},
    )
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert().values({"select": 1, "if": "x", 'a"b': "y", "50%": "z"}))
        connection.execute(table.update().values({'a"b': "changed"}))  # excluded only
        connection.execute(table.update().values({"if": "x", "50%": "z%"}))  # one real change
    with engine.connect() as connection:
        rows = history(connection, table)
    assert [(r["audit_operation"], r["if"], r["50%"]) for r in rows] == [
        ("I", "x", "z"),
        ("U", "x", "z%"),
    ]
