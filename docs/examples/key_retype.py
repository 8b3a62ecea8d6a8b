"""A hand-written migration retyping an audited table's key from integer to bigint.

PostgreSQL refuses the bare ``alter_column`` while the key trigger's condition uses the column;
the migration takes the key trigger off around it, in its transaction.
"""

import os

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from expect import raises

import sqlalchemy_postgresql_audit as audit

audit.enable()  # registers op.drop_audit_key_trigger / op.create_audit_key_trigger

metadata = sa.MetaData()
parcel = sa.Table(
    "parcel",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("place", sa.Text),
    info={"audit.options": {"enabled": True}},
)
engine = sa.create_engine(os.environ["DATABASE_URL"])
metadata.create_all(engine)
with engine.begin() as connection:
    connection.execute(parcel.insert().values(id=1, place="depot"))



def retype_alone() -> None:
    with engine.begin() as connection:
        op = Operations(MigrationContext.configure(connection))
        op.alter_column("parcel", "id", type_=sa.BigInteger)


error = raises(sa.exc.NotSupportedError, retype_alone)
print(error.orig)
assert "trigger public_parcel_audit_update_key on table parcel depends on column" in str(error)


# --8<-- [start:upgrade]
def upgrade() -> None:
    key_trigger = {  # as in the table's create_audit_trigger / replace_audit_trigger
        "schema": None,
        "function": "public_parcel_audit",
        "update_trigger": "public_parcel_audit_update",
        "key_columns": ["id"],
    }
    op.drop_audit_key_trigger("parcel", **key_trigger)
    op.alter_column("parcel", "id", type_=sa.BigInteger, existing_type=sa.Integer)
    op.alter_column("parcel_audit", "id", type_=sa.BigInteger, existing_type=sa.Integer)
    op.create_audit_key_trigger("parcel", **key_trigger)
# --8<-- [end:upgrade]


with engine.begin() as connection:
    op = Operations(MigrationContext.configure(connection))
    upgrade()
with engine.begin() as connection:
    connection.execute(parcel.update().values(id=5_000_000_000))
    audit_table = metadata.tables["parcel_audit"]
    trail = connection.execute(
        sa.select(audit_table.c.audit_operation, audit_table.c.id).order_by(audit_table.c.audit_id)
    ).all()
print(trail)
assert [tuple(row) for row in trail] == [("I", 1), ("K", 1), ("U", 5_000_000_000)]
