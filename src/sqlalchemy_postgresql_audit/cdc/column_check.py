"""Design 1: refuse, at the consumer's start, a target column stricter than the source's.

The replica and audit tables are made from the models, not from the source: a model typing a
column more strictly than the source does (``String(5)`` on ``text``, ``nullable=False`` on a
nullable column, an enum lacking a label) makes the apply worker fail at the first row that
does not fit and retry for ever, stopping every CDC table's trail; one that changes values
(``timestamp`` for ``timestamptz``, ``numeric(10,2)`` for ``numeric(12,4)``) distorts the trail
silently.  So every column both sides have is compared, the target's as its catalog holds it
(a replica made by an earlier release may differ from the models).  A column on one side only
is a migration in flight, and a source table not made yet has nothing to compare.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, text

from ..declare.audit_table import AUDIT_TABLE_KEY
from ..declare.spec import AuditSpec
from ..render import cdc_types as types_sql
from ..render.sql import name_text
from .errors import CdcError

#: Types whose longer typmod only admits more values (a maximal length).
_LENGTH_TYPES = frozenset({"varchar", "_varchar", "varbit", "_varbit"})
#: Source types whose values an unconstrained ``text`` or ``varchar`` holds unchanged (not
#: ``char(n)``: its trailing blanks are dropped on the way to text).
_TEXTS = {"text": ("text", "varchar"), "_text": ("_text", "_varchar")}
_TEXTS["varchar"], _TEXTS["_varchar"] = _TEXTS["text"], _TEXTS["_text"]
#: Wider integers hold every value of narrower ones (a model moved to ``BigInteger`` before
#: the migration that widens the source).
_WIDER_INTEGERS = {"int2": ("int4", "int8"), "int4": ("int8",)}
_WIDER_INTEGERS |= {f"_{k}": tuple(f"_{t}" for t in v) for k, v in _WIDER_INTEGERS.items()}
_NUMERICS = frozenset({"numeric", "_numeric"})


@dataclass(frozen=True, slots=True)
class _Type:
    schema: str
    name: str
    typmod: int


@dataclass(frozen=True, slots=True)
class _Column:
    not_null: bool
    type: _Type
    base: _Type
    #: A domain without constraints: it holds every value of its base.
    alias: bool
    shown: str
    labels: tuple[str, ...]


def refuse_stricter_columns(
    source: Connection, target: Connection, pairs: Sequence[tuple[Table, AuditSpec]]
) -> None:
    """Raise ``CdcError`` naming every replica or audit column of ``pairs`` on the target that
    the source's values of it may not fit, or fit only changed."""
    compared: list[tuple[str, str, Iterable[str] | None]] = []  # (source, target, columns)
    for table, spec in pairs:
        audit = table.info[AUDIT_TABLE_KEY]
        name = name_text(table.schema, table.name)
        # The audit table's own columns are no source's (CDC mode has no redaction).
        audited = name_text(audit.schema, audit.name)
        compared += [(name, name, None), (name, audited, spec.columns)]
    sources = _columns(source, sorted({s for s, _, _ in compared}))
    targets = _columns(target, sorted({t for _, t, _ in compared}))
    problems: list[str] = []
    for source_name, target_name, only in compared:
        have, got = sources.get(source_name, {}), targets.get(target_name, {})
        for column in sorted(set(have) & set(got) & set(only if only is not None else got)):
            problem = _problem(have[column], got[column])
            if problem:
                problems.append(
                    f"{target_name}.{column} is {got[column].shown} where the source's "
                    f"{source_name}.{column} is {have[column].shown}{problem}"
                )
    if problems:
        raise CdcError(
            "on the target, " + "; ".join(problems) + ": the apply worker would fail at the "
            "first row that does not fit and retry for ever, stopping every CDC table's trail "
            "(or change the values silently). Make the models type these columns as the "
            "source does, and alter a target column that an earlier run made from other "
            "models (ALTER TABLE ... ALTER COLUMN ... TYPE/DROP NOT NULL)"
        )


def _columns(connection: Connection, tables: list[str]) -> dict[str, dict[str, _Column]]:
    """``{table: {column: what the catalog says}}`` of those of ``tables`` that exist."""
    found: dict[str, dict[str, _Column]] = {}
    rows = connection.execute(text(types_sql.COLUMN_TYPES), {"tables": tables}).mappings()
    for row in rows:
        found.setdefault(row["table_name"], {})[row["column_name"]] = _column(row)
    return found


def _column(row: Any) -> _Column:
    return _Column(
        not_null=row["not_null"],
        type=_Type(row["type_schema"], row["type_name"], row["typmod"]),
        base=_Type(row["base_schema"], row["base_name"], row["base_typmod"]),
        alias=row["alias"],
        shown=row["shown"] + (" NOT NULL" if row["not_null"] else ""),
        labels=tuple(row["labels"]),
    )


def _problem(source: _Column, target: _Column) -> str:
    """What is wrong with ``target`` holding ``source``'s values ("" when nothing)."""
    if target.not_null and not source.not_null:
        return " (the source allows NULL)"
    holds = (target.type, target.base) if target.alias else (target.type,)
    if not any(_fits(s, t) for s in (source.type, source.base) for t in holds):
        return " (another type, or a stricter modifier)"
    missing = [label for label in source.labels if label not in target.labels]
    if missing:
        return f" (the target's enum lacks {', '.join(map(repr, missing))})"
    return ""


def _fits(source: _Type, target: _Type) -> bool:
    """Whether every value of ``source`` is one of ``target``, unchanged: the same type with no
    modifier or the same, a longer maximal length, more precision at the same scale, a wider
    integer, or ``text`` and ``varchar`` for each other when the target has no length."""
    builtin = source.schema == target.schema == "pg_catalog"
    if (source.schema, source.name) == (target.schema, target.name):
        if target.typmod in (-1, source.typmod):
            return True
        if builtin and source.name in _NUMERICS:
            return _more_digits(source.typmod, target.typmod)
        return builtin and source.name in _LENGTH_TYPES and -1 < source.typmod <= target.typmod
    if builtin and target.name in _WIDER_INTEGERS.get(source.name, ()):
        return True
    return builtin and target.typmod == -1 and target.name in _TEXTS.get(source.name, ())


def _more_digits(source: int, target: int) -> bool:
    """``numeric(p, s)`` modifiers: the same scale, at least as much precision (``numeric``
    stores ``((p << 16) | s) + 4``)."""
    if source < 0:
        return False
    source, target = source - 4, target - 4
    return (source & 0xFFFF) == (target & 0xFFFF) and (target >> 16) >= (source >> 16)
