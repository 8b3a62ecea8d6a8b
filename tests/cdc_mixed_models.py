"""Models with a CDC table and a trigger-mode table (imported by the command line's
subprocess): design 1's target holds only the first one's trail."""

import sqlalchemy as sa

metadata = sa.MetaData(naming_convention={"audit.slot": "cdc_mixed_models"})
ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("amount", sa.Integer),
    info={"audit.options": {"enabled": True, "mode": "cdc"}},
)
item = sa.Table(
    "item",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.Text),
    info={"audit.options": {"enabled": True}},
)
