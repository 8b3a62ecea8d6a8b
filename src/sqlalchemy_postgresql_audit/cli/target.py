"""Find the user's models: ``MODULE:ATTRIBUTE`` to a MetaData with its auditing declared."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from sqlalchemy import MetaData, Table

from ..declare.audit_table import AUDIT_TABLE_KEY, IS_AUDIT_TABLE_KEY, SPEC_KEY
from ..declare.declaration import declare_metadata
from ..declare.spec import AuditSpec
from ..install.ddl import audited_tables
from ..listeners import enable
from ..render import FALLBACK_SCHEMA
from ..render.sql import name_text
from .base import CliError
from .names import split_table_name, table_key

EXAMPLE = "myapp.models:Base.metadata"


def load_metadata(reference: str) -> MetaData:
    """Import the module, follow the dotted attribute, declare auditing on what it holds.

    The attribute may be a ``MetaData`` or a declarative base class (its ``metadata`` is used).
    The working directory is importable, as it is for ``python -m``.
    """
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise CliError(f"{reference!r} is not MODULE:ATTRIBUTE (for example {EXAMPLE})")
    enable()
    target: object = _import(module_name)
    walked = module_name
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CliError(f"{walked} has no attribute {part!r}") from None
        walked = f"{walked}{':' if walked == module_name else '.'}{part}"
    if isinstance(target, type):  # a declarative base class
        target = getattr(target, "metadata", target)
    if not isinstance(target, MetaData):
        raise CliError(
            f"{reference} is a {type(target).__name__}, not a MetaData or a declarative base"
        )
    declare_metadata(target)
    return target


def _import(module_name: str) -> ModuleType:
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise CliError(
                f"no module named {missing!r} (is it installed, or on PYTHONPATH?)"
            ) from error
        raise CliError(f"importing {module_name} failed: {error}") from error
    except Exception as error:
        raise CliError(
            f"importing {module_name} failed: {type(error).__name__}: {error}"
        ) from error


def audited(
    metadata: MetaData, reference: str, names: Sequence[str] = ()
) -> list[tuple[Table, AuditSpec]]:
    """The audited tables named (all of them when none is), with their specs.

    A name that is not a table of ``metadata``, or a table that is not audited, is an error.
    """
    if not names:
        pairs = list(audited_tables(metadata))
        if not pairs:
            raise CliError(
                f"{reference} has no audited table (declare info={{'audit.options': "
                "{'enabled': True}} on a table, and import the modules defining the models)"
            )
        return pairs
    chosen = []
    for name in names:
        table = metadata.tables.get(name)
        if table is None:
            table = _table(metadata, reference, name)
        spec = table.info.get(SPEC_KEY)
        if not isinstance(spec, AuditSpec):
            source = table.info.get(IS_AUDIT_TABLE_KEY)
            why = f"it is the audit table of {source}" if source else "it is not audited"
            raise CliError(f"table {name!r} of {reference}: {why}")
        chosen.append((table, spec))
    return chosen


def _table(metadata: MetaData, reference: str, name: str) -> Table:
    """The table a typed name means: ``schema.name`` also finds a table declared without a
    schema when ``schema`` is ``public``, where such a table lives by default (as ``check``
    and ``maintain`` print it)."""
    table = metadata.tables.get(table_key(name))
    if table is not None:
        return table
    schema, bare = split_table_name(name)
    unqualified = metadata.tables.get(bare) if schema is not None else None
    if unqualified is not None and schema == FALLBACK_SCHEMA:
        return unqualified
    if unqualified is not None:
        raise CliError(
            f"{reference} has no table {name!r}: its table {bare!r} is declared without a "
            f"schema; name it {bare!r}"
        )
    raise CliError(f"{reference} has no table {name!r}")


def audit_table_name(source: Table) -> str:
    """``schema.name`` (or ``name``) of the audit table of audited ``source``."""
    audit: Table = source.info[AUDIT_TABLE_KEY]
    return name_text(audit.schema, audit.name)
