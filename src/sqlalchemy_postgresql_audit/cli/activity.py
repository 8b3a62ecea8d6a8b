"""``activity``: who did what, across every audited table, in one list.

``activity [MODULE:METADATA] [--where SETTING=VALUE]... [--since WHEN] [--until WHEN]``
lists the recorded changes of every audited table (or of each ``--table``), oldest first, with
the role that wrote each, its session settings and the columns it changed.  ``--where`` keeps
the changes recorded with that setting value (an empty value: recorded without one); WHEN is
ISO 8601 with a time zone, or a duration back from the server's clock (``90s``, ``15m``,
``1h``, ``2d``, ``1w``).  Without MODULE:METADATA the audited tables are the ones with an audit
function installed in the database; with it, the models' (needed for a history kept after its
triggers were uninstalled).
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import json
import re
from typing import Any

import sqlalchemy as sa

from ..cdc.written_here import trail_written_here
from ..declare.audit_table import AUDIT_TABLE_KEY, SPEC_KEY
from ..declare.spec import AUDIT_CURRENT_USER, AUDIT_ID, AUDIT_OPERATION, AUDIT_TIMESTAMP
from ..history import activity
from ..history._activity_sql import CHANGED_COLUMNS, FIXED_COLUMNS, KEY, TABLE
from ..install.catalog import default_schema, installed_audits
from .base import EXIT_OK, CliError, Command, add_table_argument, add_url_argument
from .database import begin, create_engine
from .history import trail_elsewhere
from .lookup import parse_time
from .target import audited, load_metadata
from .trail import OPERATIONS
from .ui import UI

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_When = datetime.datetime | datetime.timedelta | None


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        nargs="?",
        metavar="MODULE:METADATA",
        help="the models (default: the audited tables installed in the database)",
    )
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="SETTING=VALUE",
        help="only changes recorded with this session setting value; repeatable",
    )
    for flag, edge in (("--since", "from (inclusive)"), ("--until", "up to (exclusive)")):
        parser.add_argument(
            flag,
            metavar="WHEN",
            help=f"{edge}: ISO 8601 with a time zone, or a duration back from now (15m, 1h, 2d)",
        )
    parser.add_argument(
        "--limit", type=_positive, metavar="N", help="only the N most recent changes"
    )
    add_table_argument(parser)
    add_url_argument(parser)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _activity(args: argparse.Namespace, ui: UI) -> int:
    where = _where(args.where)
    since, until = _when("--since", args.since), _when("--until", args.until)
    engine = create_engine(args.url)
    try:
        with begin(engine) as connection:
            tables = _tables(connection, args.target, args.table)
            absent: list[str] = []
            if args.target is not None:
                tables, absent = _here(connection, tables)
            moments = _resolve(connection, since), _resolve(connection, until)
            query = activity(tables, since=moments[0], until=moments[1], **where)
            changes = _read(connection, query, args.limit, _key_orders(connection, tables))
            notes = absent + _elsewhere(connection, tables)
    finally:
        engine.dispose()
    if ui.json:
        ui.emit_json(
            {
                "since": moments[0],
                "until": moments[1],
                "where": where,
                "changes": changes,
                **({"notes": notes} if notes else {}),
            }
        )
    else:
        _print(ui, changes, moments, where, limited=len(changes) == args.limit)
        for note in notes:
            ui.line(note, "warn")
    return EXIT_OK


def _here(connection: sa.Connection, tables: list[sa.Table]) -> tuple[list[sa.Table], list[str]]:
    """The tables whose trail this database holds, and a note for each of the others: design
    1's target has the CDC tables' audit tables only, the trigger-mode tables' trails are on
    the source (their audit table missing there is no error of the target)."""
    if not tables or trail_written_here(connection, tables[0].metadata) is not True:
        return tables, []
    inspector = sa.inspect(connection)
    kept, notes = [], []
    for table in tables:
        spec = table.info[SPEC_KEY]
        schema = spec.schema or table.schema
        if spec.cdc or inspector.has_table(spec.audit_table, schema=schema):
            kept.append(table)
            continue
        shown = f"{schema}.{table.name}" if schema else f"public.{table.name}"
        notes.append(
            f"{shown} is captured by triggers: its trail is in the source database, not on "
            "this CDC target; read it there with --url SOURCE"
        )
    if not kept:
        raise CliError("; ".join(notes))
    return kept, notes


def _elsewhere(connection: sa.Connection, tables: list[sa.Table]) -> list[str]:
    """The CDC tables whose trail is not written in this database, or may not be."""
    found = []
    for table in tables:
        shown = f"{table.schema}.{table.name}" if table.schema else f"public.{table.name}"
        note = trail_elsewhere(connection, table, shown)
        if note:
            found.append(note)
    return found


def _print(
    ui: UI,
    changes: list[dict[str, Any]],
    moments: tuple[datetime.datetime | None, datetime.datetime | None],
    where: dict[str, str],
    *,
    limited: bool,
) -> None:
    scope = "".join(
        f" {word} {value}"
        for word, value in (
            ("since", moments[0] and moments[0].isoformat()),
            ("until", moments[1] and moments[1].isoformat()),
            ("where", ", ".join(f"{k}={v}" for k, v in where.items())),
        )
        if value
    )
    if not changes:
        ui.line(f"no change recorded{scope}", "warn")
        return
    count = f"{'the last ' if limited else ''}{len(changes)} change{'s' * (len(changes) != 1)}"
    ui.line(f"{count}{scope}", "head")
    settings = list(changes[0]["context"])
    ui.table(
        ("at", "table", "key", "operation", "user", *settings, "changed"),
        [
            (
                change["at"].isoformat(sep=" ", timespec="milliseconds"),
                change["table"],
                _key_text(change["key"]),
                change["operation"],
                change["current_user"],
                *(change["context"][name] for name in settings),
                ", ".join(change["changed_columns"] or ()) or None,
            )
            for change in changes
        ],
        styles=[_style(change["operation"]) for change in changes],
    )


def _where(pairs: list[str]) -> dict[str, str]:
    where: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CliError(f"--where {pair!r} is not SETTING=VALUE (for example username=alice)")
        if name in where:
            raise CliError(f"--where gives setting {name!r} twice")
        where[name] = value
    return where


def _when(flag: str, text: str | None) -> _When:
    if text is None:
        return None
    duration = _DURATION.match(text.strip())
    if duration:
        return datetime.timedelta(**{_UNITS[duration[2]]: float(duration[1])})
    try:
        return parse_time(text)
    except CliError as error:
        raise CliError(f"{flag}: {error}; or give a duration such as 15m, 1h, 2d") from None


def _resolve(connection: sa.Connection, when: _When) -> datetime.datetime | None:
    """A duration counts back from the server's clock, which wrote the audit timestamps."""
    if not isinstance(when, datetime.timedelta):
        return when
    now: datetime.datetime = connection.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
    return now - when


def _tables(connection: sa.Connection, target: str | None, names: list[str]) -> list[sa.Table]:
    if target is not None:
        if "://" in target:
            raise CliError(f"give the database as --url; {target!r} is not MODULE:METADATA")
        return [table for table, _ in audited(load_metadata(target), target, names)]
    tables = _reflected(connection)
    if not tables:
        raise CliError("no audited table is installed in the database")
    if not names:
        return tables
    default = default_schema(connection)
    by_name = {f"{t.schema}.{t.name}": t for t in tables}
    chosen = []
    for name in names:
        table = by_name.get(name if name in by_name else f"{default}.{name}")
        if table is None:
            raise CliError(f"no audited table {name!r} is installed in the database")
        chosen.append(table)
    return chosen


def _reflected(connection: sa.Connection) -> list[sa.Table]:
    """Every table with an audit function installed, carrying the installed spec and its
    reflected audit table (the source table's columns are not needed: only its name)."""
    installed = installed_audits(connection, sa.inspect(connection).get_schema_names())
    specs = [(item.schema, item.spec) for item in installed if item.spec is not None]
    metadata = sa.MetaData()
    for schema in sorted({schema for schema, _ in specs}):
        wanted = sorted(spec.audit_table for owner, spec in specs if owner == schema)
        try:
            metadata.reflect(connection, schema=schema, only=wanted, resolve_fks=False)
        except sa.exc.InvalidRequestError as error:
            raise CliError(f"an audit table is missing in schema {schema}: {error}") from None
    tables = []
    for schema, spec in specs:
        source = sa.Table(spec.table, sa.MetaData(), schema=schema)
        audit = metadata.tables[f"{schema}.{spec.audit_table}"]
        source.info = {SPEC_KEY: spec, AUDIT_TABLE_KEY: audit}
        tables.append(source)
    return tables


def _key_orders(connection: sa.Connection, tables: list[sa.Table]) -> dict[str, tuple[str, ...]]:
    """Each table's key columns by qualified name: ``jsonb`` orders keys its own way."""
    schema = default_schema(connection)
    return {
        f"{table.schema or schema}.{table.name}": table.info[SPEC_KEY].key_columns
        for table in tables
    }


def _read(
    connection: sa.Connection,
    query: sa.Select[Any],
    limit: int | None,
    key_orders: dict[str, tuple[str, ...]],
) -> list[dict[str, Any]]:
    """The changes as plain data; the key is read as text so that decimals stay exact, and
    its columns are put back in key order."""
    every = query.subquery()
    order = [every.c[AUDIT_TIMESTAMP], every.c[TABLE], every.c[AUDIT_ID]]
    statement = sa.select(
        *(sa.cast(c, sa.Text).label(KEY) if c.name == KEY else c for c in every.c)
    )
    if limit is None:
        statement = statement.order_by(*order)
    else:  # the most recent N, shown oldest first like the rest
        statement = statement.order_by(*(c.desc() for c in order)).limit(limit)
    rows = [row._mapping for row in connection.execute(statement)]
    if limit is not None:
        rows.reverse()
    settings = [c.name for c in every.c if c.name not in FIXED_COLUMNS]
    return [
        {
            "table": row[TABLE],
            "key": _key(row[KEY], key_orders.get(row[TABLE], ())),
            "audit_id": row[AUDIT_ID],
            "operation": OPERATIONS.get(row[AUDIT_OPERATION], row[AUDIT_OPERATION]),
            "at": row[AUDIT_TIMESTAMP],
            "current_user": row[AUDIT_CURRENT_USER],
            "context": {name: row[name] for name in settings},
            "changed_columns": row[CHANGED_COLUMNS],
        }
        for row in rows
    ]


def _key(text: str | None, order: tuple[str, ...]) -> dict[str, Any] | None:
    if text is None:
        return None
    key: dict[str, Any] = json.loads(text, parse_float=decimal.Decimal)
    return {**{name: key[name] for name in order if name in key}, **key}


def _key_text(key: dict[str, Any] | None) -> str | None:
    if key is None:
        return None
    return ",".join(f"{name}={value}" for name, value in key.items())


def _style(operation: str) -> str | None:
    return {"DELETE": "drift", "TRUNCATE": "drift", "INSERT": "ok"}.get(operation)


COMMAND = Command(
    name="activity",
    help="who changed what across every audited table, filtered by setting and time",
    description=__doc__,
    add_arguments=_arguments,
    run=_activity,
)
