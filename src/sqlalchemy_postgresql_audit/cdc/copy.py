"""COPY out of and into PostgreSQL through the two synchronous drivers the library supports.

The decoder reads the slot and writes audit rows with COPY, the fastest path both ways; the
drivers spell it differently (psycopg2: ``copy_expert`` with a file; psycopg: ``cursor.copy``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from sqlalchemy import Connection

from ..errors import AuditError


def copy_out(connection: Connection, sql: str, parameters: Mapping[str, Any]) -> bytes:
    """The bytes ``COPY ... TO STDOUT`` sends, parameters bound by the driver."""
    buffer = io.BytesIO()
    copy_out_to(connection, sql, parameters, buffer)
    return buffer.getvalue()


def copy_out_to(
    connection: Connection, sql: str, parameters: Mapping[str, Any], file: IO[bytes]
) -> None:
    """Write the bytes ``COPY ... TO STDOUT`` sends to ``file`` as they come."""
    driver = _driver_connection(connection)
    if _is_psycopg2(driver):
        with driver.cursor() as cursor:
            cursor.copy_expert(cursor.mogrify(sql, parameters).decode(), file)
        return
    with driver.cursor() as cursor, cursor.copy(sql, parameters) as copy:
        for chunk in copy:
            file.write(chunk)


def copy_in(connection: Connection, sql: str, lines: Iterable[bytes]) -> None:
    """Send ``lines`` to ``COPY ... FROM STDIN``, a chunk at a time (never all joined)."""
    driver = _driver_connection(connection)
    chunks = _chunks(lines)
    if _is_psycopg2(driver):
        with driver.cursor() as cursor:
            cursor.copy_expert(sql, _Source(chunks), size=CHUNK_BYTES)
        return
    with driver.cursor() as cursor, cursor.copy(sql) as copy:
        for chunk in chunks:
            copy.write(chunk)


#: How many bytes of lines ``copy_in`` joins into one write.
CHUNK_BYTES = 1 << 20


def _chunks(lines: Iterable[bytes]) -> Iterator[bytes]:
    pending: list[bytes] = []
    size = 0
    for line in lines:
        pending.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            yield b"".join(pending)
            pending.clear()
            size = 0
    if pending:
        yield b"".join(pending)


class _Source:
    """The file psycopg2's ``copy_expert`` reads from: the chunks, one per read."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks

    def read(self, size: int = -1) -> bytes:
        return next(self.chunks, b"")

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


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
