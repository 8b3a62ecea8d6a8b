"""Least-privilege roles: the application writes, the trail records it, a forged row is refused."""

import os
import uuid

import sqlalchemy as sa
from expect import raises

import sqlalchemy_postgresql_audit as audit
from sqlalchemy_postgresql_audit.install.grants import grant_least_privilege, least_privilege_script
from sqlalchemy_postgresql_audit.retention import purge_audit_history

audit.enable()
engine = sa.create_engine(os.environ["DATABASE_URL"])  # the migrator
suffix = uuid.uuid4().hex[:8]  # roles are cluster-wide: unique names per run
app, auditor = f"app_{suffix}", f"auditor_{suffix}"
quote = engine.dialect.identifier_preparer.quote  # identifiers go through the preparer

# --8<-- [start:declare]
metadata = sa.MetaData()
invoice = sa.Table(
    "invoice",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),  # no sequence grant needed
    sa.Column("amount", sa.Numeric(10, 2), nullable=False),
    info={"audit.options": {"enabled": True, "append_only": True}},
)
invoice_audit = invoice.info["audit.table"]
# --8<-- [end:declare]

with engine.begin() as connection:
    for role in (app, auditor):
        connection.execute(sa.text(f"CREATE ROLE {quote(role)} LOGIN PASSWORD 'secret'"))
metadata.create_all(engine)

# --8<-- [start:grant]
print(least_privilege_script(metadata, writers=[app], readers=[auditor]))  # review it first
grant_least_privilege(engine, metadata, writers=[app], readers=[auditor])
# --8<-- [end:grant]
script = least_privilege_script(metadata, writers=[app], readers=[auditor])
assert f"REVOKE ALL ON invoice_audit FROM {app};" in script
assert f"GRANT SELECT ON invoice_audit TO {auditor};" in script

app_url = engine.url.set(username=app, password="secret")
app_engine = sa.create_engine(app_url)

# --8<-- [start:write]
with app_engine.begin() as connection:  # the application: writes are audited
    connection.execute(invoice.insert().values(amount=100))

forged = invoice_audit.insert().values(
    audit_operation="I", audit_operation_timestamp=sa.func.now(), id=1, amount=1
)
with app_engine.connect() as connection:
    try:
        connection.execute(forged)  # and it cannot write history by hand
    except sa.exc.ProgrammingError as error:
        print(error.orig)  # permission denied for table invoice_audit
        refused = str(error.orig)
    else:
        raise AssertionError("a writer forged an audit row")
# --8<-- [end:write]
assert "permission denied for table invoice_audit" in refused

with app_engine.connect() as connection:
    for statement in (
        sa.text("ALTER TABLE invoice DISABLE TRIGGER ALL"),
        sa.delete(invoice_audit),
        sa.select(invoice_audit),
    ):
        def run(statement: sa.Executable = statement) -> None:
            with connection.begin():
                connection.execute(statement)

        error = raises(sa.exc.ProgrammingError, run)
        assert error.orig.pgcode == "42501", error  # insufficient_privilege

# --8<-- [start:append_only]
with engine.begin() as connection:  # even the owner cannot rewrite history
    with connection.begin_nested() as savepoint:
        error = raises(sa.exc.DBAPIError, lambda: connection.execute(invoice_audit.delete()))
        savepoint.rollback()
    print(error.orig)
    assert "append" in str(error.orig).lower(), error

    started = connection.scalar(sa.select(sa.func.now()))  # no bound later than this
    purged = purge_audit_history(connection, invoice, before=started)
    assert purged == 1
    marker = connection.execute(sa.select(invoice_audit)).one()
    assert marker.audit_operation == "P"  # the purge is recorded: who, and its bound
    assert marker.audit_operation_timestamp == started
# --8<-- [end:append_only]

auditor_engine = sa.create_engine(engine.url.set(username=auditor, password="secret"))
with auditor_engine.connect() as connection:  # readers read
    assert connection.scalars(sa.select(invoice_audit.c.audit_operation)).all() == ["P"]
for e in (app_engine, auditor_engine):
    e.dispose()
metadata.drop_all(engine)
with engine.begin() as connection:
    for role in (app, auditor):
        connection.execute(sa.text(f"DROP OWNED BY {quote(role)}"))
        connection.execute(sa.text(f"DROP ROLE {quote(role)}"))
