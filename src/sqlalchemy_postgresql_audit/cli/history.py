"""``history`` and ``as-of``: read the audit trail of a row, or a table at a moment.

``history [MODULE:METADATA] TABLE PK`` lists every version of one row with what each changed;
``as-of [MODULE:METADATA] TABLE TIME [PK]`` shows the table (or the row) as it stood at TIME,
with who made each row's last change (the writing role and the session settings) and when.
Without MODULE:METADATA (or when the models no longer audit it) the table is read from the
database: its installed audit definition, or the audit table kept after auditing ended, also
for a dropped table.  TABLE is ``name`` or ``schema.name``; a name holding a dot is written in
SQL's double quotes: ``"my.table"`` or ``schema."my.table"``.  PK is a one-column key's value
as typed (``code=x`` on a text key is the text ``code=x``), or ``col=value,col=value`` for a
composite key; TIME is ISO 8601 with a time zone (``2026-12-01T10:00:00+01:00``, or ``Z`` for
UTC).
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any

import sqlalchemy as sa

from ..cdc.written_here import trail_written_here
from ..declare.audit_table import SPEC_KEY
from ..declare.spec import AuditSpec
from ..history._redacted import Redacted
from .base import EXIT_OK, CliError, Command, add_url_argument
from .database import begin, create_engine
from .lookup import (
    find_table,
    moment_for,
    parse_key,
    parse_time,
    qualified_name,
    split_target,
)
from .trail import describe, removal_as_of, states_as_of, versions
from .ui import UI

HISTORY_USAGE = "[MODULE:METADATA] TABLE PK"
AS_OF_USAGE = "[MODULE:METADATA] TABLE TIME [PK]"


def _history_arguments(parser: argparse.ArgumentParser) -> None:
    _positional(parser, HISTORY_USAGE)


def _as_of_arguments(parser: argparse.ArgumentParser) -> None:
    _positional(parser, AS_OF_USAGE)


def _positional(parser: argparse.ArgumentParser, usage: str) -> None:
    # One list, split by ``.lookup.split_target``: argparse has no optional leading
    # positional.
    parser.usage = f"%(prog)s [--json] [--no-color] [--debug] {usage} --url URL"
    parser.add_argument("words", nargs="+", metavar="ARGUMENT", help=usage)
    add_url_argument(parser)


def _words(args: argparse.Namespace, command: str, usage: str, counts: range) -> list[str]:
    target, words = split_target(args.words)
    if len(words) not in counts:
        raise CliError(f"{command} takes {usage}, got {' '.join(args.words)!r}")
    args.target = target
    return words


def _history(args: argparse.Namespace, ui: UI) -> int:
    name, key_text = _words(args, "history", HISTORY_USAGE, range(2, 3))
    engine = create_engine(args.url)
    try:
        with begin(engine) as connection:
            table = find_table(connection, args.target, name)
            shown = qualified_name(connection, table)
            key = parse_key(table, key_text)
            found = versions(connection, table, key)
            elsewhere = trail_elsewhere(connection, table, shown)
    finally:
        engine.dispose()
    if ui.json:
        forms = _forms(table)
        for version in found:
            version["values"] = _named(forms, version["values"])
            version["changes"] = {
                name: [_named_one(forms, name, value) for value in pair]
                for name, pair in version["changes"].items()
            }
        note = {"note": elsewhere} if elsewhere else {}
        ui.emit_json({"table": shown, "key": key, "versions": found, **note})
        return EXIT_OK
    row = f"{shown} {_key_text(key)}"
    if elsewhere:
        ui.warn(elsewhere)
    if not found:
        ui.line(f"no version of {row} is recorded", "warn")
        return EXIT_OK
    settings = list(found[0]["context"])
    ui.line(f"{row}: {len(found)} version{'' if len(found) == 1 else 's'}", "head")
    ui.table(
        ("audit_id", "at", "operation", "user", *settings, "changes"),
        [
            (
                v["audit_id"],
                _time(v["at"]),
                v["operation"],
                v["current_user"],
                *(v["context"][s] for s in settings),
                describe(v),
            )
            for v in found
        ],
        styles=[_style(v["operation"]) for v in found],
    )
    return EXIT_OK


def _as_of(args: argparse.Namespace, ui: UI) -> int:
    words = _words(args, "as-of", AS_OF_USAGE, range(2, 4))
    name, at = words[0], parse_time(words[1])
    engine = create_engine(args.url)
    try:
        with begin(engine) as connection:
            table = find_table(connection, args.target, name)
            shown = qualified_name(connection, table)
            key = parse_key(table, words[2]) if len(words) == 3 else None
            moment = moment_for(connection, table, at)
            states = states_as_of(connection, table, moment, key)
            incomplete = removal_as_of(connection, table, moment, key, bool(states))
            elsewhere = trail_elsewhere(connection, table, shown)
    finally:
        engine.dispose()
    if ui.json:
        forms = _forms(table)
        rows = [_named(forms, state["values"]) for state in states]
        changes = [{k: v for k, v in state.items() if k != "values"} for state in states]
        ui.emit_json(
            {
                "table": shown,
                "at": at,
                "key": key,
                "rows": rows,
                "last_changes": changes,
                "incomplete": incomplete,
                **({"note": elsewhere} if elsewhere else {}),
            }
        )
        return EXIT_OK
    what = shown if key is None else f"{shown} {_key_text(key)}"
    if incomplete:
        ui.warn(f"{what} as of {at.isoformat()}: {incomplete}")
    if elsewhere:
        ui.warn(elsewhere)
    if not states:
        ui.line(f"{what} had no rows at {at.isoformat()}", "warn")
        return EXIT_OK
    count = len(states)
    ui.line(f"{what} as of {at.isoformat()}: {count} row{'' if count == 1 else 's'}", "head")
    columns = list(states[0]["values"])
    settings = list(states[0]["context"])
    ui.table(
        (*columns, "changed at", "operation", "user", *settings),
        [
            (
                *(state["values"][c] for c in columns),
                _time(state["at"]),
                state["operation"],
                state["current_user"],
                *(state["context"][s] for s in settings),
            )
            for state in states
        ],
    )
    return EXIT_OK


def trail_elsewhere(connection: sa.Connection, table: sa.Table, shown: str) -> str | None:
    """For a CDC table whose trail no consumer writes in this database (design 1's source):
    where the trail is, whatever this database's audit table holds.  Install made that table
    and may have recorded a baseline in it, or it holds the trail of trigger mode; nothing
    writes it since capture moved to CDC, so what it shows is stale, never silently."""
    spec = table.info.get(SPEC_KEY)
    if not isinstance(spec, AuditSpec) or not spec.cdc:
        return None
    here = trail_written_here(connection, table.metadata)
    if here:
        return None
    audit = sa.table(spec.audit_table, schema=spec.schema or table.schema)
    if not connection.execute(sa.select(sa.exists().select_from(audit))).scalar():
        return (
            f"{shown} is captured by CDC and its audit table here is empty: its trail may be on "
            "the consumer's target (see cdc status); read history there with --url TARGET"
        )
    if here is None:
        return (
            f"{shown} is captured by CDC, and this role may not read the consumer's progress "
            "table, which says whether its trail is written in this database: if it is written "
            "on the consumer's target (see cdc status), what this database shows stops where "
            "CDC began; read history there with --url TARGET"
        )
    return (
        f"{shown} is captured by CDC and no consumer writes its trail in this database: what "
        "its audit table here shows stops where CDC began (install's baseline, or the trail "
        "of trigger mode); its trail is on the consumer's target (see cdc status); read "
        "history there with --url TARGET"
    )


def _forms(table: sa.Table) -> dict[str, str]:
    """The redacted columns of ``table`` with their form (``mask``, ``omit``)."""
    spec: AuditSpec = table.info[SPEC_KEY]
    return {redacted.name: redacted.form for redacted in spec.redacted}


def _named_one(forms: dict[str, str], name: str, value: object) -> object:
    """``REDACTED`` as ``{"redacted": "<form>"}`` for JSON; any other value as it is."""
    return {"redacted": forms.get(name, True)} if isinstance(value, Redacted) else value


def _named(forms: dict[str, str], values: dict[str, Any]) -> dict[str, Any]:
    return {name: _named_one(forms, name, value) for name, value in values.items()}


def _key_text(key: dict[str, Any]) -> str:
    return ",".join(f"{name}={value}" for name, value in key.items())


def _time(at: datetime.datetime) -> str:
    return at.isoformat(sep=" ", timespec="milliseconds")


def _style(operation: str) -> str | None:
    return {"DELETE": "drift", "TRUNCATE": "drift", "INSERT": "ok"}.get(operation)


HISTORY = Command(
    name="history",
    help="every version of one row, who made it and what it changed",
    description=__doc__,
    add_arguments=_history_arguments,
    run=_history,
)
AS_OF = Command(
    name="as-of",
    help="a table (or one row) as it stood at a moment (ISO 8601 with a time zone)",
    description=__doc__,
    add_arguments=_as_of_arguments,
    run=_as_of,
)
