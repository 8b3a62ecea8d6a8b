"""Bench-only edits of an installed statement-mode function around moved keys (``K`` rows).

Template 2 records moved keys through the key trigger (``render.key_trigger``); its function has
a ``TG_LEVEL = 'ROW'`` branch for it, and keeps the anti-join over the transition tables for
partitioned tables only.  Two variants rebuild other shapes from it, for measuring:

- ``cut``: no key trigger, no branch, no anti-join: what recording no moved key at all costs;
- ``anti_join``: no key trigger, the anti-join on every call: the function as template 2 had it
  before the key trigger (the same run's "before").
"""

from __future__ import annotations

import re

import sqlalchemy as sa

_ROW_BRANCH = r"(?s)IF TG_LEVEL = 'ROW' THEN\n.*?RETURN NULL;\n    END IF;\n    "
_GATE = r"(?s)IF pg_catalog\.pg_partition_root\(TG_RELID\) IS NOT NULL THEN\n(.*?END IF;\n)    END IF;\n"


def reshape(connection: sa.Connection, function: str, table: str, trigger: str, how: str) -> bool:
    """Apply ``how`` (``cut`` or ``anti_join``) to ``function`` (qualified), dropping ``trigger``
    (quoted) from ``table`` (qualified); False when the function records no moved key."""
    source = connection.exec_driver_sql(
        f"SELECT pg_get_functiondef('{function}()'::regprocedure)"
    ).scalar_one()
    source, found = re.subn(_ROW_BRANCH, "", source, count=1)
    if not found:  # no key (pgbench_history)
        return False
    source, found = re.subn(_GATE, "" if how == "cut" else r"\1", source, count=1)
    assert found, function
    connection.exec_driver_sql(f"DROP TRIGGER {trigger} ON {table}")
    connection.exec_driver_sql(source)
    return True
