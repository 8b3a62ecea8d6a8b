"""What a 0.5.x release installed for one table (for the upgrade walk-through; a condensed copy of
the test suite's ``tests/legacy_05x.py``): audit table, row-level function and trigger."""

import sqlalchemy as sa


def install_05x(connection: sa.Connection) -> None:
    """shop.orders with a required ``username`` setting, as 0.5.x created it."""
    connection.exec_driver_sql("CREATE SCHEMA shop")
    connection.exec_driver_sql(
        "CREATE TABLE shop.orders (id INTEGER PRIMARY KEY, code VARCHAR(20) NOT NULL)"
    )
    connection.exec_driver_sql(
        "CREATE TABLE shop.orders_audit (audit_operation VARCHAR(1) NOT NULL,"
        " audit_operation_timestamp TIMESTAMP WITHOUT TIME ZONE NOT NULL,"
        " audit_username VARCHAR NOT NULL, id INTEGER, code VARCHAR(20))"
    )
    row = "{}, now(), current_setting('audit.username', false)::VARCHAR, {row}.id, {row}.code"
    inserts = {
        op: "INSERT INTO shop.orders_audit (audit_operation, audit_operation_timestamp,"
        f" audit_username, id, code) SELECT {row.format(repr(op), row=record)};"
        for op, record in (("D", "OLD"), ("U", "NEW"), ("I", "NEW"))
    }
    connection.exec_driver_sql(
        "CREATE OR REPLACE FUNCTION shop_orders_audit() RETURNS TRIGGER AS $shop_orders_audit$\n"
        "BEGIN\n"
        "    IF current_setting('audit.username', false)::VARCHAR::VARCHAR = ''"
        " THEN RAISE EXCEPTION 'audit.username session setting must be set to a non null/empty"
        " value'; END IF;\n\n"
        f"    IF (TG_OP = 'DELETE') THEN\n        {inserts['D']}\n"
        f"    ELSIF (TG_OP = 'UPDATE') THEN\n        {inserts['U']}\n"
        f"    ELSIF (TG_OP = 'INSERT') THEN\n        {inserts['I']}\n"
        "    END IF;\n"
        "    RETURN NULL; -- result is ignored since this is an AFTER trigger\n"
        "END;\n$shop_orders_audit$ LANGUAGE plpgsql"
    )
    connection.exec_driver_sql(
        "CREATE TRIGGER shop_orders_audit\nAFTER INSERT OR UPDATE OR DELETE ON shop.orders\n"
        "FOR EACH ROW EXECUTE PROCEDURE shop_orders_audit()"
    )
