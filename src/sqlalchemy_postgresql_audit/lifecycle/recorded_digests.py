"""What ``check`` reads in the recorded digests of ``redact: hash`` columns.

A digest the trigger wrote is 33 bytes: the key version, then HMAC-SHA256.  A value that is not
(a column retyped to ``bytea`` by hand with ``USING email::bytea``, which keeps the plain text)
reads back as a digest all the same, of a key version taken from its first byte, so it would
pass for one unless it is counted here.  The key versions are checked where the checking role
may read the key table (the audit owner); any role can check the lengths.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..declare.spec import AuditSpec
from ..history._hashing import key_table
from ..install.compare import OK, OUTDATED, Watched
from ..render.redaction import KEY_TABLE

#: A recorded digest's length: the key version byte, then HMAC-SHA256's 32 bytes.
RECORDED_BYTES = 33


def digest_states(connection: sa.Connection, spec: AuditSpec, schema: str) -> list[Watched]:
    """One ``digests`` object per hashed column: ``outdated`` when the audit column is not
    ``bytea``, or holds values of another length or of a key version the key table lacks."""
    hashed = [r.name for r in spec.redacted if r.form == "hash"]
    if not hashed:
        return []
    types = _column_types(connection, schema, spec.audit_table, hashed)
    keys_readable = _readable(connection, schema, KEY_TABLE)
    states = []
    for name in hashed:
        shown = f"{spec.audit_table}.{name}"
        if types.get(name) != "bytea":
            reason = f"audit column {name} is {types.get(name, 'missing')}, not bytea"
            states.append(Watched("digests", shown, OUTDATED, (reason,)))
            continue
        reasons = _bad_digests(connection, spec, schema, name, keys_readable)
        states.append(Watched("digests", shown, OUTDATED if reasons else OK, tuple(reasons)))
    return states


def _bad_digests(
    connection: sa.Connection, spec: AuditSpec, schema: str, name: str, keys_readable: bool
) -> list[str]:
    audit = sa.table(spec.audit_table, sa.column(name, sa.LargeBinary), schema=schema)
    value = audit.c[name]
    wrong_length = sa.func.octet_length(value) != RECORDED_BYTES
    counts = [sa.func.count().filter(wrong_length)]
    if keys_readable:
        versions = sa.select(key_table(schema).c.version)
        unknown = sa.and_(~wrong_length, sa.func.get_byte(value, 0).not_in(versions))
        counts.append(sa.func.count().filter(unknown))
    found = connection.execute(sa.select(*counts).where(value.is_not(None))).one()
    reasons = []
    if found[0]:
        reasons.append(
            f"{found[0]} values of {name} are not {RECORDED_BYTES}-byte digests "
            "(plain values kept by a retype?)"
        )
    if keys_readable and found[1]:
        reasons.append(f"{found[1]} digests of {name} name a key version not in {KEY_TABLE}")
    return reasons


def _column_types(
    connection: sa.Connection, schema: str, table: str, names: list[str]
) -> dict[str, str]:
    attribute = sa.table(
        "pg_attribute",
        sa.column("attrelid"),
        sa.column("attname"),
        sa.column("atttypid"),
        sa.column("attisdropped"),
        schema="pg_catalog",
    )
    relation = sa.func.to_regclass(sa.func.format("%I.%I", schema, table))
    rows = connection.execute(
        sa.select(attribute.c.attname, sa.func.format_type(attribute.c.atttypid, None)).where(
            attribute.c.attrelid == relation,
            attribute.c.attname.in_(names),
            ~attribute.c.attisdropped,
        )
    )
    return {str(name): str(type_) for name, type_ in rows}


def _readable(connection: sa.Connection, schema: str, table: str) -> bool:
    relation = sa.func.to_regclass(sa.func.format("%I.%I", schema, table))
    readable = sa.case(
        (relation.is_(None), False),
        else_=sa.func.has_table_privilege(sa.cast(relation, sa.Text), "SELECT"),
    )
    return bool(connection.execute(sa.select(readable)).scalar())
