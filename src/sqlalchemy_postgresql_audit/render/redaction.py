"""The SQL of redaction at write time: the recorded form of a redacted column, and its key table.

``mask`` records a NULL of the column's own type.  ``hash`` records a keyed HMAC-SHA256 of the
value's text form (``value::text``, encoded as UTF-8), computed without any extension as
``sha256(outer_pad || sha256(inner_pad || message))`` (RFC 2104) and prefixed with one byte, the
key version, so a recorded digest names the key it was made with and keys can be rotated
without touching history.  The pads of every key version live in one key table per schema
holding audit tables, owned by the audit owner and readable by nobody else: the trigger function
is SECURITY DEFINER and reads it as its owner; writers cannot.  ``omit`` records nothing (the
template leaves the column out).
"""

from __future__ import annotations

from ..declare.spec import AuditSpec
from .sql import dollar_quote, literal, qualified, quote, regclass

#: The key table's name, in each schema holding audit tables with hashed columns.
KEY_TABLE = "audit_redaction_key"
#: The key table's comment.  It ends like an audit table's, so what keeps audit tables safe
#: keeps it too: Alembic autogenerate never drops it, and it cannot be audited itself.
KEY_TABLE_COMMENT = "Redaction keys of the audit tables (sqlalchemy-postgresql-audit)"
#: The digest's first byte holds the key version, so there are at most 255 versions.
MAX_KEY_VERSION = 255
#: HMAC-SHA256's block size: keys are padded (or first hashed) to it.
BLOCK_SIZE = 64
INNER_PAD_BYTE = 0x36
OUTER_PAD_BYTE = 0x5C


def key_table(schema: str | None) -> str:
    return qualified(schema, KEY_TABLE)


def redacted_value(spec: AuditSpec, column: str, value: str) -> str:
    """What the trigger records for ``column`` whose value is the SQL expression ``value``:
    ``value`` itself unless the column is masked or hashed."""
    form = spec.redaction(column)
    if form == "mask":
        # The column's type, never its value: a bare NULL would be typed text in the UNION ALL
        # that copies rows a TRUNCATE removes.  The planner folds it to a constant.
        return f"CASE WHEN false THEN {value} END"
    if form == "hash":
        return hmac_expression(spec.schema, value)
    return value


def hmac_expression(schema: str | None, value: str) -> str:
    """The key version byte and HMAC-SHA256 of ``value``'s text, with the newest key of
    ``schema``'s key table (NULL for a NULL value).

    The key lookups are uncorrelated subqueries: a statement-level trigger evaluates them once
    per statement.  A missing key fails the write (a setting nobody defines is read), rather
    than record NULL where a value was.
    """

    def newest(expression: str) -> str:
        return (
            f"(SELECT {expression} FROM {key_table(schema)} AS k "
            "ORDER BY k.version DESC LIMIT 1)"
        )

    missing = literal(missing_key_setting(schema))
    version = (
        f"COALESCE({newest('pg_catalog.substr(pg_catalog.int2send(k.version), 2)')}, "
        f"pg_catalog.decode(pg_catalog.current_setting({missing}), 'hex'))"
    )
    message = f"pg_catalog.convert_to(({value})::pg_catalog.text, 'UTF8')"
    inner = f"pg_catalog.sha256({newest('k.inner_pad')} OPERATOR(pg_catalog.||) {message})"
    outer = f"pg_catalog.sha256({newest('k.outer_pad')} OPERATOR(pg_catalog.||) {inner})"
    return f"({version} OPERATOR(pg_catalog.||) {outer})"


def missing_key_setting(schema: str | None) -> str:
    """A setting nobody defines, read where a key is missing: its name is the error message."""
    return f"audit.no redaction key in {key_table(schema)}, see rotate_redaction_key".replace(
        '"', ""
    )


def install_key_table(schema: str | None) -> tuple[str, ...]:
    """Create ``schema``'s key table if missing, readable by nobody but its owner, holding a
    first key made from the server's strong random source (``gen_random_uuid``) if it has none.

    Idempotent; never drops or replaces a key (recorded digests need theirs to be checked).
    """
    table = key_table(schema)
    version = MAX_KEY_VERSION
    pads = "".join(
        f"  {pad} pg_catalog.bytea NOT NULL CHECK (pg_catalog.length({pad}) = {BLOCK_SIZE}),\n"
        for pad in ("inner_pad", "outer_pad")
    )
    create = (
        f"CREATE TABLE IF NOT EXISTS {table} (\n"
        f"  version pg_catalog.int2 PRIMARY KEY CHECK (version BETWEEN 1 AND {version}),\n"
        f"{pads}  created_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()\n)"
    )
    body = (
        "\nDECLARE\n  key pg_catalog.bytea;\n  inner_pad pg_catalog.bytea;\n"
        "  outer_pad pg_catalog.bytea;\nBEGIN\n"
        f"  IF EXISTS (SELECT FROM {table}) THEN\n    RETURN;\n  END IF;\n"
        "  key := pg_catalog.sha256(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())\n"
        "      OPERATOR(pg_catalog.||) pg_catalog.uuid_send(pg_catalog.gen_random_uuid()))\n"
        "    OPERATOR(pg_catalog.||) pg_catalog.decode(pg_catalog.repeat('00', 32), 'hex');\n"
        "  inner_pad := key;\n  outer_pad := key;\n"
        f"  FOR i IN 0..{BLOCK_SIZE - 1} LOOP\n"
        "    inner_pad := pg_catalog.set_byte(inner_pad, i,\n"
        f"      pg_catalog.get_byte(key, i) OPERATOR(pg_catalog.#) {INNER_PAD_BYTE});\n"
        "    outer_pad := pg_catalog.set_byte(outer_pad, i,\n"
        f"      pg_catalog.get_byte(key, i) OPERATOR(pg_catalog.#) {OUTER_PAD_BYTE});\n"
        "  END LOOP;\n"
        f"  INSERT INTO {table} (version, inner_pad, outer_pad) VALUES (1, inner_pad, outer_pad)\n"
        "    ON CONFLICT DO NOTHING;\nEND\n"
    )
    return (
        create,
        f"COMMENT ON TABLE {table} IS {literal(KEY_TABLE_COMMENT)}",
        f"REVOKE ALL ON TABLE {table} FROM PUBLIC",
        f"DO {dollar_quote(body)}",
    )


def lock_key_table(schema: str | None) -> str:
    """One rotation at a time: the lock conflicts with itself, not with writers' reads."""
    return f"LOCK TABLE {key_table(schema)} IN SHARE ROW EXCLUSIVE MODE"


def key_table_grants(schema: str | None, owner: str | None) -> tuple[str, ...]:
    """The grant step's part for the key table: it goes to ``owner`` (the role the trigger
    function runs as), and every other role loses every right on it, whoever granted it."""
    table = key_table(schema)
    statements = [f"ALTER TABLE {table} OWNER TO {quote(owner)}"] if owner else []
    # Column grants (attacl) count too: REVOKE ALL ON TABLE takes them with the table's.
    body = (
        "\nDECLARE\n  revoke_sql text;\nBEGIN\n  FOR revoke_sql IN\n"
        "    SELECT DISTINCT pg_catalog.format('REVOKE ALL ON TABLE %s FROM %s CASCADE',\n"
        "        c.oid::pg_catalog.regclass,\n"
        "        CASE a.grantee WHEN 0 THEN 'PUBLIC'\n"
        "          ELSE a.grantee::pg_catalog.regrole::text END)\n"
        "    FROM pg_catalog.pg_class c\n"
        "    LEFT JOIN pg_catalog.pg_attribute t ON t.attrelid = c.oid AND t.attnum > 0,\n"
        "      pg_catalog.aclexplode(c.relacl OPERATOR(pg_catalog.||) t.attacl) a\n"
        f"    WHERE c.oid = {regclass(schema, KEY_TABLE)} AND a.grantee <> c.relowner\n"
        "  LOOP\n    EXECUTE revoke_sql;\n  END LOOP;\nEND\n"
    )
    return (*statements, f"DO {dollar_quote(body)}")
