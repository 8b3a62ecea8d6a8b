"""The pure comparison of declared auditing with installed auditing.

``compare(declared, installed, default_schema)`` knows nothing about Alembic or the database
driver: the Alembic comparator adapts it, and a command-line drift check can do the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace

from .catalog import InstalledAudit, TriggerState
from .partitions import partition_drifts
from .render import NEW_ROWS, OLD_ROWS, function_config, render, resolved
from .spec import AuditSpec, TriggerSpec


@dataclass(frozen=True, slots=True)
class InstallAudit:
    """Declared but not installed (new, re-enabled, or its function was dropped by hand)."""

    spec: AuditSpec


@dataclass(frozen=True, slots=True)
class ReplaceAudit:
    """Installed, but not as declared: columns, settings, options, template or a hand edit."""

    spec: AuditSpec
    previous: AuditSpec


@dataclass(frozen=True, slots=True)
class DropAudit:
    """Installed but no longer declared (auditing disabled, or the table is gone)."""

    spec: AuditSpec


Change = InstallAudit | ReplaceAudit | DropAudit


def expected_triggers(spec: AuditSpec, default_schema: str) -> frozenset[TriggerState]:
    """The trigger states that installing ``spec`` produces."""
    return frozenset(_expected_trigger(spec, t, default_schema) for t in spec.triggers)


def _expected_trigger(spec: AuditSpec, trigger: TriggerSpec, default_schema: str) -> TriggerState:
    truncate = trigger.operation == "TRUNCATE"
    transition = spec.mode == "statement" and not truncate
    return TriggerState(
        name=trigger.name,
        schema=spec.schema or default_schema,
        table=spec.table,
        timing="BEFORE" if truncate and spec.truncate_rows else "AFTER",
        level="ROW" if spec.mode == "row" and not truncate else "STATEMENT",
        events=frozenset({trigger.operation}),
        old_table=OLD_ROWS if transition and trigger.operation != "INSERT" else None,
        new_table=NEW_ROWS if transition and trigger.operation != "DELETE" else None,
        enabled=True,
        conditional=False,
        column_list=False,
    )


@dataclass(frozen=True, slots=True)
class Drift:
    """One way an installation differs from what installing the declared spec produces."""

    reason: str
    #: Installed as declared but switched off (a disabled or replica-only trigger, or clone):
    #: writes go unaudited until it is enabled again.
    disabled: bool = False


def drifts(spec: AuditSpec, installed: InstalledAudit, default_schema: str) -> list[Drift]:
    """How ``installed`` differs from what installing ``spec`` produces; empty when current.

    The installed comment holds the resolved spec (explicit schema), so a declared spec without
    a schema is compared as living in ``default_schema``.
    """
    spec = resolved(spec, default_schema)
    found: list[Drift] = []
    if installed.spec is None:
        found.append(Drift("the function's comment is not a readable spec"))
    elif installed.spec != spec:
        changed = [
            f.name
            for f in fields(AuditSpec)
            if getattr(installed.spec, f.name) != getattr(spec, f.name)
        ]
        found.append(Drift("declaration changed: " + ", ".join(changed)))
    elif installed.body != render(spec).function_body:
        found.append(Drift("function body edited"))
    if installed.config != function_config(spec):
        found.append(Drift("function settings differ"))
    if not installed.security_definer:
        found.append(Drift("function is not SECURITY DEFINER"))
    expected = {t.name: t for t in expected_triggers(spec, default_schema)}
    actual = {t.name: t for t in installed.triggers}
    found += [Drift(f"trigger {name} missing") for name in sorted(expected.keys() - actual.keys())]
    found += [
        Drift(f"unexpected trigger {name}") for name in sorted(actual.keys() - expected.keys())
    ]
    for name in sorted(expected.keys() & actual.keys()):
        if replace(actual[name], enabled=True) != expected[name]:
            found.append(Drift(f"trigger {name} differs"))
        elif not actual[name].enabled:
            found.append(Drift(f"trigger {name} disabled", disabled=True))
    for clone in installed.clones:
        where = f"trigger {clone.name} on partition {clone.schema}.{clone.table}"
        if _clone_is_current(spec, replace(clone, enabled=True), default_schema):
            if not clone.enabled:
                found.append(Drift(f"{where} disabled", disabled=True))
        else:
            found.append(Drift(f"{where} differs or was left behind"))
    truncate = next((t for t in expected.values() if "TRUNCATE" in t.events), None)
    found += [Drift(r, disabled=d) for r, d in partition_drifts(spec, installed, truncate)]
    return found


def is_current(spec: AuditSpec, installed: InstalledAudit, default_schema: str) -> bool:
    """Whether ``installed`` is exactly what installing ``spec`` produces."""
    return not drifts(spec, installed, default_schema)


def _clone_is_current(spec: AuditSpec, clone: TriggerState, default_schema: str) -> bool:
    """A partition's clone must be an enabled copy of a row-level trigger of ``spec``."""
    if spec.mode != "row":
        return False  # statement-level triggers have no clones: this one was left behind
    expected = {t.name: t for t in expected_triggers(spec, default_schema)}.get(clone.name)
    return (
        expected is not None and replace(expected, schema=clone.schema, table=clone.table) == clone
    )


def _as_declared(previous: AuditSpec | None, spec: AuditSpec, default_schema: str) -> AuditSpec:
    """The installed spec in the form ``spec`` is declared in: a declared ``schema=None`` that the
    installation resolved to ``default_schema`` stays ``None``, so a migration's previous spec
    differs from its new one only where the definitions do."""
    if previous is None:
        return spec
    if spec.schema is None and previous.schema == default_schema:
        return replace(previous, schema=None)
    return previous


def compare(
    declared: Iterable[AuditSpec], installed: Iterable[InstalledAudit], default_schema: str
) -> list[Change]:
    """What to do so that the database holds exactly the ``declared`` auditing.

    Changes carry the declared specs as declared (migrations keep ``schema=None``); only the
    comparison resolves them.
    """

    def key(schema: str | None, table: str) -> tuple[str, str]:
        return (schema or default_schema, table)

    by_table: dict[tuple[str, str], InstalledAudit] = {}
    by_function: dict[tuple[str, str], InstalledAudit] = {}
    for item in installed:
        by_function[(item.schema, item.function)] = item
        if item.spec is not None:
            by_table[key(item.spec.schema, item.spec.table)] = item
    changes: list[Change] = []
    matched: set[tuple[str, str]] = set()
    for spec in declared:
        # By function first: after a hand install under a new function name, a stale function
        # may still carry a spec for the same table.
        found = by_function.get(key(spec.schema, spec.function)) or by_table.get(
            key(spec.schema, spec.table)
        )
        if found is None:
            changes.append(InstallAudit(spec))
            continue
        matched.add((found.schema, found.function))
        if not is_current(spec, found, default_schema):
            changes.append(
                ReplaceAudit(spec, previous=_as_declared(found.spec, spec, default_schema))
            )
    for item in by_function.values():
        if (item.schema, item.function) not in matched and item.spec is not None:
            # Drop only the triggers that call this function: a trigger of the same name may
            # already belong to the current installation.
            own = {trigger.name for trigger in item.triggers}
            triggers = tuple(t for t in item.spec.triggers if t.name in own)
            changes.append(DropAudit(replace(item.spec, triggers=triggers)))
    return changes
