"""Alembic integration: audit functions and triggers as migration operations.

Importing this module (``enable()`` does it when Alembic is installed) registers the operations
``op.create_audit_trigger``, ``op.replace_audit_trigger``, ``op.drop_audit_trigger``,
``op.record_audit_baseline``, ``op.record_cdc_join``, ``op.partition_audit_table`` (with its
reverse) and
``op.drop_audit_key_trigger`` / ``op.create_audit_key_trigger`` (around a key retype), their
renderers, and the autogenerate comparators (one before Alembic's table comparison, one after),
exactly once per process.  No ``alembic.plugins``
entry point is shipped: Alembic 1.18 to 1.20.0 fail to import with a module-valued one.
"""

from __future__ import annotations

from . import cdc as _cdc  # noqa: F401  (registers the publication operations)
from . import key_retype as _key_retype  # noqa: F401  (registers the key trigger operations)
from . import render as _render  # noqa: F401  (registers the renderers)
from .comparator import compare_audit, prepare_audit, register
from .ops import (
    CreateAuditTriggerOp,
    DropAuditTriggerOp,
    PartitionAuditTableOp,
    RecordAuditBaselineOp,
    ReplaceAuditTriggerOp,
)

register()

__all__ = [
    "CreateAuditTriggerOp",
    "DropAuditTriggerOp",
    "PartitionAuditTableOp",
    "RecordAuditBaselineOp",
    "ReplaceAuditTriggerOp",
    "compare_audit",
    "prepare_audit",
]
