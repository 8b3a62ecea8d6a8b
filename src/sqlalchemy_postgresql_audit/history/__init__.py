"""Read and restore the audit trail: history of a row, its changes, a table as of a moment.

Everything takes an audited ``Table`` or ORM class and a primary key.  The queries are
ordinary SQLAlchemy selects; ``restore`` and ``record_baseline`` execute in the caller's
transaction (``arestore`` and ``arecord_baseline`` for async connections and sessions).
"""

from __future__ import annotations

from ._activity import activity
from ._api import as_of, changes, history
from ._model import AuditRecord, audit_model
from ._redacted import REDACTED, Hashed, Redacted
from ._removed import IncompleteHistory, RemovedHistory, aremoved_history, removed_history
from ._versions import Operation, Version
from ._write import (
    Restored,
    arecord_baseline,
    arestore,
    record_baseline,
    record_install_baseline,
    restore,
)

__all__ = [
    "REDACTED",
    "AuditRecord",
    "Hashed",
    "IncompleteHistory",
    "Operation",
    "Redacted",
    "RemovedHistory",
    "Restored",
    "Version",
    "activity",
    "arecord_baseline",
    "aremoved_history",
    "arestore",
    "as_of",
    "audit_model",
    "changes",
    "history",
    "record_baseline",
    "record_install_baseline",
    "removed_history",
    "restore",
]
