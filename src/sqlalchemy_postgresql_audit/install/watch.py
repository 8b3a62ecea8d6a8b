"""What ``check`` watches besides what installing auditing puts in place: the audit table's
indexes (a migration creates them), once ``grant_least_privilege`` ran, the privileges of the
roles it named (running it again restores them), and what would let history be rewritten or
changes go unrecorded around the trigger (``exposure_states``).

Pure, like ``.compare``: the catalog is read by ``.catalog``; these functions only compare.
Neither kind of drift makes autogenerate replace the triggers, which would fix neither.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..declare.spec import AuditSpec
from ..render.grants import WRITER_DML, writer_rights
from .catalog import GrantsRecord, IndexState, Privilege
from .compare import MISSING, OK, OUTDATED, Watched
from .exposure import Exposure


def index_states(
    expected: Mapping[str, IndexState], installed: Mapping[str, IndexState]
) -> list[Watched]:
    """The declared indexes of an audit table (the history index): missing, different, ok."""
    found = []
    for name in sorted(expected):
        actual = installed.get(name)
        if actual is None:
            found.append(Watched("index", name, MISSING, (f"index {name} missing",)))
        elif not actual.valid:
            found.append(Watched("index", name, OUTDATED, (f"index {name} is invalid",)))
        elif (actual.columns, actual.unique) != (expected[name].columns, expected[name].unique):
            columns = ", ".join(str(c) for c in actual.columns)
            reason = f"index {name} differs: ({columns})"
            found.append(Watched("index", name, OUTDATED, (reason,)))
        else:
            found.append(Watched("index", name, "ok"))
    return found


def _writer_expects(spec: AuditSpec) -> dict[str, frozenset[str]]:
    """What a writer holds on each kind of object (SECURITY.md's table of it)."""
    return {
        "table": frozenset(writer_rights(spec)),
        "column": frozenset(WRITER_DML) - {"DELETE"},
        "serial sequence": frozenset({"USAGE"}),
        **{
            kind: frozenset()
            for kind in (
                "partition",
                "partition column",
                "identity sequence",
                "audit table",
                "audit column",
                "audit sequence",
                "function",
            )
        },
    }


#: What a reader holds on the library's objects; the application's are not the library's to
#: govern for readers.
_READER_EXPECTS = {
    "audit table": frozenset({"SELECT"}),
    "audit column": frozenset({"SELECT"}),
    "audit sequence": frozenset[str](),
    "function": frozenset[str](),
}


def expected_rights(spec: AuditSpec, record: GrantsRecord, role: str) -> dict[str, frozenset[str]]:
    """What ``role`` holds on each kind of object after the grants of ``record``."""
    expects: dict[str, frozenset[str]] = {}
    for applies, rights in (
        (role in record.writers, _writer_expects(spec)),
        (role in record.readers, _READER_EXPECTS),
    ):
        if applies:
            for kind, held in rights.items():
                expects[kind] = expects.get(kind, frozenset()) | held
    return expects


def privilege_states(
    spec: AuditSpec,
    record: GrantsRecord | None,
    observed: Mapping[str, list[Privilege] | None],
) -> list[Watched]:
    """One state per role the grant step named: ``ok``, or each right held or lacking against
    SECURITY.md's model.  Nothing is watched before the grant step ran (``record`` None)."""
    if record is None:
        return []
    found = []
    for role in dict.fromkeys((*record.writers, *record.readers)):
        name = f"privileges of {role}"
        held = observed.get(role)
        if held is None:
            found.append(Watched("privileges", name, MISSING, (f"role {role} no longer exists",)))
            continue
        expects = expected_rights(spec, record, role)
        wrong = [
            p for p in held if p.kind in expects and p.held != (p.privilege in expects[p.kind])
        ]
        # A right held or lacking on a whole table shows on each of its columns too: say it once.
        tables = {(p.object, p.privilege, p.held) for p in wrong if p.column is None}
        reasons = [
            f"{role} {'holds' if p.held else 'lacks'} {p.privilege} on {p.kind} "
            + (f"{p.column} of {p.object}" if p.column else p.object)
            for p in wrong
            if p.column is None or (p.object, p.privilege, p.held) not in tables
        ]
        found.append(Watched("privileges", name, OUTDATED if reasons else "ok", tuple(reasons)))
    return found


def exposure_states(spec: AuditSpec, exposure: Exposure) -> list[Watched]:
    """The audit table's owners, rules and row-level security, and the source's columns.

    - The audit table and its sequences must be owned by the trigger function's owner (the
      role it writes as): another owner, such as a writer that made the table first, can
      rewrite history.
    - A rule on the audit table rewrites or drops the rows the function inserts; row-level
      security hides rows from readers, or refuses inserts.
    - A source column that is neither mirrored nor excluded (added by hand after the
      declaration) has changes that are never recorded.
    - In row mode, an inheritance child (attached after the install) has rows the parent's
      row triggers never see.
    """
    found = []
    if exposure.function_owner is not None:
        reasons = [
            f"{name} is owned by {owner}, not by the trigger function's owner "
            f"{exposure.function_owner}"
            for name, owner in exposure.owners
            if owner != exposure.function_owner
        ]
        found.append(_state("owner", f"owner of {spec.audit_table}", reasons))
    reasons = [f"rule {rule} on {spec.audit_table}" for rule in exposure.rules]
    if exposure.row_security:
        reasons.append(f"row-level security is enabled on {spec.audit_table}")
    found.append(_state("audit table", spec.audit_table, reasons))
    found.append(column_state(spec, exposure.source_columns))
    if spec.mode == "row":
        reasons = [
            f"inheritance child {child} of {spec.table}: row triggers on the parent miss its "
            "rows (row mode is refused on a table with inheritance children)"
            for child in exposure.inheritance_children
        ]
        found.append(_state("children", f"inheritance children of {spec.table}", reasons))
    return found


def column_state(spec: AuditSpec, source_columns: Sequence[str]) -> Watched:
    """The source's columns that the declaration does not know (added by hand after it):
    their changes are never recorded, by the trigger or by a CDC consumer."""
    known = {*spec.columns, *spec.exclude_columns, *spec.omitted_columns}
    reasons = [
        f"column {c} of {spec.table} is neither mirrored nor excluded: its changes are not recorded"
        for c in source_columns
        if c not in known
    ]
    return _state("columns", f"columns of {spec.table}", reasons)


def _state(kind: str, name: str, reasons: list[str]) -> Watched:
    return Watched(kind, name, OUTDATED if reasons else OK, tuple(reasons))


def replica_states(setters: Sequence[str]) -> list[Watched]:
    """A writer the grant step named that may now ``SET session_replication_role`` (granted
    after the step, which refuses such a writer) can switch every trigger off."""
    return [
        Watched(
            "privileges",
            f"session_replication_role of {role}",
            OUTDATED,
            (f"{role} may SET session_replication_role, which switches every trigger off",),
        )
        for role in setters
    ]
