"""The pure comparison of declared auditing with installed auditing.

``compare(declared, installed, default_schema)`` knows nothing about Alembic or the database
driver: the Alembic comparator adapts it, and a command-line drift check can do the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace

from ..declare.spec import AuditSpec, TriggerSpec
from ..render import (
    GUARD_CONFIG,
    GUARD_TRIGGER,
    GUARD_TRUNCATE_TRIGGER,
    NEW_ROWS,
    OLD_ROWS,
    PURGE_MARKER_TRIGGER,
    function_config,
    guard_body,
    guard_function,
    render,
    resolved,
)
from ..render.cdc import PUBLICATION_FLAGS, REPLICA_IDENTITIES
from ..render.cdc_truncate import PARTITION_GUARD, ROOT_BEGIN, ROOT_END
from .catalog import GuardState, InstalledAudit, TriggerState
from .partitions import expected_partition_triggers, partition_drifts


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
    """The trigger states that installing ``spec`` produces on its table (the key trigger
    included)."""
    key = _expected_key_trigger(spec, default_schema)
    return frozenset(
        (*(_expected_trigger(spec, t, default_schema) for t in spec.triggers), *filter(None, [key]))
    )


def _expected_key_trigger(spec: AuditSpec, default_schema: str) -> TriggerState | None:
    """``render.key_trigger``'s trigger: row level, conditional, its condition as installed."""
    trigger = spec.key_trigger
    if trigger is None:
        return None
    return TriggerState(
        name=trigger.name,
        schema=spec.schema or default_schema,
        table=spec.table,
        timing="AFTER",
        level="ROW",
        events=frozenset({"UPDATE"}),
        old_table=None,
        new_table=None,
        enabled=True,
        conditional=True,
        column_list=False,
    )


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


OK, MISSING, DISABLED, OUTDATED, UNEXPECTED = "ok", "missing", "disabled", "outdated", "unexpected"


@dataclass(frozen=True, slots=True)
class Watched:
    """One installed object and its state: ``ok``, ``missing``, ``disabled`` (installed as
    declared, switched off), ``outdated`` (not as declared) or ``unexpected`` (not declared)."""

    kind: str
    name: str
    state: str
    reasons: tuple[str, ...] = ()


def _watched(kind: str, name: str, reasons: list[str]) -> Watched:
    """``outdated`` for each reason given, else ``ok``."""
    return Watched(kind, name, OUTDATED if reasons else OK, tuple(reasons))


def watched(spec: AuditSpec, installed: InstalledAudit, default_schema: str) -> list[Watched]:
    """Every object installing ``spec`` produces, with how ``installed`` holds it.

    The installed comment holds the resolved spec (explicit schema), so a declared spec without
    a schema is compared as living in ``default_schema``.  One function per kind of object:
    adding a kind is adding one.
    """
    spec = resolved(spec, default_schema)
    return [
        _function_state(spec, installed),
        *_trigger_states(spec, installed, default_schema),
        *_clone_states(spec, installed, default_schema),
        *_descendant_trigger_states(spec, installed, default_schema),
        *_guard_states(spec, installed),
    ]


def not_installed(spec: AuditSpec, default_schema: str) -> list[Watched]:
    """The objects installing ``spec`` produces, every one missing (nothing is installed)."""
    spec = resolved(spec, default_schema)
    found = [Watched("function", f"{spec.schema}.{spec.function}", MISSING)]
    names = [t.name for t in (*spec.triggers, *filter(None, [spec.key_trigger]))]
    found += [Watched("trigger", name, MISSING) for name in sorted(names)]
    if spec.append_only:
        found.append(Watched("guard function", f"{spec.schema}.{guard_function(spec)}", MISSING))
        found += [
            Watched("guard trigger", name, MISSING)
            for name in sorted(t.name for t in expected_guard_triggers(spec))
        ]
    return found


def drifts(spec: AuditSpec, installed: InstalledAudit, default_schema: str) -> list[Drift]:
    """How ``installed`` differs from what installing ``spec`` produces; empty when current."""
    return [
        Drift(reason, disabled=item.state == DISABLED)
        for item in watched(spec, installed, default_schema)
        for reason in item.reasons
    ]


def _function_state(spec: AuditSpec, installed: InstalledAudit) -> Watched:
    found: list[str] = []
    if installed.spec is None:
        found.append("the function's comment is not a readable spec")
    elif installed.spec != spec:
        changed = [
            f.name
            for f in fields(AuditSpec)
            if getattr(installed.spec, f.name) != getattr(spec, f.name)
        ]
        found.append("declaration changed: " + ", ".join(changed))
    elif installed.body != render(spec).function_body:
        found.append("function body edited")
    if installed.config != function_config(spec):
        found.append("function settings differ")
    if not installed.security_definer:
        found.append("function is not SECURITY DEFINER")
    return _watched("function", f"{installed.schema}.{installed.function}", found)


def _compare_triggers(
    kind: str, expected: dict[str, TriggerState], actual: dict[str, TriggerState]
) -> list[Watched]:
    """Triggers by name: missing, unexpected, different, disabled or ok."""
    found = [
        Watched(kind, name, MISSING, (f"{kind} {name} missing",))
        for name in sorted(expected.keys() - actual.keys())
    ]
    found += [
        Watched(kind, name, UNEXPECTED, (f"unexpected {kind} {name}",))
        for name in sorted(actual.keys() - expected.keys())
    ]
    for name in sorted(expected.keys() & actual.keys()):
        if replace(actual[name], enabled=True) != expected[name]:
            found.append(Watched(kind, name, OUTDATED, (f"{kind} {name} differs",)))
        elif not actual[name].enabled:
            found.append(Watched(kind, name, DISABLED, (f"{kind} {name} disabled",)))
        else:
            found.append(Watched(kind, name, OK))
    return found


def _trigger_states(
    spec: AuditSpec, installed: InstalledAudit, default_schema: str
) -> list[Watched]:
    expected = {t.name: t for t in expected_triggers(spec, default_schema)}
    return _compare_triggers("trigger", expected, {t.name: t for t in installed.triggers})


def _clone_states(spec: AuditSpec, installed: InstalledAudit, default_schema: str) -> list[Watched]:
    found = []
    for clone in installed.clones:
        where = f"trigger {clone.name} on partition {clone.schema}.{clone.table}"
        if not _clone_is_current(spec, replace(clone, enabled=True), default_schema):
            found.append(
                Watched(
                    "partition trigger", where, OUTDATED, (f"{where} differs or was left behind",)
                )
            )
        elif not clone.enabled:
            found.append(Watched("partition trigger", where, DISABLED, (f"{where} disabled",)))
        else:
            found.append(Watched("partition trigger", where, OK))
    return found


def _descendant_trigger_states(
    spec: AuditSpec, installed: InstalledAudit, default_schema: str
) -> list[Watched]:
    """Template 2's TRUNCATE triggers on the table's partitions and key triggers on its
    inheritance children (``.partitions``): one state per trigger expected or found, in the
    order ``partition_drifts`` reports them."""
    truncate = next(
        (t for t in expected_triggers(spec, default_schema) if "TRUNCATE" in t.events), None
    )
    key = _expected_key_trigger(spec, default_schema)
    expected = {
        (t.schema, t.table, t.name): t
        for t in expected_partition_triggers(spec, installed, truncate, key)
    }
    actual = {(t.schema, t.table, t.name): t for t in installed.partition_triggers}
    keys = sorted(expected.keys() | actual.keys())
    drifted = [key for key in keys if key not in expected or actual.get(key) != expected[key]]
    reasons = dict(zip(drifted, partition_drifts(spec, installed, truncate, key), strict=True))
    found = []
    for item in keys:
        name = f"{item[2]} on {item[0]}.{item[1]}"
        events = (expected.get(item) or actual[item]).events
        kind = "partition TRUNCATE trigger" if "TRUNCATE" in events else "inheritance key trigger"
        if item not in reasons:
            found.append(Watched(kind, name, OK))
            continue
        reason, disabled = reasons[item]
        state = (
            MISSING
            if item not in actual
            else UNEXPECTED
            if item not in expected
            else DISABLED
            if disabled
            else OUTDATED
        )
        found.append(Watched(kind, name, state, (reason,)))
    return found


def expected_guard_triggers(spec: AuditSpec) -> frozenset[TriggerState]:
    """The triggers of (resolved) ``spec``'s append-only guard on its audit table."""

    def trigger(
        name: str, timing: str, level: str, events: set[str], old: str | None
    ) -> TriggerState:
        return TriggerState(
            name=name,
            schema=spec.schema or "",
            table=spec.audit_table,
            timing=timing,
            level=level,
            events=frozenset(events),
            old_table=old,
            new_table=None,
            enabled=True,
            conditional=False,
            column_list=False,
        )

    return frozenset(
        {
            trigger(GUARD_TRIGGER, "BEFORE", "ROW", {"UPDATE", "DELETE"}, None),
            trigger(GUARD_TRUNCATE_TRIGGER, "BEFORE", "STATEMENT", {"TRUNCATE"}, None),
            trigger(PURGE_MARKER_TRIGGER, "AFTER", "STATEMENT", {"DELETE"}, OLD_ROWS),
        }
    )


def _guard_states(spec: AuditSpec, installed: InstalledAudit) -> list[Watched]:
    """With ``append_only``: the guard function, as rendered, and its three triggers."""
    if not spec.append_only or installed.spec is None or not installed.spec.append_only:
        return []  # not declared, or a declaration change that already says so
    name = f"{spec.schema}.{guard_function(spec)}"
    guard = installed.guard
    if guard is None:
        return [Watched("guard function", name, MISSING, (f"append-only guard {name}() missing",))]
    found = []
    if guard.body != guard_body(spec):
        found.append("append-only guard function edited")
    if guard.config != GUARD_CONFIG:
        found.append("append-only guard function settings differ")
    expected = {t.name: t for t in expected_guard_triggers(spec)}
    # The audit table's own: the function's triggers on its partitions and kept partitions
    # carry the same names (``render.partitioning.guard_partition``).
    table = (spec.schema, spec.audit_table)
    own = {t.name: t for t in guard.triggers if (t.schema, t.table) == table}
    return [
        _watched("guard function", name, found),
        *_compare_triggers("guard trigger", expected, own),
    ]


def is_current(spec: AuditSpec, installed: InstalledAudit, default_schema: str) -> bool:
    """Whether ``installed`` is exactly what installing ``spec`` produces."""
    return not drifts(spec, installed, default_schema)


def _clone_is_current(spec: AuditSpec, clone: TriggerState, default_schema: str) -> bool:
    """A partition's clone must be an enabled copy of a row-level trigger of ``spec`` (in
    statement mode, of its key trigger); statement-level triggers have no clones."""
    expected = {t.name: t for t in expected_triggers(spec, default_schema)}.get(clone.name)
    return (
        expected is not None
        and expected.level == "ROW"
        and replace(expected, schema=clone.schema, table=clone.table) == clone
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
        if spec.cdc:
            continue  # captured by its publication and slot (``install.publication``), no trigger
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


#: A CDC table as publication membership sees it: (schema, table).
PublishedKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class PublicationChanges:
    """What brings one CDC publication to the declared tables and replica identities."""

    publish: tuple[PublishedKey, ...]
    unpublish: tuple[PublishedKey, ...]


def compare_publication(
    declared: dict[PublishedKey, str],
    published: Iterable[PublishedKey],
    identities: dict[PublishedKey, str],
    option_drifts: Iterable[str] = (),
) -> PublicationChanges:
    """``declared``: each CDC table and the replica identity it needs (``"default"`` /
    ``"full"``); ``published``: the publication's tables; ``identities``: each declared table's
    identity in the database; ``option_drifts``: ``publication_option_drifts`` (and the
    context publication's, ``publication.context_drifts``).  A declared
    table missing from the publication, or with another identity, is (re)published; every
    declared table is when the publication's options drifted (publishing puts them back); a
    published table no longer declared is taken out."""
    members = set(published)
    options_drifted = bool(list(option_drifts))
    publish = tuple(
        sorted(
            key
            for key, identity in declared.items()
            if options_drifted or key not in members or identities.get(key) != identity
        )
    )
    unpublish = tuple(sorted(members - set(declared)))
    return PublicationChanges(publish=publish, unpublish=unpublish)


def publication_option_drifts(publication: str, options: dict[str, bool] | None) -> list[str]:
    """How the CDC publication's options (``catalog.publication_options``) differ from what
    installing sets: each option switched off by hand leaves changes uncaptured.  A missing
    publication is reported by membership (``publication.unpublished``), not here."""
    if options is None:
        return []
    return [
        f"publication {publication!r} has {option} off, so changes of its tables are not "
        "all captured (install again to put it back)"
        for flag, option in PUBLICATION_FLAGS.items()
        if not options.get(flag, False)
    ]


def partition_guard_drifts(states: Iterable[GuardState]) -> list[str]:
    """A partition of a partitioned CDC table without its enabled TRUNCATE guard (made after
    the install, or the guard dropped or disabled): a TRUNCATE of it is not captured.  The
    root without its two triggers: a TRUNCATE of the table is refused by its partitions."""
    found = []
    for state in states:
        expected = {ROOT_BEGIN, ROOT_END} if state.root else {PARTITION_GUARD}
        for name in sorted(expected - state.guards):
            found.append(
                f"{state.relation} has no enabled TRUNCATE trigger {name}: "
                + (
                    "a TRUNCATE of the table is refused"
                    if state.root
                    else "a TRUNCATE of this partition is not captured"
                )
                + " (install again)"
            )
    return found


#: ``pg_class.relreplident`` as ``ALTER TABLE ... REPLICA IDENTITY`` spells it.
_IDENTITY_NAMES = {"d": "DEFAULT", "f": "FULL", "i": "USING INDEX", "n": "NOTHING"}


#: The ``replica_identity`` option that declares a catalog identity (the others have none).
_OPTION_VALUES = {"d": "default", "f": "full"}


def replica_identity_drifts(table: str, declared: str, code: str | None) -> list[str]:
    """A CDC table whose replica identity is not the declared one (``declared``: ``"default"``
    or ``"full"``, from its ``replica_identity`` option or that option's default; ``code``:
    ``catalog.replica_identity_code``): the consumer cannot key its changes (``USING INDEX``,
    ``NOTHING``) or finds old rows elsewhere than declared."""
    if code is None or code == REPLICA_IDENTITIES[declared]:
        return []
    other = _OPTION_VALUES.get(code)
    remedy = "install again" + (f", or declare replica_identity={other!r}" if other else "")
    return [
        f"{table} has REPLICA IDENTITY {_IDENTITY_NAMES.get(code, code)}, not "
        f"{declared.upper()} as declared (its replica_identity option, or that option's "
        f"default): {remedy}"
    ]
