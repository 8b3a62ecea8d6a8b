"""Declaring auditing: options, naming conventions, lazy declaration, tables you do not own,
and one MetaData installed into many tenant schemas."""

import os

import sqlalchemy as sa
from expect import raises

import sqlalchemy_postgresql_audit as audit

audit.enable()
engine = sa.create_engine(os.environ["DATABASE_URL"])

# --8<-- [start:options]
metadata = sa.MetaData()
document = sa.Table(
    "document",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("title", sa.String, nullable=False),
    sa.Column("body", sa.Text),
    sa.Column("views", sa.Integer, nullable=False, server_default="0"),
    info={"audit.options": {
        "enabled": True,
        "operations": ["INSERT", "UPDATE", "DELETE"],  # no TRUNCATE marker
        "exclude_columns": ["views"],                   # not recorded; implies skip_unchanged
        "capture": ["transaction_id", "changed_columns"],
    }},
)
metadata.create_all(engine)
document_audit = document.info["audit.table"]
with engine.begin() as connection:
    connection.execute(document.insert().values(id=1, title="Draft"))
    connection.execute(document.update().values(views=document.c.views + 1))  # not recorded
    connection.execute(document.update().values(title="Final"))
    rows = connection.execute(
        sa.select(document_audit.c.audit_operation, document_audit.c.audit_changed_columns)
        .order_by(document_audit.c.audit_id)
    ).all()
assert [tuple(row) for row in rows] == [("I", None), ("U", ["title"])]
assert "views" not in document_audit.c
# --8<-- [end:options]

# --8<-- [start:errors]
try:
    sa.Table("broken", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
             info={"audit.options": {"enabled": True, "mdoe": "row"}})
except audit.AuditConfigurationError as error:
    print(error)  # audit options of table 'broken': 'mdoe' is not an audit option (known: ...)
    message = str(error)
else:
    raise AssertionError("a misspelt option was accepted")
# --8<-- [end:errors]
assert "'broken'" in message and "'mdoe' is not an audit option" in message

refused = raises(audit.AuditConfigurationError, lambda: sa.Table(
    "events", sa.MetaData(), sa.Column("id", sa.Integer),
    postgresql_partition_by="RANGE (id)",
    info={"audit.options": {"enabled": True, "mode": "statement"}},
))
assert "'statement' on a partitioned table" in str(refused)

# --8<-- [start:naming]
named = sa.MetaData(naming_convention={
    "audit.table": "%(table_name)s_history",
    "audit.function": "%(table_name)s_record",
    "audit.trigger": "%(table_name)s_record",
    "audit.column": "changed_by_%(column_name)s",
    "audit.index": "%(table_name)s_history_by_key",
})
note = sa.Table(
    "note", named,
    sa.Column("id", sa.Integer, primary_key=True),
    info={"audit.options": {"enabled": True,
                            "session_settings": [sa.Column("username", sa.String)]}},
)
spec = note.info["audit.spec"]
assert (spec.audit_table, spec.function) == ("note_history", "note_record")
assert [t.name for t in spec.triggers] == [
    "note_record_insert", "note_record_update", "note_record_delete", "note_record_truncate"]
assert "changed_by_username" in named.tables["note_history"].c
assert {i.name for i in named.tables["note_history"].indexes} == {"note_history_by_key"}
# --8<-- [end:naming]

# --8<-- [start:lazy]
late = sa.MetaData()
tag = sa.Table("tag", late, sa.Column("id", sa.Integer, primary_key=True))
tag.info["audit.options"] = {"enabled": True}  # set after the table was defined
assert "tag_audit" not in late.tables
audit.declare_metadata(late)  # what create_all, install_audit_triggers and Alembic call first
assert late.tables["tag_audit"] is tag.info["audit.table"]
# --8<-- [end:lazy]

# --8<-- [start:not_owned]
legacy = sa.MetaData()
with engine.begin() as connection:
    connection.execute(sa.text("CREATE TABLE vendor_customer (id integer PRIMARY KEY, name text)"))
customer = sa.Table("vendor_customer", legacy, autoload_with=engine)  # reflected, not yours
customer_audit = audit.audit(customer, session_settings=[sa.Column("username", sa.String)])
assert audit.is_audit_table(customer_audit) and not audit.is_audit_table(customer)
legacy.create_all(engine)  # creates the missing audit table
audit.install_audit_triggers(legacy, engine)  # installs function and triggers (idempotent)
with engine.begin() as connection:
    audit.set_session_vars(connection, username="alice")
    connection.execute(customer.insert().values(id=1, name="ACME"))
    recorded = connection.execute(sa.select(customer_audit.c.audit_username)).scalars().all()
assert recorded == ["alice"]
# --8<-- [end:not_owned]

# --8<-- [start:tenants]
tenants = sa.MetaData()
ledger = sa.Table(
    "ledger", tenants,
    sa.Column("id", sa.Integer, primary_key=True),
    info={"audit.options": {"enabled": True}},
)  # no schema: each tenant's engine maps None to its schema
for schema in ("tenant_a", "tenant_b"):
    with engine.begin() as connection:
        connection.execute(sa.schema.CreateSchema(schema))
    tenant = engine.execution_options(schema_translate_map={None: schema})
    tenants.create_all(tenant)  # the audit table and function land in the tenant's schema
    with tenant.begin() as connection:
        connection.execute(ledger.insert().values(id=1))
with engine.connect() as connection:
    for schema in ("tenant_a", "tenant_b"):
        audit_table = sa.table("ledger_audit", schema=schema)
        count = connection.scalar(sa.select(sa.func.count()).select_from(audit_table))
        assert count == 1
# --8<-- [end:tenants]
