"""The runtime check: a write to an audited table whose triggers are not installed is refused
before it is sent; installing them later lets the same engine write again.  Also: a misspelt
``audit.options`` key, and turning the check off on purpose."""

import logging
import os

import sqlalchemy as sa
from expect import raises

import sqlalchemy_postgresql_audit as audit

audit.enable()
url = os.environ["DATABASE_URL"]
engine = sa.create_engine(url)
with engine.begin() as connection:  # what a migration made without the library creates
    connection.execute(sa.text("CREATE TABLE invoice (id integer PRIMARY KEY, total numeric)"))

# --8<-- [start:refused]
metadata = sa.MetaData()
invoice = sa.Table(
    "invoice",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("total", sa.Numeric),
    info={"audit.options": {"enabled": True}},
)


def write(bind: sa.Engine, invoice_id: int) -> None:
    with bind.begin() as connection:
        connection.execute(invoice.insert().values(id=invoice_id, total=10))


error = raises(audit.AuditConfigurationError, lambda: write(engine, 1))
print(error)  # audit options of table 'invoice': 'audit.options' enables auditing, but invoice
#               has no enabled audit trigger for INSERT in the database of Engine(...), so the
#               write was not sent: it would not be audited. ...
metadata.create_all(engine)  # the missing migration: creates invoice_audit, installs triggers
write(engine, 1)  # the same engine looks again, finds them, and never asks again
# --8<-- [end:refused]
assert "no enabled audit trigger for INSERT" in str(error)
with engine.connect() as connection:
    assert connection.execute(sa.text("SELECT count(*) FROM invoice_audit")).scalar_one() == 1

# --8<-- [start:opt_out]
logging.basicConfig()
loader = sa.create_engine(url, execution_options={"audit_runtime_check": False})
# The first audited write logs, once for this engine:
# WARNING:sqlalchemy_postgresql_audit.install.runtime_check:Engine(postgresql+psycopg2://...):
# writes to audited tables are not checked for installed audit triggers (execution option
# audit_runtime_check=False); a table without them is written unaudited
# --8<-- [end:opt_out]
write(loader, 2)
loader.dispose()

# --8<-- [start:near_miss]
error = raises(audit.AuditConfigurationError, lambda: sa.Table(
    "payment", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
    info={"audit_options": {"enabled": True}},
))
print(error)  # audit options of table 'payment': 'audit_options' looks like a misspelling of
#               'audit.options', the only key auditing is declared with: ...
# --8<-- [end:near_miss]
assert "'payment'" in str(error) and "'audit_options' looks like a misspelling" in str(error)
