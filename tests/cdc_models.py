"""Models for the command line's ``cdc`` tests (imported by the subprocess)."""

import sqlalchemy as sa

metadata = sa.MetaData(naming_convention={"audit.slot": "cdc_cli_models"})
ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("amount", sa.Integer),
    info={"audit.options": {"enabled": True, "mode": "cdc"}},
)
