"""The primary's side of an archive server: a publication of the audit tables."""

import datetime
import os

import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit

audit.enable()
engine = sa.create_engine(os.environ["DATABASE_URL"])

metadata = sa.MetaData()
payment = sa.Table(
    "payment",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("amount", sa.Numeric),
    info={
        "audit.options": {
            "enabled": True,
            "partition": "week",
            "retention": datetime.timedelta(days=30),  # the primary keeps 30 days
        }
    },
)
metadata.create_all(engine)

# --8<-- [start:publish]
published = audit.publish(engine, metadata)  # name="audit_trail"; run again after adding tables
print(published.tables)  # ('"public"."payment_audit"',)
print(published.markers_filtered)  # True on PostgreSQL 15+: X and P markers stay here
# --8<-- [end:publish]
assert published.publication == "audit_trail"
