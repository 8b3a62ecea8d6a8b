"""Models mixing a CDC table and a trigger-mode table, for ``check`` on design 1's target
(imported by the subprocess)."""

import sqlalchemy as sa

metadata = sa.MetaData(naming_convention={"audit.slot": "cdc_cli_mixed"})
ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("amount", sa.Integer),
    info={"audit.options": {"enabled": True, "mode": "cdc"}},
)
items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    info={"audit.options": {"enabled": True, "mode": "row"}},
)
