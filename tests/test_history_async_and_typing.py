"""The history API on async sessions (asyncpg, psycopg 3), and its types under mypy --strict."""

from __future__ import annotations

import asyncio
import decimal
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

import sqlalchemy_postgresql_audit as audit
from history_typed_usage import Base, Invoice, amounts, paid_then, undo_to, who_paid

TESTS = Path(__file__).resolve().parent


def test_async_history_as_of_restore_and_baseline(async_database_url: URL) -> None:
    async def scenario() -> None:
        engine = create_async_engine(async_database_url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(Base.metadata.create_all)
            async with AsyncSession(engine) as session, session.begin():
                await audit.aset_session_vars(session, username="ann")
                session.add(Invoice(id=1, amount=decimal.Decimal("5.00")))
                await session.flush()
                await session.execute(sa.update(Invoice).values(amount=7))
            async with engine.connect() as connection:
                at = (await connection.execute(sa.select(sa.func.clock_timestamp()))).scalar_one()
            async with AsyncSession(engine) as session, session.begin():
                await audit.aset_session_vars(session, username="bob")
                await session.execute(sa.update(Invoice).values(paid=True))
            async with AsyncSession(engine) as session:
                versions = (await session.scalars(audit.history(Invoice, 1))).all()
                assert [(v.operation, v.context["username"]) for v in versions] == [
                    ("I", "ann"),
                    ("U", "ann"),
                    ("U", "bob"),
                ]
                assert versions[2].changed == {"paid": (False, True)}
                then = (await session.scalars(audit.as_of(Invoice, at, 1))).one()
                assert then.row is not None and then.row.amount == decimal.Decimal("7.00")
                rows = (await session.execute(audit.changes(Invoice.__table__, 1))).all()
                assert [(r.column, r.before, r.after) for r in rows][-1] == ("paid", False, True)
            async with engine.begin() as connection:
                assert await audit.arestore(connection, Invoice, 1, at) == "updated"
                assert await audit.arecord_baseline(connection, Invoice) == 0
            async with AsyncSession(engine) as session:
                assert await session.scalar(sa.select(Invoice.paid)) is False
                last = (await session.scalars(audit.history(Invoice, 1))).all()[-1]
                assert last.changed == {"paid": (True, False)}
            async with engine.begin() as connection:
                first = versions[0].audit_id
                assert await audit.arestore(connection, Invoice, 1, version=first) == "updated"
                amount = (await connection.execute(sa.select(Invoice.amount))).scalar_one()
                assert amount == decimal.Decimal("5.00")
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_the_typed_snippet_runs(engine: sa.Engine) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        audit.set_session_vars(session, username="ann")
        session.add(Invoice(id=1, amount=decimal.Decimal("5.00")))
        session.flush()
        audit.set_session_vars(session, username="bob")
        session.execute(sa.update(Invoice).values(paid=True))
    with Session(engine) as session:
        at = session.execute(sa.select(sa.func.clock_timestamp())).scalar_one()  # committed
    with Session(engine) as session:
        assert amounts(session, 1) == [
            ("I", decimal.Decimal("5.00")),
            ("U", decimal.Decimal("5.00")),
        ]
        assert [who for _, who in who_paid(session, 1)] == ["bob"]
        assert paid_then(session, at) == [1]
        first = session.scalars(audit.history(Invoice, 1)).first()
        assert first is not None
    with Session(engine) as session, session.begin():
        assert undo_to(session, 1, first.audit_id) == "updated"
        assert session.scalar(sa.select(Invoice.paid)) is False


def test_versions_type_check_under_mypy_strict(tmp_path: Path) -> None:
    """The snippet passes mypy --strict, and a misuse of a version's typed row fails it."""
    wrong = tmp_path / "history_typed_misuse.py"
    wrong.write_text(
        "from sqlalchemy.orm import Session\n"
        "import sqlalchemy_postgresql_audit as audit\n"
        "from history_typed_usage import Invoice\n\n"
        "def f(session: Session) -> str:\n"
        "    for v in session.scalars(audit.history(Invoice, 1)):\n"
        "        if v.row is not None:\n"
        "            return v.row.amount\n"
        "    return v.row.amount\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            str(TESTS / "history_typed_usage.py"),
            str(wrong),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"MYPYPATH": str(TESTS), "PATH": ""},
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert errors and all(line.startswith(wrong.name) for line in errors), result.stdout
    if tuple(int(p) for p in sa.__version__.split(".")[:2]) < (2, 1):
        # SQLAlchemy 2.0 types Select by a tuple of columns: versions type-check, as Any.
        assert all("Returning Any" in line for line in errors), result.stdout
        return
    assert any(
        'Incompatible return value type (got "Decimal", expected "str")' in e for e in errors
    ), result.stdout
    assert any('Item "None" of "Invoice | None" has no attribute "amount"' in e for e in errors), (
        result.stdout
    )
