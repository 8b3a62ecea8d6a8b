"""Audited tables for ``activity()`` and the ``activity`` command (``activity_models:metadata``).

Four tables that differ where a union over their audit tables must reconcile them: ``case_id``
is a UUID in one and text in another, ``shard`` exists in one only, ``notes`` records no
setting at all, ``line_items`` has a composite key, and ``books.ledger`` lives in its own
schema with legacy (time zone naive) timestamps.
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA = "books"


def _audited(*settings: sa.Column[object], **options: object) -> dict[str, object]:
    return {"audit.options": {"enabled": True, "session_settings": list(settings), **options}}


metadata = sa.MetaData()
accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.String, nullable=False),
    info=_audited(
        sa.Column("username", sa.String),
        sa.Column("case_id", sa.UUID),
        capture=["changed_columns"],
    ),
)
line_items = sa.Table(
    "line_items",
    metadata,
    sa.Column("order_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("line", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("qty", sa.Numeric(10, 2), nullable=False),
    info=_audited(
        sa.Column("username", sa.String),
        sa.Column("case_id", sa.String),
        sa.Column("shard", sa.SmallInteger),
    ),
)
notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("body", sa.String),
    info=_audited(),
)
ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("amount", sa.Integer),
    schema=SCHEMA,
    info=_audited(sa.Column("username", sa.String), legacy_timestamp=True),
)
