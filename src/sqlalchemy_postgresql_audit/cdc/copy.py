"""COPY out of and into PostgreSQL through the two synchronous drivers the library supports.

The decoder reads the slot and writes audit rows with COPY, the fastest path both ways; the
drivers spell it differently (psycopg2: ``copy_expert`` with a file; psycopg: ``cursor.copy``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from ..errors import AuditError


def copy_out(connection: Connection, sql: str, parameters: Mapping[str, Any]) -> bytes:
    """The bytes ``COPY ... TO STDOUT`` sends, parameters bound by the driver."""
    driver = _driver_connection(connection)
    if _is_psycopg2(driver):
        buffer = io.BytesIO()
        with driver.cursor() as cursor:
            cursor.copy_expert(cursor.mogrify(sql, parameters).decode(), buffer)
        return buffer.getvalue()
    with driver.cursor() as cursor, cursor.copy(sql, parameters) as copy:
        return b"".join(copy)


def copy_in(connection: Connection, sql: str, data: bytes) -> None:
    """Send ``data`` to ``COPY ... FROM STDIN``."""
    driver = _driver_connection(connection)
    if _is_psycopg2(driver):
        with driver.cursor() as cursor:
            cursor.copy_expert(sql, io.BytesIO(data))
        return
    with driver.cursor() as cursor, cursor.copy(sql) as copy:
        copy.write(data)


def _driver_connection(connection: Connection) -> Any:
    driver = connection.connection.driver_connection
    if not (_is_psycopg2(driver) or type(driver).__module__.split(".")[0] == "psycopg"):
        raise AuditError(
            f"the change-data-capture decoder needs a psycopg2 or psycopg engine, got "
            f"{connection.dialect.driver!r}"
        )
    return driver


def _is_psycopg2(driver: Any) -> bool:
    return type(driver).__module__.split(".")[0] == "psycopg2"
