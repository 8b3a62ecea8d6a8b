"""Where one MetaData's change-data-capture lives: names of the publications, the slot and the
context table, from its naming conventions (with defaults), and which tables are CDC tables.

Shared by installing (the source), the writer (its context row) and the consumer (the target).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import MetaData, Table

from ..errors import AuditConfigurationError
from .audit_table import SPEC_KEY
from .naming import (
    CONTEXT_TABLE_KEY,
    DEFAULT_CONTEXT_TABLE_NAME,
    DEFAULT_PUBLICATION_NAME,
    DEFAULT_SLOT_NAME,
    PUBLICATION_KEY,
    SLOT_FAILOVER_KEY,
    SLOT_KEY,
    fit_identifier,
)
from .spec import AuditSpec

#: PostgreSQL's rule for slot names.
_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class CdcNames:
    """Where one MetaData's CDC lives: from its naming conventions, with defaults.

    The context table lives in the MetaData's schema (``MetaData(schema=...)``), else in the
    connection's default schema, one per MetaData whatever schemas its CDC tables use.
    """

    publication: str
    context_publication: str
    slot: str
    context_schema: str | None
    context_table: str
    #: Whether the slot is a failover slot, kept on standbys that synchronize slots so the
    #: trail survives a switchover (PostgreSQL 17+; the standby needs settings of its own).
    failover: bool = False

    @property
    def publications(self) -> tuple[str, str]:
        return (self.publication, self.context_publication)


def cdc_names(metadata: MetaData) -> CdcNames:
    conventions: Mapping[Any, Any] = metadata.naming_convention
    publication = _name(conventions, PUBLICATION_KEY, DEFAULT_PUBLICATION_NAME)
    slot = _name(conventions, SLOT_KEY, DEFAULT_SLOT_NAME)
    if not _SLOT_NAME.match(slot):
        raise AuditConfigurationError(
            "(naming convention)",
            SLOT_KEY,
            f"{slot!r} is not a valid replication slot name: PostgreSQL allows only lower case "
            "letters, digits and _",
        )
    return CdcNames(
        publication=publication,
        context_publication=fit_identifier(f"{publication}_context"),
        slot=slot,
        context_schema=metadata.schema,
        context_table=_name(conventions, CONTEXT_TABLE_KEY, DEFAULT_CONTEXT_TABLE_NAME),
        failover=_flag(conventions, SLOT_FAILOVER_KEY),
    )


def _flag(conventions: Mapping[Any, Any], key: str) -> bool:
    value = conventions.get(key, False)
    if not isinstance(value, bool):
        raise AuditConfigurationError(
            "(naming convention)", key, f"must be True or False, got {value!r}"
        )
    return value


def _name(conventions: Mapping[Any, Any], key: str, default: str) -> str:
    value = conventions.get(key, default)
    if not isinstance(value, str) or not value:
        raise AuditConfigurationError(
            "(naming convention)", key, f"must be a non-empty name, got {value!r}"
        )
    return fit_identifier(value)


def is_cdc(table: Table) -> bool:
    spec = table.info.get(SPEC_KEY)
    return isinstance(spec, AuditSpec) and spec.cdc


def replica_identity(spec: AuditSpec) -> str:
    """The ``REPLICA IDENTITY`` a CDC table is given: ``full`` (the WAL carries old rows
    whole) or ``default`` (its key: the decoder rebuilds old rows from the trail), from the
    ``replica_identity`` option or its default (``declare.specify``)."""
    return "full" if spec.replica_identity_full else "default"
