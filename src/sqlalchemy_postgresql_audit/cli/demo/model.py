"""The demo's shop: customers, orders and order items (keyed by order and line), all audited.

Built on a fresh MetaData for a given schema, so a demo against a real server lives in a
throwaway schema of its own: every table, audit table and function is qualified with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ...declare.declaration import declare_metadata


@dataclass(frozen=True, slots=True, kw_only=True)
class Shop:
    metadata: sa.MetaData
    customers: sa.Table
    orders: sa.Table
    order_items: sa.Table


def _audited() -> dict[str, object]:
    return {
        "audit.options": {
            "enabled": True,
            "session_settings": [
                # Required: a write with no username fails instead of going unrecorded.
                sa.Column("username", sa.String, nullable=False),
                sa.Column("request_id", sa.String),
            ],
        }
    }


def build_shop(schema: str | None) -> Shop:
    metadata = sa.MetaData(schema=schema)
    customers = sa.Table(
        "customers",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("email", sa.String, nullable=False),
        info=_audited(),
    )
    orders = sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.ForeignKey(customers.c.id), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("total", sa.Numeric(10, 2), nullable=False),
        info=_audited(),
    )
    order_items = sa.Table(
        "order_items",
        metadata,
        sa.Column("order_id", sa.ForeignKey(orders.c.id), primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("sku", sa.String, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price", sa.Numeric(10, 2), nullable=False),
        info=_audited(),
    )
    declare_metadata(metadata)  # the audit tables and triggers, with or without enable()
    return Shop(metadata=metadata, customers=customers, orders=orders, order_items=order_items)
