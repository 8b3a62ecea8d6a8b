"""Least privilege for audited tables: who may write data, who may read history, who owns it.

The model (SECURITY.md has the whole threat model): the application's *writer* roles get DML on
the audited tables and no right at all on the audit tables, so the only way a row reaches an
audit table is the trigger function, which runs as its owner (SECURITY DEFINER); *reader* roles
get SELECT on the audit tables; an optional dedicated *owner* role owns the audit tables and the
library's functions.  The SQL comes from ``render.render_grants``.

It reaches a fixpoint: whatever default privileges, PUBLIC, group, column or sequence grants
existed before, a writer afterwards holds exactly the rights SECURITY.md's table lists (a test
renders that table from ``has_*_privilege``).  A writer no REVOKE can restrict (a superuser, a
member of an owner or of a predefined all-tables role) is refused by name.  The roles are noted
on each audit table's ``audit_id`` sequence, so that ``check`` watches their privileges.

From Python: ``grant_least_privilege`` (runs it) or ``least_privilege_script`` (returns
it).  From a shell, the command line's ``grant`` subcommand::

    sqlalchemy-postgresql-audit grant myapp.models:metadata \\
        --writer app --reader auditor --owner audit_owner [--url postgresql://...]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from ..declare.cdc import cdc_names
from ..declare.spec import AuditSpec
from ..render import render_grants
from ..render.cdc import context_grants
from ..render.cdc_decoder import PROGRESS_TABLE
from .ddl import as_script, audited_tables, execute_statements, resolve_spec


def _statements(
    metadata: sa.MetaData,
    specs: Iterable[AuditSpec],
    writers: Sequence[str],
    readers: Sequence[str],
    owner: str | None,
) -> list[str]:
    specs = list(specs)
    statements = [
        sql
        for spec in specs
        for sql in render_grants(spec, writers=tuple(writers), readers=tuple(readers), owner=owner)
    ]
    if any(spec.cdc for spec in specs):
        names = cdc_names(metadata)
        statements += context_grants(
            names.context_schema, names.context_table, PROGRESS_TABLE, tuple(writers)
        )
    return statements


def least_privilege_script(
    metadata: sa.MetaData,
    *,
    writers: Sequence[str],
    readers: Sequence[str] = (),
    owner: str | None = None,
) -> str:
    """The GRANT/REVOKE script for every audited table of ``metadata``, without a database.

    The script reads the catalog when it runs (ACLs, partitions, serial sequences), so running
    it later is the same as ``grant_least_privilege`` now."""
    specs = (spec for _, spec in audited_tables(metadata))
    return as_script(_statements(metadata, specs, writers, readers, owner))


def grant_least_privilege(
    bind: sa.Connection | sa.Engine,
    metadata: sa.MetaData,
    *,
    writers: Sequence[str],
    readers: Sequence[str] = (),
    owner: str | None = None,
) -> None:
    """Apply the least-privilege model to every audited table of ``metadata``, in one
    transaction (the caller's, for a Connection).  Idempotent; run it after installing the
    triggers, and again after a migration that created audited tables or partitions.

    With CDC tables, writers get ``INSERT (settings)`` on the context table and nothing else
    on it or on the decoder's progress table (``render.cdc.context_grants``); run it again
    after the consumer created its progress table.

    Raises ``sqlalchemy.exc.DBAPIError`` (SQLSTATE 0LP01) naming a writer that no REVOKE can
    restrict, before anything is committed."""
    if isinstance(bind, sa.Engine):
        with bind.begin() as connection:
            grant_least_privilege(
                connection, metadata, writers=writers, readers=readers, owner=owner
            )
        return
    specs = [resolve_spec(bind, declared) for _, declared in audited_tables(metadata)]
    execute_statements(bind, _statements(metadata, specs, writers, readers, owner))
