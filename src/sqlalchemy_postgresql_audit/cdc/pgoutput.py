"""A parser of PostgreSQL's built-in ``pgoutput`` logical decoding protocol (version 1, text
values), as the SQL interface returns it.

Values stay in the bytes of the type's text output: the decoder passes them straight into
``COPY ... FROM STDIN`` (text format), whose input is the same text, so no value is ever
converted to a Python object.  The issue measured that conversion as what dominates a
straightforward decoder (12-15k changes/s end to end, against 28.6k/s without it).

Messages (PostgreSQL's "Logical Replication Message Formats"): ``B`` begin, ``C`` commit,
``R`` relation, ``I``/``U``/``D`` row changes, ``T`` truncate; ``Y`` (type) and ``O`` (origin)
carry nothing the decoder needs and are skipped.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from struct import Struct
from typing import IO, Final, NamedTuple

#: A column whose value an UPDATE did not send: an unchanged TOASTed value (``u``).
UNCHANGED: Final = b"\x00unchanged-toast"
#: One row's values: text output bytes, ``None`` for NULL, or ``UNCHANGED``.
Values = Sequence[bytes | None]

#: Where PostgreSQL's timestamps count from.
POSTGRES_EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)

_BEGIN = Struct("!qqI")
_COMMIT = Struct("!bqqq")
_INT16 = Struct("!h")
_INT32 = Struct("!i")
_UINT32 = Struct("!I")
_RELATION_COLUMN_TAIL = Struct("!Ii")


class Begin(NamedTuple):
    final_lsn: int
    #: Microseconds since 2000-01-01 UTC: the commit time.
    commit_time: int
    xid: int


class Commit(NamedTuple):
    commit_lsn: int
    #: The end of the commit record: advancing the slot here skips the transaction.
    end_lsn: int
    commit_time: int


class Change(NamedTuple):
    #: ``I``, ``U`` or ``D``.
    kind: str
    relation: int
    #: The old row (``REPLICA IDENTITY FULL``) or its key (an UPDATE that changed the key, or
    #: a DELETE under the default identity; only key columns hold values), else ``None``.
    old: Values | None
    old_is_key: bool
    new: Values | None


class Truncate(NamedTuple):
    relations: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    schema: str
    name: str
    #: ``d`` default, ``f`` full, ``i`` index, ``n`` nothing.
    replica_identity: str
    columns: tuple[str, ...]
    key_columns: tuple[str, ...]


Message = Begin | Commit | Change | Truncate | Relation | None


def commit_datetime(commit_time: int) -> datetime.datetime:
    return POSTGRES_EPOCH + datetime.timedelta(microseconds=commit_time)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def parse_message(data: bytes) -> Message:
    """One pgoutput message; ``None`` for one the decoder has no use for."""
    kind = data[0]
    if kind in _CHANGES:
        return _change(data)
    if kind == 0x42:  # B
        final_lsn, commit_time, xid = _BEGIN.unpack_from(data, 1)
        return Begin(final_lsn, commit_time, xid)
    if kind == 0x43:  # C
        _flags, commit_lsn, end_lsn, commit_time = _COMMIT.unpack_from(data, 1)
        return Commit(commit_lsn, end_lsn, commit_time)
    if kind == 0x52:  # R
        return _relation(data)
    if kind == 0x54:  # T
        (count,) = _INT32.unpack_from(data, 1)
        relations = tuple(_UINT32.unpack_from(data, 6 + 4 * i)[0] for i in range(count))
        return Truncate(relations)
    return None


_CHANGES = {0x49: "I", 0x55: "U", 0x44: "D"}


def _change(data: bytes) -> Change:
    kind = _CHANGES[data[0]]
    (relation,) = _UINT32.unpack_from(data, 1)
    position = 5
    old: Values | None = None
    old_is_key = False
    marker = data[position]
    if marker in (0x4B, 0x4F):  # K: old key, O: old row
        old_is_key = marker == 0x4B
        old, position = parse_tuple(data, position + 1)
        marker = data[position] if position < len(data) else 0
    new: Values | None = None
    if marker == 0x4E:  # N
        new, position = parse_tuple(data, position + 1)
    return Change(kind, relation, old, old_is_key, new)


def parse_tuple(data: bytes, position: int) -> tuple[Values, int]:
    """TupleData at ``position``: the values and the position after them.  (The hot loop of
    the decoder: kinds compared as integers, text first, as nearly every value is text.)"""
    count = (data[position] << 8) | data[position + 1]
    position += 2
    values: list[bytes | None] = []
    append = values.append
    int32 = _INT32.unpack_from
    for _ in range(count):
        kind = data[position]
        if kind == 0x74 or kind == 0x62:  # t (text) or b (binary)
            start = position + 5
            position = start + int32(data, position + 1)[0]
            append(data[start:position])
        elif kind == 0x6E:  # n
            append(None)
            position += 1
        else:  # u: unchanged TOASTed value
            append(UNCHANGED)
            position += 1
    return values, position


def _string(data: bytes, position: int) -> tuple[str, int]:
    end = data.index(0, position)
    return data[position:end].decode(), end + 1


def _relation(data: bytes) -> Relation:
    (oid,) = _UINT32.unpack_from(data, 1)
    schema, position = _string(data, 5)
    name, position = _string(data, position)
    identity = chr(data[position])
    (count,) = _INT16.unpack_from(data, position + 1)
    position += 3
    columns: list[str] = []
    keys: list[str] = []
    for _ in range(count):
        flags = data[position]
        column, position = _string(data, position + 1)
        position += _RELATION_COLUMN_TAIL.size
        columns.append(column)
        if flags & 1:
            keys.append(column)
    return Relation(oid, schema or "pg_catalog", name, identity, tuple(columns), tuple(keys))


def publication_names(names: Sequence[str]) -> str:
    """``names`` as pgoutput's ``publication_names`` option, which the server reads as a list
    of identifiers (``SplitIdentifierString``): unquoted, a name would be folded to lower case
    and split at its commas.  Each is quoted, inner quotes doubled, as a quoted identifier."""
    return ",".join('"' + name.replace('"', '""') + '"' for name in names)


def copy_binary_rows(stream: IO[bytes], chunk: int = 1 << 20) -> Iterator[bytes]:
    """The single-column rows of a ``COPY ... TO STDOUT (FORMAT binary)`` stream, read from its
    start ``chunk`` bytes at a time (the stream can be as large as a transaction: neither it
    nor a list of its rows is ever held whole).

    Reading the slot through COPY binary gets each message's raw bytes, where a query returning
    ``bytea`` would send them hex-encoded (twice the bytes, decoded again by the driver).
    """
    stream.seek(19)  # past the signature (11), flags (4) and header extension length (4)
    buffer, position = b"", 0
    int16, int32 = _INT16.unpack_from, _INT32.unpack_from
    while True:
        # Each row: its field count (-1 ends the stream), then the field's length and bytes.
        held = len(buffer) - position
        if held >= 2 and int16(buffer, position)[0] < 0:
            return
        needed = 2 if held < 2 else 6 if held < 6 else 6 + int32(buffer, position + 2)[0]
        if held < needed:
            more = stream.read(max(chunk, needed - held))
            if not more:
                if held:
                    raise ValueError("a COPY binary stream ends inside a row")
                return
            buffer = buffer[position:] + more
            position = 0
            continue
        start = position + 6
        position = start + needed - 6
        yield buffer[start:position]
