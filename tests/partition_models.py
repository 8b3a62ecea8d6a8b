"""The partitioned audited table the partitioning tests share."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def accounts(**options: Any) -> sa.Table:
    """``accounts(id, balance)``, audited with weekly partitions and ``options`` besides."""
    return sa.Table(
        "accounts",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("balance", sa.Integer),
        info={"audit.options": {"enabled": True, "partition": "week", **options}},
    )
