"""The library's exceptions."""

from __future__ import annotations


class AuditError(Exception):
    """Base class of every error this library raises."""


class AuditConfigurationError(AuditError, ValueError):
    """A table's audit declaration is invalid; raised when the table is defined."""

    def __init__(self, table: str, key: str, problem: str) -> None:
        self.table = table
        self.key = key
        super().__init__(f"audit options of table {table!r}: {key!r} {problem}")
