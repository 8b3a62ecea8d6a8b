"""The arithmetic of seals, free of any database: row keys, column commitments, row and
segment digests, chain heads.  SECURITY.md explains the design; in short:

- each sealed segment draws a random root key; the key of the row at offset ``i`` is the leaf
  ``i`` of a binary key tree below it (GGM: a child is a keyed hash of its parent), so that one
  row's key can be destroyed (*punctured*) while every other row's key stays derivable, by
  keeping the siblings along the destroyed leaf's path instead of the root;
- each column of a row is committed to under its own key: ``k_col = PRF(k_row, column name)``,
  ``c = PRF(k_col, value)``; the row digest hashes ``audit_id``, operation, time and the
  commitments; the segment digest hashes the row digests in ``audit_id`` order;
- erasing a column keeps its commitment ``c`` and the column keys of the columns that stay,
  and punctures the row's key: the row still verifies, and nothing left can test a guess of
  the erased value (its column key is gone, and with it every way to recompute ``c``).

The PRF is keyed BLAKE2b (RFC 7693), which is a PRF by design and needs one hash per call
where HMAC needs two; digests and heads are SHA-256.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
from collections.abc import Sequence

KEY_BYTES = 32
#: Bytes of a row digest kept in a segment's row index (to name the first row that differs).
TAG_BYTES = 8
#: Bytes of a row's offset from its segment's ``range_low`` in the row index.
OFFSET_BYTES = 4
ROW_INDEX_ENTRY = OFFSET_BYTES + TAG_BYTES
GENESIS = bytes(32)


def prf(key: bytes, message: bytes, person: bytes) -> bytes:
    return hashlib.blake2b(message, key=key, digest_size=KEY_BYTES, person=person).digest()


def new_root_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def tree_depth(range_low: int, range_high: int) -> int:
    """Levels of the key tree of a segment covering ``audit_id`` in ``(range_low, range_high]``."""
    return max(0, range_high - range_low - 1).bit_length()


class KeyTree:
    """The key tree of one segment, as its frontier: ``{(depth, prefix): key}``.

    A fresh tree's frontier is its root ``(0, 0)``.  A leaf's key is derived from the frontier
    node above it; a punctured leaf has none.  ``leaf`` caches the last path it walked, so
    reading the leaves in order costs about two PRF calls each.
    """

    def __init__(self, depth: int, frontier: dict[tuple[int, int], bytes]) -> None:
        self.depth = depth
        self.frontier = dict(frontier)
        self._levels = sorted({level for level, _ in self.frontier})
        self._path: dict[int, tuple[int, bytes]] = {}

    def _ancestor(self, leaf: int) -> tuple[int, bytes] | None:
        for level in self._levels:
            key = self.frontier.get((level, leaf >> (self.depth - level)))
            if key is not None:
                return level, key
        return None

    def leaf(self, leaf: int) -> bytes | None:
        """The key of ``leaf``, or ``None`` when it was punctured."""
        found = self._ancestor(leaf)
        if found is None:
            return None
        level, key = found
        for deeper in range(self.depth, level, -1):
            cached = self._path.get(deeper)
            if cached is not None and cached[0] == leaf >> (self.depth - deeper):
                level, key = deeper, cached[1]
                break
        for here in range(level, self.depth):
            shift = self.depth - here - 1
            key = _child(key, (leaf >> shift) & 1)
            self._path[here + 1] = (leaf >> shift, key)
        return key

    def puncture(self, leaf: int) -> bytes | None:
        """Destroy ``leaf``'s key (returned, for the last use the caller makes of it): its
        frontier ancestor is replaced by the siblings along the path down to it."""
        found = self._ancestor(leaf)
        if found is None:
            return None
        level, key = found
        del self.frontier[(level, leaf >> (self.depth - level))]
        for here in range(level, self.depth):
            shift = self.depth - here - 1
            bit = (leaf >> shift) & 1
            self.frontier[(here + 1, (leaf >> shift) ^ 1)] = _child(key, bit ^ 1)
            key = _child(key, bit)
        # The removed node's level may be empty now; looking there finds nothing, harmlessly.
        self._levels = sorted({*self._levels, *range(level + 1, self.depth + 1)})
        self._path.clear()
        return key


def _child(key: bytes, bit: int) -> bytes:
    return prf(key, b"\x01" if bit else b"\x00", b"audit-tree")


_COLUMN = b"audit-column"
_VALUE = b"audit-value"


def column_key(row_key: bytes, column: str) -> bytes:
    return prf(row_key, column.encode(), _COLUMN)


def commitment(key: bytes, value: str | None) -> bytes:
    """A commitment to a value's canonical text (NULL distinct from every text)."""
    encoded = b"\x00" if value is None else b"\x01" + value.encode()
    return prf(key, encoded, _VALUE)


def _field(value: str) -> bytes:
    data = value.encode()
    return len(data).to_bytes(4, "big") + data


def row_digest(audit_id: int, operation: str, moment: str, commitments: Sequence[bytes]) -> bytes:
    digest = hashlib.sha256(b"audit-row\x00")
    digest.update(_field(str(audit_id)) + _field(operation) + _field(moment))
    for item in commitments:
        digest.update(item)
    return digest.digest()


def row_commitments(
    row_key: bytes, columns: Sequence[str], values: Sequence[str | None]
) -> list[bytes]:
    """``commitment(column_key(row_key, c), v)`` of each column, inlined: this is the loop
    sealing and verifying spend their time in."""
    blake2b = hashlib.blake2b
    found = []
    for column, value in zip(columns, values, strict=True):
        key = blake2b(column.encode(), key=row_key, digest_size=KEY_BYTES, person=_COLUMN).digest()
        encoded = b"\x00" if value is None else b"\x01" + value.encode()
        found.append(blake2b(encoded, key=key, digest_size=KEY_BYTES, person=_VALUE).digest())
    return found


def moment_text(moment: datetime.datetime | None) -> str:
    return "" if moment is None else moment.astimezone(datetime.timezone.utc).isoformat()


def chain_head(prev_head: bytes, fields: Sequence[object]) -> bytes:
    """The head after a record: SHA-256 of the previous head and the record's fields."""
    digest = hashlib.sha256(b"audit-chain\x00" + prev_head)
    for item in fields:
        if isinstance(item, bytes):
            digest.update(len(item).to_bytes(4, "big") + item)
        elif isinstance(item, datetime.datetime) or item is None:
            digest.update(_field(moment_text(item)))
        elif isinstance(item, (list, tuple)):
            digest.update(len(item).to_bytes(4, "big"))
            for part in item:
                digest.update(_field(str(part)))
        else:
            digest.update(_field(str(item)))
    return digest.digest()
