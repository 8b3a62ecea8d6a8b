"""Audit rows as lines of COPY's text format, built from pgoutput's values without converting
any of them.

A ``TablePlan`` is made per relation message (so it follows columns added while the decoder
runs): which of the relation's values go into which audit column, and the COPY statement.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..declare.spec import (
    AUDIT_CURRENT_USER,
    AUDIT_OPERATION,
    AUDIT_TIMESTAMP,
    OPERATION_CODES,
    AuditSpec,
    capture_column,
)
from ..render.cdc_decoder import copy_into
from .pgoutput import UNCHANGED, Relation, Values

log = logging.getLogger(__name__)

NULL = b"\\N"
#: The capture the decoder computes per row; every other one is per transaction.
CHANGED_COLUMNS = "changed_columns"


def escape(value: bytes) -> bytes:
    """A value in COPY's text format."""
    return (
        value.replace(b"\\", b"\\\\")
        .replace(b"\t", b"\\t")
        .replace(b"\n", b"\\n")
        .replace(b"\r", b"\\r")
    )


def copy_fields(values: Sequence[bytes | None]) -> bytes:
    """Tab-separated fields; nearly every row holds nothing to escape, which one join and
    three searches tell (a tab inside a value shows as one tab too many)."""
    has_null = None in values
    joined = b"\t".join([v or b"" for v in values] if has_null else values)  # type: ignore[arg-type]
    if (
        b"\\" not in joined
        and b"\n" not in joined
        and b"\r" not in joined
        and joined.count(b"\t") == len(values) - 1
    ):
        return b"\t".join([NULL if v is None else v for v in values]) if has_null else joined
    return b"\t".join([NULL if v is None else escape(v) for v in values])


def text_array(names: Sequence[str]) -> bytes:
    """A ``text[]`` literal of column names."""
    quoted = ('"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in names)
    return ("{" + ",".join(quoted) + "}").encode()


@dataclass(frozen=True, slots=True)
class TablePlan:
    """How one relation's changes become rows of its audit table."""

    spec: AuditSpec
    relation: Relation
    #: Audit columns filled from the relation, and where each value sits in its tuples.
    mirrored: tuple[str, ...]
    positions: tuple[int, ...]
    key_positions: tuple[int, ...]
    codes: frozenset[str]
    copy_sql: str
    columns: tuple[str, ...] = field(default=())
    #: The WAL carries whole old rows (``REPLICA IDENTITY FULL``); else the trail has them.
    old_from_wal: bool = True
    #: Every column of the relation is recorded, in the relation's order.
    in_order: bool = False

    @classmethod
    def make(cls, spec: AuditSpec, relation: Relation, audit_columns: Sequence[str]) -> TablePlan:
        present = set(audit_columns)
        excluded = set(spec.exclude_columns)
        mirrored = tuple(c for c in relation.columns if c in present and c not in excluded)
        index = {c: i for i, c in enumerate(relation.columns)}
        # Only a declared key: under REPLICA IDENTITY FULL the WAL flags every column as part
        # of the identity, and a table without a key has no key to move.
        keys = spec.key_columns
        captures = [capture_column(c) for c in spec.captures if c != CHANGED_COLUMNS]
        columns = (
            AUDIT_OPERATION,
            AUDIT_TIMESTAMP,
            AUDIT_CURRENT_USER,
            *captures,
            *(s.column for s in spec.settings),
            *mirrored,
            *([capture_column(CHANGED_COLUMNS)] if CHANGED_COLUMNS in spec.captures else []),
        )
        return cls(
            spec=spec,
            relation=relation,
            mirrored=mirrored,
            positions=tuple(index[c] for c in mirrored),
            key_positions=tuple(index[k] for k in keys if k in index),
            codes=frozenset(OPERATION_CODES[t.operation] for t in spec.triggers),
            copy_sql=copy_into(spec.schema, spec.audit_table, columns),
            columns=columns,
            old_from_wal=relation.replica_identity == "f",
            in_order=mirrored == relation.columns,
        )

    @property
    def records_changed_columns(self) -> bool:
        return CHANGED_COLUMNS in self.spec.captures

    def key(self, values: Values) -> tuple[bytes | None, ...]:
        positions = self.key_positions
        if len(positions) == 1:  # the usual key: no generator for one value
            return (values[positions[0]],)
        return tuple([values[i] for i in positions])

    def prefix(self, code: str, when: bytes, transaction_id: int, context: Context) -> bytes:
        """The fields before the mirrored values: operation, time, user, captures, settings.

        The WAL knows the commit time and the transaction; who wrote, from where, and when each
        statement ran it does not: those captures are NULL unless the context row carries them.
        """
        fields: list[bytes | None] = [code.encode(), when, context.value("current_user")]
        for capture in self.spec.captures:
            if capture == "transaction_id":
                fields.append(str(transaction_id).encode())
            elif capture != CHANGED_COLUMNS:
                fields.append(context.value(capture))
        fields += [context.value(s.name) for s in self.spec.settings]
        return copy_fields(fields) + b"\t"

    def line(self, prefix: bytes, values: Values, changed: Sequence[str] | None) -> bytes:
        picked = values if self.in_order else [values[i] for i in self.positions]
        mirrored = copy_fields(picked)
        if not self.records_changed_columns:
            return prefix + mirrored + b"\n"
        tail = NULL if changed is None else escape(text_array(changed))
        return prefix + mirrored + b"\t" + tail + b"\n"

    def truncated(self, prefix: bytes, row: bytes) -> bytes:
        """A row TRUNCATE removed: ``row`` is the mirrored columns as COPY text."""
        return prefix + row + (b"\t" + NULL if self.records_changed_columns else b"") + b"\n"

    def marker(self, prefix: bytes) -> bytes:
        """A TRUNCATE marker: no values."""
        tail = [NULL] * (len(self.positions) + self.records_changed_columns)
        return prefix + b"\t".join(tail) + b"\n"

    def changed(self, old: Values, new: Values) -> list[str]:
        """Recorded columns whose text differs (an unchanged TOASTed value did not change)."""
        return [
            name
            for name, i in zip(self.mirrored, self.positions, strict=True)
            if new[i] is not UNCHANGED and new[i] != old[i]
        ]


#: What only the server can say of a writer: a ``settings`` key of one of these names is the
#: writer's claim, ignored; who wrote comes from the context row's ``writer`` column, which the
#: server fills (``current_user``) and writers cannot set.
SERVER_FACTS = frozenset({"current_user", "session_user", "client_addr"})


@dataclass(frozen=True, slots=True)
class Context:
    """The session settings (and writer facts) a transaction's context rows carried."""

    values: Mapping[str, str] = field(default_factory=dict)

    def value(self, name: str) -> bytes | None:
        value = self.values.get(name)
        return None if value is None else value.encode()

    def updated(self, columns: Sequence[str], values: Values) -> Context:
        """This context with one more context row applied.

        The row's ``settings`` column holds ``{name: text}`` of the settings it sets (``""``
        for one reset to NULL, as an empty setting reads NULL in trigger mode); a table without
        that column gives one column per setting.  Settings it does not name keep their value,
        as they do in the writer's transaction.
        """
        row = {c: v.decode() for c, v in zip(columns, values, strict=True) if isinstance(v, bytes)}
        if "settings" in columns:
            settings = json.loads(row.get("settings", "{}"))
            if not isinstance(settings, dict):
                # Written by hand: it sets nothing, and must not stop the trail either.
                log.warning("context row with settings %r, not an object: ignored", settings)
                settings = {}
            writer = row.get("writer")
            row = {
                k: v if isinstance(v, str) else json.dumps(v)
                for k, v in settings.items()
                if v is not None and k not in SERVER_FACTS
            }
            if writer is not None:
                row["current_user"] = writer
        merged = {**self.values, **row}
        return Context({k: v for k, v in merged.items() if v != ""})
