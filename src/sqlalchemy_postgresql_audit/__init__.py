"""Typed audit tables for SQLAlchemy tables in PostgreSQL, maintained by triggers.

Declare ``info={"audit.options": {"enabled": True}}`` on a table, call ``enable`` (or import
``sqlalchemy_postgresql_audit.event_listeners.sqlalchemy``, or use the ``audit`` engine plugin),
and the table gets a companion audit table plus a trigger that records every change.

Importing the package already hooks ``create_all`` / ``drop_all`` (the hooks act only on tables
whose ``info`` enables auditing), so a table that asks to be audited is audited by
``create_all`` whenever this library is loaded; ``enable`` adds declaration at definition
time, so that ``table.info["audit.table"]`` exists before any entry point runs.
"""

from .context.scope import (
    AuditContext,
    audit_context,
    current_audit_values,
    default_context,
)
from .context.session import AuditSettingError, aset_session_vars, set_session_vars
from .declare.audit_table import (
    AUDIT_TABLE_KEY,
    CREATE_DDL_KEY,
    DROP_DDL_KEY,
    IS_AUDIT_TABLE_KEY,
    SPEC_KEY,
    is_audit_table,
)
from .declare.declaration import audit, declare_metadata
from .declare.naming import (
    DEFAULT_AUDIT_COLUMN_NAMING_CONVENTION,
    DEFAULT_AUDIT_INDEX_NAMING_CONVENTION,
    DEFAULT_AUDIT_TABLE_FUNCTION_NAMING_CONVENTION,
    DEFAULT_AUDIT_TABLE_NAMING_CONVENTION,
    DEFAULT_AUDIT_TABLE_TRIGGER_CONVENTION,
)
from .declare.options import AuditOptions, SessionSetting
from .declare.spec import AuditSpec, SettingSpec, TriggerSpec
from .errors import AuditConfigurationError, AuditError
from .history import (
    REDACTED,
    AuditRecord,
    Hashed,
    IncompleteHistory,
    RemovedHistory,
    Version,
    activity,
    arecord_baseline,
    aremoved_history,
    arestore,
    as_of,
    audit_model,
    changes,
    history,
    record_baseline,
    removed_history,
    restore,
)
from .install.ddl import install_audit_triggers, uninstall_audit_triggers
from .install.runtime_check import RUNTIME_CHECK_OPTION
from .lifecycle.archive import Published, publish, subscribe_archive, unsubscribe_archive
from .lifecycle.conversion import Converted, partition_audit_table
from .lifecycle.erasure import Erased, erase, erase_setting
from .lifecycle.holds import Hold, hold, holds_of, release
from .lifecycle.maintenance import Maintained, MaintenanceError, maintain
from .lifecycle.redact_history import redact_history
from .lifecycle.redaction_keys import matches_hash, rotate_redaction_key
from .lifecycle.seals import Sealed, seal
from .lifecycle.verify import Erasure, Verified, verify
from .listeners import enable, register_metadata_hooks

__all__ = [
    "AUDIT_TABLE_KEY",
    "CREATE_DDL_KEY",
    "DEFAULT_AUDIT_COLUMN_NAMING_CONVENTION",
    "DEFAULT_AUDIT_INDEX_NAMING_CONVENTION",
    "DEFAULT_AUDIT_TABLE_FUNCTION_NAMING_CONVENTION",
    "DEFAULT_AUDIT_TABLE_NAMING_CONVENTION",
    "DEFAULT_AUDIT_TABLE_TRIGGER_CONVENTION",
    "DROP_DDL_KEY",
    "IS_AUDIT_TABLE_KEY",
    "REDACTED",
    "RUNTIME_CHECK_OPTION",
    "SPEC_KEY",
    "AuditConfigurationError",
    "AuditContext",
    "AuditError",
    "AuditOptions",
    "AuditRecord",
    "AuditSettingError",
    "AuditSpec",
    "Converted",
    "Erased",
    "Erasure",
    "Hashed",
    "Hold",
    "IncompleteHistory",
    "Maintained",
    "MaintenanceError",
    "Published",
    "RemovedHistory",
    "Sealed",
    "SessionSetting",
    "SettingSpec",
    "TriggerSpec",
    "Verified",
    "Version",
    "activity",
    "arecord_baseline",
    "aremoved_history",
    "arestore",
    "as_of",
    "aset_session_vars",
    "audit",
    "audit_context",
    "audit_model",
    "changes",
    "current_audit_values",
    "declare_metadata",
    "default_context",
    "enable",
    "erase",
    "erase_setting",
    "history",
    "hold",
    "holds_of",
    "install_audit_triggers",
    "is_audit_table",
    "maintain",
    "matches_hash",
    "partition_audit_table",
    "publish",
    "record_baseline",
    "redact_history",
    "release",
    "removed_history",
    "restore",
    "rotate_redaction_key",
    "seal",
    "set_session_vars",
    "subscribe_archive",
    "uninstall_audit_triggers",
    "unsubscribe_archive",
    "verify",
]

register_metadata_hooks()
