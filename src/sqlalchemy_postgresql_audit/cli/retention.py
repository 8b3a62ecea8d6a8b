"""``maintain``, ``hold`` and ``release``: partitions and retention of partitioned audit tables.

``maintain`` creates partitions ahead, drains the DEFAULT partition and drops partitions older
than the retention (the partitioning docs say which locks each step takes); it prints
what it did and is safe to run from cron in several places at once.  ``hold`` pauses retention
of one table for a reason, ``release`` lifts the hold of one reason (retention runs once none is
left) and ``holds`` lists them.
"""

from __future__ import annotations

import argparse
import datetime
import re
from dataclasses import asdict

import sqlalchemy as sa

from ..declare.audit_table import AUDIT_TABLE_KEY, PARTITIONING_KEY, Partitioning
from ..lifecycle.holds import Hold, hold, holds_of, release
from ..lifecycle.maintenance import Maintained, MaintenanceError, maintain
from .base import (
    EXIT_DRIFT,
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    Command,
    add_table_argument,
    add_target_argument,
    add_url_argument,
)
from .database import begin, create_engine, owner_rights, permission_denied
from .target import audit_table_name, audited, load_metadata
from .ui import UI


def _maintain_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    add_table_argument(parser)
    add_url_argument(parser)
    parser.add_argument(
        "--at",
        type=_moment,
        default=None,
        metavar="ISO-8601",
        help="run as of this moment, with its time zone (default: now), e.g. to catch up",
    )


def _moment(text: str) -> datetime.datetime:
    """ISO 8601 with a time zone (``Z`` for UTC), refused here without one, as ``maintain``
    refuses a naive moment."""
    try:
        moment = datetime.datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 date and time") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no time zone: add one (for example {moment.isoformat()}+00:00, or Z "
            "for UTC)"
        )
    return moment


def _maintain(args: argparse.Namespace, ui: UI) -> int:
    """Every table is maintained even when another fails; the failures are named last and
    make the exit code 2."""
    pairs = audited(load_metadata(args.target), args.target, args.table)
    partitioned = [(table, spec) for table, spec in pairs if _is_partitioned(table)]
    if not partitioned:
        # Most often a job pointed at the wrong models: say so, and fail it.
        what = ", ".join(table.fullname for table, _ in pairs) if args.table else args.target
        if ui.json:
            ui.emit_json({"maintained": []})
        ui.warn(
            f"nothing to maintain: {what} has no partitioned audit table "
            "(declare 'partition' in a table's audit options)"
        )
        return EXIT_DRIFT
    engine = create_engine(args.url)
    audit_tables = [audit_table_name(table) for table, _ in partitioned]
    done: list[Maintained] = []
    failures: list[tuple[str, BaseException]] = []
    try:
        with owner_rights(engine, "maintain", audit_tables):
            for table, _ in partitioned:
                try:
                    done += maintain(engine, table, at=args.at)
                except MaintenanceError as failed:
                    # The role lacks the owner's rights: one error saying so, not one per table.
                    for _, failure in failed.failures:
                        if permission_denied(failure):
                            raise failure from failed
                    done += failed.done
                    failures += failed.failures
    finally:
        engine.dispose()
    if ui.json:
        ui.emit_json(
            {
                "maintained": [asdict(item) for item in done],
                "failed": {name: str(failure) for name, failure in failures},
            }
        )
        return EXIT_ERROR if failures else EXIT_OK
    ui.table(
        ("audit table", "created", "drained rows", "detached", "dropped", "held"),
        [
            (
                item.audit_table,
                ", ".join(item.created),
                item.drained,
                ", ".join(item.detached),
                ", ".join(item.dropped),
                item.held or "",
            )
            for item in done
        ],
    )
    ui.line(f"maintained {len(done)} partitioned audit tables", "ok")
    for name, failure in failures:
        ui.line(f"failed: {name}: {failure}", "drift")
    return EXIT_ERROR if failures else EXIT_OK


def _is_partitioned(table: sa.Table) -> bool:
    return isinstance(table.info[AUDIT_TABLE_KEY].info.get(PARTITIONING_KEY), Partitioning)


def _hold_arguments(parser: argparse.ArgumentParser) -> None:
    _table_arguments(parser)
    parser.add_argument(
        "--reason", required=True, help="why retention is paused (recorded; names the hold)"
    )


def _release_arguments(parser: argparse.ArgumentParser) -> None:
    _table_arguments(parser)
    parser.add_argument(
        "--reason", required=True, help="the reason the hold to lift was placed for"
    )


def _table_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    parser.add_argument("table", metavar="TABLE", help="the audited table")
    add_url_argument(parser)


def _holds_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    add_table_argument(parser)
    add_url_argument(parser)


def _hold(args: argparse.Namespace, ui: UI) -> int:
    ((table, _),) = audited(load_metadata(args.target), args.target, [args.table])
    engine = create_engine(args.url)
    try:
        with begin(engine) as connection:
            hold(connection, table, args.reason)
            placed = holds_of(connection, table)
    except ValueError as error:
        raise CliError(str(error)) from None
    finally:
        engine.dispose()
    ui.line(f"retention of {table.fullname} is held: {args.reason.strip()}", "ok")
    _others(ui, table, placed)
    return EXIT_OK


def _release(args: argparse.Namespace, ui: UI) -> int:
    """Lifts the one hold named; a reason with no hold is an error (exit 2) naming the holds
    there are, and the others stay."""
    ((table, _),) = audited(load_metadata(args.target), args.target, [args.table])
    engine = create_engine(args.url)
    try:
        with begin(engine) as connection:
            release(connection, table, args.reason)
            left = holds_of(connection, table)
    except ValueError as error:
        raise CliError(str(error)) from None
    finally:
        engine.dispose()
    ui.line(f"released the hold of {table.fullname} for {args.reason.strip()}", "ok")
    if not left:
        ui.line(f"retention of {table.fullname} runs again: no hold is left", "ok")
    _others(ui, table, left)
    return EXIT_OK


def _others(ui: UI, table: sa.Table, placed: tuple[Hold, ...]) -> None:
    """Whoever places or lifts a hold sees every hold the table keeps."""
    if placed:
        reasons = ", ".join(repr(h.reason) for h in placed)
        ui.line(f"{table.fullname} is held by {len(placed)}: {reasons}", "ok")


def _holds(args: argparse.Namespace, ui: UI) -> int:
    """Every hold on the tables of the models (or ``--table``), oldest first."""
    pairs = audited(load_metadata(args.target), args.target, args.table)
    engine = create_engine(args.url)
    try:
        with begin(engine) as connection:
            found = [(table, h) for table, _ in pairs for h in holds_of(connection, table)]
    finally:
        engine.dispose()
    if ui.json:
        ui.emit_json(
            {
                "holds": [
                    {"table": table.fullname, **asdict(h), "held_at": h.held_at.isoformat()}
                    for table, h in found
                ]
            }
        )
        return EXIT_OK
    ui.table(
        ("table", "reason", "held by", "held at"),
        [(table.fullname, h.reason, h.held_by, h.held_at.isoformat()) for table, h in found],
    )
    held = len({table.fullname for table, _ in found})
    ui.line(f"{len(found)} holds on {held} of {len(pairs)} tables", "ok")
    return EXIT_OK


MAINTAIN = Command(
    name="maintain",
    help="create partitions ahead, drain DEFAULT partitions, apply retention (idempotent)",
    description=__doc__,
    add_arguments=_maintain_arguments,
    run=_maintain,
)
HOLD = Command(
    name="hold",
    help="pause retention of one table's history (litigation, investigation)",
    add_arguments=_hold_arguments,
    run=_hold,
)
RELEASE = Command(
    name="release",
    help="lift one hold (named by its reason); retention runs once no hold is left",
    add_arguments=_release_arguments,
    run=_release,
)
HOLDS = Command(
    name="holds",
    help="list the holds on the tables' history (reason, role, since when)",
    add_arguments=_holds_arguments,
    run=_holds,
)
