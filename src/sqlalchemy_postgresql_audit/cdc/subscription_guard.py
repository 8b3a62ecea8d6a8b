"""Design 1: the subscription states in which a join's hold would stop the trail for good.

The consumer holds the apply worker at a table that joined change-data-capture by making it
fail and retry (``render.cdc_joins``) until a run seeds the table's replica (``.join_seed``).
Two states turn that hold into a stop:

- ``disable_on_error = true`` (PostgreSQL 15+, a common hardening): the hold's first failure
  disables the subscription;
- a disabled subscription: it is neither refreshed (``Replica.refresh``) nor applies anything,
  so the join is never seeded, and no change of any CDC table reaches the trail.

Each run refuses them before it waits, saying why and which statement lets the trail go on.
``disable_on_error`` is refused rather than reset: it is the operator's setting, made on
purpose (often by a policy or a provisioning tool that would set it again), and a consumer
that quietly undid it would hide that the subscription is no longer what they declared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Row, text

from ..declare.cdc import CdcNames
from ..render import cdc as sql
from ..render import cdc_subscription as settings_sql
from .errors import CdcError
from .joins import pending

#: The first version with ``disable_on_error``.
DISABLE_ON_ERROR_VERSION = 15


def disable_on_error_problem(subscription: str, *, enabled: bool) -> str:
    """What ``disable_on_error = true`` on ``subscription`` does to the trail, and the fix."""
    enable = "" if enabled else f", then {sql.enable_subscription(subscription)}"
    return (
        f"subscription {subscription!r} has disable_on_error = true: the consumer holds its "
        "apply worker at each table that joins change-data-capture by making it fail and "
        "retry until the table's replica is seeded, and the first such failure disables the "
        "subscription: the join is then never seeded and no change of any CDC table reaches "
        f"the trail.  Run on the target: {settings_sql.keep_on_error(subscription)}{enable}"
    )


def disabled_at_join_problem(subscription: str, tables: Sequence[str]) -> str:
    """What a disabled ``subscription`` does to the joins of ``tables``, and the fix."""
    return (
        f"subscription {subscription!r} is disabled while {', '.join(tables)} waits for the "
        "consumer to seed it: a disabled subscription cannot be refreshed, so the join is "
        "never seeded, and it applies no change of any CDC table meanwhile.  Enable it on the "
        f"target ({sql.enable_subscription(subscription)}), then run the consumer with models "
        "that declare the table"
    )


def refuse_unholdable(source: Engine, target: Engine, names: CdcNames) -> None:
    """Raise a ``CdcError`` when the subscription has ``disable_on_error`` set, or is disabled
    while a join waits; nothing when there is no subscription yet (the consumer makes it
    without the option)."""
    subscription = names.slot
    with target.connect() as connection:
        found = subscription_settings(connection, subscription)
        if found is None or (found.enabled and not found.disable_on_error):
            return
        if found.disable_on_error:
            raise CdcError(disable_on_error_problem(subscription, enabled=found.enabled))
        with source.connect() as on_source:
            waiting = pending(on_source, connection, names)
    if waiting:
        tables = list(dict.fromkeys(join.table_name for join in waiting))
        raise CdcError(disabled_at_join_problem(subscription, tables))


def subscription_settings(target: Connection, subscription: str) -> Row[Any] | None:
    """``enabled`` and ``disable_on_error`` (false before PostgreSQL 15) of ``subscription`` in
    the target's database; ``None`` when it has none."""
    version = target.dialect.server_version_info or (0,)
    query = settings_sql.SUBSCRIPTION_SETTINGS
    if version < (DISABLE_ON_ERROR_VERSION,):
        query = settings_sql.SUBSCRIPTION_SETTINGS_14
    return target.execute(text(query), {"subscription": subscription}).first()
