"""Converting an audit table that already holds history: the rows stay where they are."""

import os

import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit

audit.enable()
engine = sa.create_engine(os.environ["DATABASE_URL"])


def invoice(partition: str | None) -> sa.Table:
    return sa.Table(
        "invoice",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("total", sa.Numeric),
        info={"audit.options": {"enabled": True, "mode": "row", "partition": partition}},
    )


before = invoice(None)
before.metadata.create_all(engine)  # an unpartitioned invoice_audit
with engine.begin() as connection:
    connection.execute(before.insert(), [{"id": n, "total": n} for n in range(1, 101)])

# --8<-- [start:convert]
table = invoice("week")  # the same table, now declared with partition="week"
done = audit.partition_audit_table(engine, table)
print(done.partition)  # invoice_audit_until20261214: the old table, holding every old row
audit.maintain(engine, table)  # the weeks after it, ahead of the writers
# --8<-- [end:convert]
with engine.connect() as connection:
    count = connection.execute(sa.text("SELECT count(*) FROM invoice_audit")).scalar_one()
assert count == 100
