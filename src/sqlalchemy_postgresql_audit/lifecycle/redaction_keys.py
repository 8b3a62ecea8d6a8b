"""Redaction keys: rotate the key ``hash`` columns are digested with, and check a candidate.

Each schema holding audit tables with hashed columns has one key table (``render.redaction``):
a row per key version holding HMAC-SHA256's inner and outer padded keys.  The trigger digests
with the newest version and records its number as the digest's first byte, so rotating never
touches recorded history and every recorded digest stays checkable with the key it was made
with.  Reading the key table takes the audit owner (or a superuser): writers and readers cannot,
so only the owner can test guesses against recorded digests.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ..declare.spec import AuditSpec
from ..errors import AuditError
from ..history._hashing import hmac_of, key_table
from ..history._redacted import Hashed
from ..history._target import audited
from ..install.ddl import audited_tables, execute_statements, resolve_spec
from ..render.redaction import (
    BLOCK_SIZE,
    INNER_PAD_BYTE,
    MAX_KEY_VERSION,
    OUTER_PAD_BYTE,
    install_key_table,
    lock_key_table,
    message_domain,
)
from ..render.sql import FALLBACK_SCHEMA

#: A generated key's length, and the shortest key accepted: HMAC-SHA256's output size.
KEY_BYTES = 32


def padded_keys(key: bytes) -> tuple[bytes, bytes]:
    """HMAC's inner and outer padded keys (RFC 2104): the key, hashed first when longer than
    a block, zero-filled to a block, XORed with 0x36 and 0x5c."""
    if len(key) > BLOCK_SIZE:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK_SIZE, b"\0")
    return bytes(b ^ INNER_PAD_BYTE for b in key), bytes(b ^ OUTER_PAD_BYTE for b in key)


def _hashing_schemas(
    bind: sa.Connection, target: sa.MetaData | sa.Table
) -> dict[str, tuple[str, ...]]:
    """{schema: the trigger functions of its tables with hashed columns} (their owner may own
    the key table)."""
    if isinstance(target, sa.MetaData):
        specs = [spec for _, spec in audited_tables(target)]
    else:
        specs = [audited(target).spec]
    schemas: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        if spec.hashes:
            schema = resolve_spec(bind, spec).schema or FALLBACK_SCHEMA
            schemas[schema] = (*schemas.get(schema, ()), spec.function)
    if not schemas:
        raise AuditError(f"{_name(target)} has no column redacted with 'hash': no key to rotate")
    return dict(sorted(schemas.items()))


def _name(target: sa.MetaData | sa.Table) -> str:
    return "metadata" if isinstance(target, sa.MetaData) else f"table {target.fullname!r}"


def rotate_redaction_key(
    bind: sa.Connection | sa.Engine,
    target: sa.MetaData | sa.Table,
    key: bytes | None = None,
) -> dict[str, int]:
    """Add a new key version for every schema holding ``target``'s hashed columns (a
    ``MetaData``: every audited table of it) and return {schema: new version}.

    From the next write on, hashes use the new key; recorded digests keep theirs (their first
    byte names it), so ``matches_hash`` still checks them.  ``key``: at least 32 bytes you keep
    elsewhere (to check hashes outside the database, or to re-create the key table); by default
    32 random bytes that exist only in the key table.  Run it as the audit owner.  Versions go
    up to 255.
    """
    if key is not None and (not isinstance(key, bytes) or len(key) < KEY_BYTES):
        raise ValueError(f"rotate_redaction_key: key must be at least {KEY_BYTES} bytes")
    if isinstance(bind, sa.Engine):
        with bind.begin() as connection:
            return rotate_redaction_key(connection, target, key)
    versions: dict[str, int] = {}
    for schema, functions in _hashing_schemas(bind, target).items():
        execute_statements(bind, install_key_table(schema, functions))
        table = key_table(schema)
        # One rotation at a time per schema; writers (reading the table) are not blocked.
        bind.execute(sa.text(lock_key_table(schema)))
        newest = bind.execute(sa.select(sa.func.max(table.c.version))).scalar_one()
        version = int(newest or 0) + 1
        if version > MAX_KEY_VERSION:
            raise AuditError(
                f"schema {schema!r} has {MAX_KEY_VERSION} redaction key versions, the most a "
                "digest's version byte can name"
            )
        inner, outer = padded_keys(key if key is not None else os.urandom(KEY_BYTES))
        bind.execute(sa.insert(table).values(version=version, inner_pad=inner, outer_pad=outer))
        versions[schema] = version
    return versions


def matches_hash(
    bind: sa.Connection | sa.Engine,
    table: Any,
    column: str,
    candidate: object,
    recorded: Hashed | bytes | memoryview | str | Mapping[str, Any] | None,
) -> bool:
    """Whether ``candidate`` is the value whose digest ``recorded`` is, in ``table``'s (a
    ``Table`` or ORM class) hashed ``column``.

    The candidate is cast to the column's type on the server and digested as the trigger
    digests (its text form, UTF-8, after the table's and column's names), with the key version
    ``recorded`` names; so ``"A@x"`` does
    not match a recorded ``"a@x"`` and an ``Integer`` column matches ``7`` and ``"7"`` alike.
    ``recorded`` is what the trail holds: a ``Hashed`` (the history API), the raw ``bytes``
    of the audit column, their hex text (also PostgreSQL's ``\\x...`` form), or the CLI's
    ``--json`` object ``{"hash": {"key_version": 1, "digest": "<hex>"}}``.  The shortened
    ``[hash:v1:…]`` the CLI prints in tables cannot be checked: it is refused with a
    ``ValueError``, as is anything else.
    A recorded NULL (the column was NULL when written) matches only a ``None`` candidate:
    ``recorded=None`` answers ``candidate is None`` without reading the key.  Needs to read the
    key table: run it as the audit owner.
    """
    target = audited(table)
    if target.spec.redaction(column) != "hash":
        raise ValueError(f"table {target.name!r}: column {column!r} is not redacted with 'hash'")
    if recorded is None or candidate is None:
        return recorded is None and candidate is None
    hashed = recorded_as_hashed(target.name, column, recorded)
    if isinstance(bind, sa.Engine):
        with bind.connect() as connection:
            return _matches(connection, target.spec, target.source, column, candidate, hashed)
    return _matches(bind, target.spec, target.source, column, candidate, hashed)


#: A recorded digest's length: the key version byte, then HMAC-SHA256's 32 bytes.
RECORDED_BYTES = 1 + hashlib.sha256().digest_size


def recorded_as_hashed(table: str, column: str, recorded: object) -> Hashed:
    """``recorded`` in any form the library shows it, as a ``Hashed``; a clear error otherwise."""
    where = f"matches_hash: table {table!r}, column {column!r}: recorded"
    if isinstance(recorded, Hashed):
        return recorded
    if isinstance(recorded, Mapping):  # the CLI's --json: {"hash": {"key_version", "digest"}}
        shown = recorded.get("hash", recorded)
        try:
            version, digest = int(shown["key_version"]), bytes.fromhex(shown["digest"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{where} {recorded!r} is not the CLI's hash object "
                '{"hash": {"key_version": N, "digest": HEX}}'
            ) from None
        if not 0 < version <= MAX_KEY_VERSION:
            raise ValueError(f"{where} names key version {version}, not 1..{MAX_KEY_VERSION}")
        recorded = bytes([version]) + digest
    if isinstance(recorded, str):
        text = recorded.strip()
        if text.startswith("[hash:"):
            raise ValueError(
                f"{where} {recorded!r} is the shortened form shown in tables; pass the Hashed "
                "from history(), the column's bytes, or the full hex the CLI's --json prints"
            )
        try:
            recorded = bytes.fromhex(text.removeprefix("\\x"))
        except ValueError:
            raise ValueError(f"{where} {recorded!r} is not hex text of a digest") from None
    if not isinstance(recorded, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"{where} must be a Hashed, bytes, hex text or the CLI's hash object, "
            f"got {type(recorded).__name__}"
        )
    raw = bytes(recorded)
    if len(raw) != RECORDED_BYTES:
        raise ValueError(
            f"{where} is {len(raw)} bytes; a recorded digest is {RECORDED_BYTES} (a key version "
            "byte, then HMAC-SHA256)"
        )
    return Hashed.from_recorded(raw)


def _matches(
    bind: sa.Connection,
    spec: AuditSpec,
    source: sa.Table,
    column: str,
    candidate: object,
    hashed: Hashed,
) -> bool:
    schema = resolve_spec(bind, spec).schema or FALLBACK_SCHEMA
    keys = key_table(schema)
    type_ = source.c[column].type
    candidate_value = sa.cast(sa.bindparam("candidate", candidate, type_=type_), type_)
    domain = message_domain(spec.table, column)
    digests = (
        hmac_of(keys.c.inner_pad, keys.c.outer_pad, candidate_value, domain),
        # Digests recorded before the message held the table's and column's names.
        hmac_of(keys.c.inner_pad, keys.c.outer_pad, candidate_value, b""),
    )
    found = bind.execute(
        sa.select(*digests).where(keys.c.version == hashed.key_version)
    ).one_or_none()
    if found is None:
        raise AuditError(f"schema {schema!r} has no redaction key version {hashed.key_version}")
    matches = [hmac.compare_digest(bytes(digest), hashed.digest) for digest in found]
    return any(matches)
