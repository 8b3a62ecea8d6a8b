"""Names of the audit objects: naming-convention keys, defaults, and PostgreSQL's 63-byte limit."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

#: Format strings of the 0.5.x releases; tokens: ``table_name`` and ``schema``.
DEFAULT_AUDIT_TABLE_NAMING_CONVENTION = "%(table_name)s_audit"
DEFAULT_AUDIT_TABLE_FUNCTION_NAMING_CONVENTION = "%(schema)s_%(table_name)s_audit"
DEFAULT_AUDIT_TABLE_TRIGGER_CONVENTION = "%(schema)s_%(table_name)s_audit"
#: How a session setting's column is named in the audit table; token: ``column_name``.
#: Set ``"audit.column": "%(column_name)s"`` for the unprefixed layout of the 0.2.1 README.
DEFAULT_AUDIT_COLUMN_NAMING_CONVENTION = "audit_%(column_name)s"
#: The audit table's history index on (source key..., audit_id); tokens as for the table.
DEFAULT_AUDIT_INDEX_NAMING_CONVENTION = "%(table_name)s_audit_history"

#: Change-data-capture mode: the publication of the CDC tables (its context publication adds
#: ``_context``), the logical slot, and the context table (tokens: none).
DEFAULT_PUBLICATION_NAME = "audit_cdc"
DEFAULT_SLOT_NAME = "audit_cdc"
DEFAULT_CONTEXT_TABLE_NAME = "audit_cdc_context"

TABLE_KEY = "audit.table"
PUBLICATION_KEY = "audit.publication"
SLOT_KEY = "audit.slot"
#: Not a name but the slot's one setting: ``True`` makes it a failover slot (PostgreSQL 17+).
SLOT_FAILOVER_KEY = "audit.slot_failover"
CONTEXT_TABLE_KEY = "audit.cdc_context"
FUNCTION_KEY = "audit.function"
TRIGGER_KEY = "audit.trigger"
COLUMN_KEY = "audit.column"
INDEX_KEY = "audit.index"

#: PostgreSQL truncates identifiers longer than NAMEDATALEN - 1 bytes.
MAX_IDENTIFIER_BYTES = 63
_HASH_CHARS = 8


def apply_convention(
    conventions: Mapping[Any, Any], key: str, default: str, tokens: Mapping[str, str]
) -> str:
    """Format the convention for ``key`` (or ``default``) and fit the result into 63 bytes."""
    template = conventions.get(key, default)
    if not isinstance(template, str):
        raise TypeError(f"naming convention {key!r} must be a format string, got {template!r}")
    try:
        name = template % tokens
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(
            f"naming convention {key!r} = {template!r} is invalid: {exc!r}; "
            f"available tokens: {', '.join(sorted(tokens))}"
        ) from None
    return fit_identifier(name)


def fit_identifier(name: str) -> str:
    """Shorten ``name`` to PostgreSQL's limit, deterministically.

    A name that fits is returned unchanged.  A longer one keeps as many leading characters as fit
    (never splitting a UTF-8 sequence) followed by ``_`` and a hash of the full name, so two long
    names that share a prefix still get distinct identifiers.
    """
    if len(name.encode("utf-8")) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    budget = MAX_IDENTIFIER_BYTES - _HASH_CHARS - 1
    prefix = name.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return f"{prefix}_{digest}"
