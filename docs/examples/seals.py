"""Seals and erasure: seal an append-only trail, anchor its head, catch a rewrite by the owner,
and erase a data subject's values while the seals still verify."""

import os

import sqlalchemy as sa

import sqlalchemy_postgresql_audit as audit

audit.enable()
engine = sa.create_engine(os.environ["DATABASE_URL"])

# --8<-- [start:seal]
metadata = sa.MetaData()
customer = sa.Table(
    "customer",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String),
    sa.Column("plan", sa.String),
    info={"audit.options": {"enabled": True, "append_only": True}},
)
metadata.create_all(engine)
with engine.begin() as connection:
    connection.execute(customer.insert().values(id=1, email="ada@example.com", plan="free"))
    connection.execute(customer.update().values(plan="pro"))
    connection.execute(customer.insert().values(id=2, email="bob@example.com", plan="free"))

(sealed,) = audit.seal(engine, metadata)  # from cron: only rows written since the last seal
print(sealed.rows, sealed.sealed_to)  # 3 3
report = audit.verify(engine, metadata)
anchor = report.head  # copy it out of the database: a log, a ticket, a timestamping service
assert report.ok and sealed.rows == 3 and anchor == sealed.head
# --8<-- [end:seal]

# --8<-- [start:tamper]
with engine.begin() as connection:  # the owner, guard off, rewrites a sealed row
    connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
    connection.execute(sa.text("UPDATE customer_audit SET plan = 'free' WHERE audit_id = 2"))
report = audit.verify(engine, metadata, anchor=anchor)
print(report.ok, report.first_broken)  # False ('customer_audit', 2)
assert not report.ok and report.first_broken == ("customer_audit", 2)
with engine.begin() as connection:  # put it back
    connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
    connection.execute(sa.text("UPDATE customer_audit SET plan = 'pro' WHERE audit_id = 2"))
# --8<-- [end:tamper]

# --8<-- [start:erase]
done = audit.erase(engine, customer, 1, columns=["email"], reason="GDPR art. 17, ticket 4711")
print(done.rows, done.sealed_rows)  # 2 2: both versions of customer 1
report = audit.verify(engine, metadata, anchor=anchor)  # still verifies, up to the old anchor
(erasure,) = report.erasures
print(erasure.reason, erasure.columns, erasure.rows)  # GDPR art. 17, ticket 4711 ('email',) 2
assert report.ok and erasure.rows == 2
with engine.connect() as connection:
    emails = connection.execute(sa.select(customer.info["audit.table"].c.email)).scalars()
    assert sorted(e for e in emails if e) == ["bob@example.com"]
# --8<-- [end:erase]
