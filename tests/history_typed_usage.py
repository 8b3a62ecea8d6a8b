"""Typed use of the history API; ``test_history_async_and_typing.py`` runs mypy --strict on it.

Not a test module itself: it is the snippet a user would write, checked and executed.
"""

from __future__ import annotations

import datetime
import decimal

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import sqlalchemy_postgresql_audit as audit


class Base(DeclarativeBase):
    pass


class Invoice(Base):
    __tablename__ = "invoice"
    __table_args__ = {
        "info": {
            "audit.options": {
                "enabled": True,
                "session_settings": [sa.Column("username", sa.Text)],
            }
        }
    }
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    amount: Mapped[decimal.Decimal] = mapped_column(sa.Numeric(10, 2))
    paid: Mapped[bool] = mapped_column(default=False)


def amounts(session: Session, invoice_id: int) -> list[tuple[str, decimal.Decimal | None]]:
    """(operation, amount) of every version; ``v.row`` is an ``Invoice``, typed."""
    out: list[tuple[str, decimal.Decimal | None]] = []
    for v in session.scalars(audit.history(Invoice, invoice_id)):
        amount = v.row.amount if v.row is not None else None
        out.append((v.operation, amount))
    return out


def who_paid(session: Session, invoice_id: int) -> list[tuple[datetime.datetime, object]]:
    return [
        (v.at, v.context["username"])
        for v in session.scalars(audit.history(Invoice, invoice_id))
        if "paid" in v.changed and v.changed["paid"][1] is True
    ]


def paid_then(session: Session, at: datetime.datetime) -> list[int]:
    return [v.row.id for v in session.scalars(audit.as_of(Invoice, at)) if v.row and v.row.paid]


def undo_to(session: Session, invoice_id: int, version: int) -> str:
    """Back to the state one version (an ``audit_id`` from ``history``) left the row in."""
    outcome: str = audit.restore(session, Invoice, invoice_id, version=version)
    return outcome
