"""The model the session-context recipes write to: a required ``username`` setting."""

import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import sqlalchemy_postgresql_audit as audit

audit.enable()


# --8<-- [start:model]
class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "shop_order"
    __table_args__ = {
        "info": {
            "audit.options": {
                "enabled": True,
                "session_settings": [
                    sa.Column("username", sa.String, nullable=False),  # required
                    sa.Column("request_id", sa.UUID),
                ],
            }
        }
    }
    id: Mapped[int] = mapped_column(primary_key=True)
    item: Mapped[str]
# --8<-- [end:model]


def recorded() -> list[tuple[Any, ...]]:
    """(item, audit_username, audit_request_id) of every audit row, in order."""
    audit_table = Order.__table__.info[audit.AUDIT_TABLE_KEY]
    query = sa.select(
        audit_table.c.item, audit_table.c.audit_username, audit_table.c.audit_request_id
    ).order_by(audit_table.c.audit_id)
    with sa.create_engine(os.environ["DATABASE_URL"]).connect() as connection:
        return [tuple(row) for row in connection.execute(query)]
