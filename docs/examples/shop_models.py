"""The models the CLI example points at: ``shop_models:metadata``."""

import sqlalchemy as sa

import sqlalchemy_postgresql_audit

sqlalchemy_postgresql_audit.enable()

metadata = sa.MetaData()
product = sa.Table(
    "product",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    info={"audit.options": {"enabled": True}},
)
