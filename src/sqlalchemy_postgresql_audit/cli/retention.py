"""``maintain``, ``hold`` and ``release``: partitions and retention of partitioned audit tables.

``maintain`` creates partitions ahead, drains the DEFAULT partition and drops partitions older
than the retention (``..lifecycle.maintenance`` says which locks each step takes); it prints
what it did and is safe to run from cron in several places at once.  ``hold`` pauses retention
of one table, ``release`` lets it run again.
"""

from __future__ import annotations

import argparse
import datetime
from dataclasses import asdict

import sqlalchemy as sa

from ..declare.audit_table import AUDIT_TABLE_KEY, PARTITIONING_KEY, Partitioning
from ..lifecycle.holds import hold, release
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
        help="run as of this moment (default: now), e.g. to catch up",
    )


def _moment(text: str) -> datetime.datetime:
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 date and time") from None


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
    _release_arguments(parser)
    parser.add_argument("--reason", required=True, help="why retention is paused (recorded)")


def _release_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    parser.add_argument("table", metavar="TABLE", help="the audited table")
    add_url_argument(parser)


def _hold(args: argparse.Namespace, ui: UI) -> int:
    ((table, _),) = audited(load_metadata(args.target), args.target, [args.table])
    engine = create_engine(args.url)
    try:
        with begin(engine) as connection:
            hold(connection, table, args.reason)
    except ValueError as error:
        raise CliError(str(error)) from None
    finally:
        engine.dispose()
    ui.line(f"retention of {table.fullname} is held: {args.reason}", "ok")
    return EXIT_OK


def _release(args: argparse.Namespace, ui: UI) -> int:
    ((table, _),) = audited(load_metadata(args.target), args.target, [args.table])
    engine = create_engine(args.url)
    try:
        with begin(engine) as connection:
            lifted = release(connection, table)
    finally:
        engine.dispose()
    ui.line(f"retention of {table.fullname} " + ("released" if lifted else "was not held"), "ok")
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
    help="let retention of one table's history run again",
    add_arguments=_release_arguments,
    run=_release,
)
