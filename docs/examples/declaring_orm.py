"""Declaring auditing on an ORM model: the same ``info`` in ``__table_args__``."""

import os

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import sqlalchemy_postgresql_audit as audit

audit.enable()


# --8<-- [start:model]
class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = {"info": {"audit.options": {"enabled": True, "capture": ["transaction_id"]}}}

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str]
# --8<-- [end:model]


engine = sa.create_engine(os.environ["DATABASE_URL"])
Base.metadata.create_all(engine)

# --8<-- [start:use]
with Session(engine) as session, session.begin():
    session.add(Order(id=1, status="new"))

orders_audit = Base.metadata.tables["orders_audit"]
with engine.connect() as connection:
    row = connection.execute(sa.select(orders_audit)).one()
assert row.audit_operation == "I" and row.status == "new"
assert row.audit_transaction_id is not None
# --8<-- [end:use]
