"""Refuse a write to a CDC table whose required session setting is missing, before it is sent.

In trigger mode the audit trigger refuses a write without a required setting
(``nullable=False`` in ``session_settings``).  A CDC table has no trigger, and the consumer
sees the change only after it committed, so the library refuses it in the writer's process:
a ``before_execute`` listener on the ``Engine`` class (every engine, sync or async, Core or
ORM) looks at each INSERT, UPDATE and DELETE construct built on a ``Table`` declared with
``mode="cdc"`` (also through an alias, and nested in a common table expression), and raises
``AuditSettingError`` naming the setting and the table when a required setting is not set for
it: neither by the active ``audit_context`` / ``default_context`` nor by ``set_session_vars``
in the same transaction (``scope.settings_for_next_write``).

**Cost.**  No query.  Measured on psycopg2 through SQLAlchemy's event dispatch
(``bench/writer_listeners.py``), the listener takes about 1.3 µs per write statement on another
table, and 2.5 µs on a CDC table with a required setting (its settings looked up among the
values the process knows), next to about 200 µs for a one-row INSERT.

**Not refused** (recorded with the setting NULL): textual SQL (``text("INSERT ...")``,
``exec_driver_sql``) and statements on a lightweight ``sqlalchemy.table()``, which are not
tied to a declared ``Table``; settings set with a ``set_config`` the application sends
itself are not seen either (use ``set_session_vars``).  Writes by other clients (psql, another
application) cannot be refused in CDC mode at all.  The execution option
``audit_runtime_check=False`` (``install.runtime_check``'s opt-out) skips this check too.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Table

from ..declare.audit_table import SPEC_KEY
from ..declare.declaration import declare_table
from ..declare.spec import AuditSpec
from ..declare.written import WriteListeners, operations_of, schema_written, written_table
from .scope import missing_for_next_write
from .session import AuditSettingError

#: ``install.runtime_check.RUNTIME_CHECK_OPTION``: writes let through on purpose.
_OPT_OUT = "audit_runtime_check"


def register_required_check() -> None:
    """Check every write to a CDC table with required settings.  Idempotent."""
    _LISTENERS.install()


def _check_write(
    connection: Connection, statement: Any, execution_options: Mapping[str, Any]
) -> None:
    table = written_table(statement)
    if table is None:
        return
    checked = _checked(table)
    if checked is None or execution_options.get(_OPT_OUT, True) is False:
        return
    _, required, declared = checked
    operations = operations_of(statement)
    if operations is not None and not operations & declared:
        return
    missing = missing_for_next_write(connection, required)
    if missing:
        raise AuditSettingError(_message(table, missing[0], execution_options))


_LISTENERS = WriteListeners(_check_write, first=True)


#: Per CDC table: (its spec, its required settings, the operations it records), kept while
#: the table's spec stays the same object.
_Checked = tuple[AuditSpec, tuple[str, ...], frozenset[str]]
_CHECKED: weakref.WeakKeyDictionary[Table, _Checked] = weakref.WeakKeyDictionary()


def _checked(table: Table) -> _Checked | None:
    """What to check on a CDC table with required settings; ``None`` for any other table."""
    spec = _spec_of(table)
    if spec is None or not spec.cdc:
        return None
    cached = _CHECKED.get(table)
    if cached is None or cached[0] is not spec:
        required = tuple(s.name.lower() for s in spec.settings if s.required)
        declared = frozenset(trigger.operation for trigger in spec.triggers)
        cached = (spec, required, declared)
        _CHECKED[table] = cached
    return cached if cached[1] else None


def _spec_of(table: Table) -> AuditSpec | None:
    spec = table.info.get(SPEC_KEY)
    if not isinstance(spec, AuditSpec) or (spec.table, spec.schema) != (table.name, table.schema):
        if declare_table(table) is None:
            return None
        spec = table.info.get(SPEC_KEY)
    return spec if isinstance(spec, AuditSpec) else None


def _message(table: Table, setting: str, execution_options: Mapping[str, Any]) -> str:
    schema = schema_written(table, execution_options)
    where = f"{schema}.{table.name}" if schema else table.name
    return (
        f"audit setting audit.{setting} is required to write to table {where} but is not "
        "set in this transaction, so the write was not sent (mode='cdc': no trigger could "
        "refuse it on the server, and the consumer would record NULL).  Write inside "
        f"sqlalchemy_postgresql_audit.audit_context({setting}=...), or set it with "
        "sqlalchemy_postgresql_audit.set_session_vars() in the same transaction."
    )
