"""The SQL of design 1's column check: each column's type as the catalog holds it, read on the
source and on the target alike, so the consumer can refuse a replica or audit column stricter
than the source's (``cdc.column_check``).

A type is named by its schema and ``typname`` (``format_type``'s text depends on the
search_path) with the column's typmod; ``format_type`` only for the message.  A domain (or an
array of a domain, one level) also gives its base type: the audit table mirrors a domain as its
base type, a replica typed by the base accepts whatever the domain does, and a domain without
constraints accepts whatever its base does.
"""

from __future__ import annotations

#: Bound: ``tables`` (regclass texts).  One row per column of those that exist: the table's
#: name as given, the column's name, whether it is NOT NULL, its type (schema, name, typmod,
#: shown), its base type if a domain (else the same), whether it is a domain without
#: constraints (its base's values, all of them), and the labels of its enum (or of its
#: array's element enum), in order; none for any other type.
COLUMN_TYPES = (
    "SELECT n.name AS table_name, a.attname AS column_name, a.attnotnull AS not_null, "
    "tn.nspname AS type_schema, t.typname AS type_name, a.atttypmod AS typmod, "
    "pg_catalog.format_type(a.atttypid, a.atttypmod) AS shown, "
    "bn.nspname AS base_schema, b.typname AS base_name, "
    "CASE WHEN t.typtype OPERATOR(pg_catalog.=) 'd' THEN t.typtypmod "
    "WHEN e.typtype OPERATOR(pg_catalog.=) 'd' THEN e.typtypmod "
    "ELSE a.atttypmod END AS base_typmod, "
    "t.typtype OPERATOR(pg_catalog.=) 'd' AND NOT t.typnotnull AND NOT EXISTS ("
    "SELECT FROM pg_catalog.pg_constraint AS k WHERE k.contypid OPERATOR(pg_catalog.=) t.oid) "
    "AS alias, "
    "ARRAY(SELECT l.enumlabel FROM pg_catalog.pg_enum AS l "
    "WHERE l.enumtypid OPERATOR(pg_catalog.=) CASE WHEN b.typelem OPERATOR(pg_catalog.<>) 0 "
    "AND b.typlen OPERATOR(pg_catalog.=) -1 THEN b.typelem ELSE b.oid END "
    "ORDER BY l.enumsortorder) AS labels "
    "FROM pg_catalog.unnest(CAST(:tables AS pg_catalog.text[])) AS n(name) "
    "JOIN pg_catalog.pg_attribute AS a "
    "ON a.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(n.name) "
    "AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped "
    "JOIN pg_catalog.pg_type AS t ON t.oid OPERATOR(pg_catalog.=) a.atttypid "
    "JOIN pg_catalog.pg_namespace AS tn ON tn.oid OPERATOR(pg_catalog.=) t.typnamespace "
    # The element of an array (a fixed-length type with an element, such as point, is none).
    "LEFT JOIN pg_catalog.pg_type AS e ON e.oid OPERATOR(pg_catalog.=) t.typelem "
    "AND t.typlen OPERATOR(pg_catalog.=) -1 "
    "JOIN pg_catalog.pg_type AS b ON b.oid OPERATOR(pg_catalog.=) "
    "CASE WHEN t.typtype OPERATOR(pg_catalog.=) 'd' THEN t.typbasetype "
    "WHEN e.typtype OPERATOR(pg_catalog.=) 'd' THEN (SELECT d.typarray FROM pg_catalog.pg_type "
    "AS d WHERE d.oid OPERATOR(pg_catalog.=) e.typbasetype) ELSE t.oid END "
    "JOIN pg_catalog.pg_namespace AS bn ON bn.oid OPERATOR(pg_catalog.=) b.typnamespace"
)
