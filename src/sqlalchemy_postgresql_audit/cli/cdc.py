"""``cdc run`` and ``cdc status``: the change-data-capture consumer and how it is doing.

``cdc run TARGET --source URL [--target URL] [--once]`` writes the trail of the CDC tables of
``TARGET`` (``MODULE:METADATA``) into ``--target`` (another database: a subscription there
captures; none: the source's own database, through the decoder).  ``--once`` returns when
everything committed before it started is in the trail (with a subscription, failing after
``--timeout`` seconds); without it, it runs until interrupted, riding out lost connections.
``cdc status`` exits 1 when the slot is missing or invalidated, the subscription is failing,
``--target`` holds no subscription, the consumer's last run failed, or the trail has stood
still while the slot holds WAL.  ``cdc create-slot TARGET --source URL`` (or ``--url``) creates
the slot (what an Alembic migration cannot: a slot is made only before a transaction writes).

``cdc run`` refuses before it starts, naming the slot and what to do, when the slot is missing,
lost or decodes another database: PostgreSQL's own error would name an internal table.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict

from sqlalchemy import MetaData

from ..cdc.consumer import DEFAULT_TIMEOUT, Consumer, create_slot
from ..cdc.status import CdcStatus, cdc_status
from .base import (
    EXIT_DRIFT,
    EXIT_OK,
    URL_ENV,
    CliError,
    Command,
    add_target_argument,
)
from .database import create_engine
from .target import load_metadata
from .ui import UI


def _arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="cdc_action", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="write the trail (--once: catch up, then return)")
    status = actions.add_parser("status", help="lag, retained WAL, errors, invalidated slot")
    for sub in (run, status):
        for flag in ("--json", "--no-color", "--debug"):  # as after the command's name
            sub.add_argument(flag, action="store_true", default=argparse.SUPPRESS)
        add_target_argument(sub)
        sub.add_argument("--source", required=True, help="SQLAlchemy URL of the source database")
        sub.add_argument(
            "--target-url",
            "--target",
            dest="target_url",
            default=None,
            help="SQLAlchemy URL of the database holding the trail (default: the source)",
        )
    slot = actions.add_parser(
        "create-slot", help="create the logical slot of the CDC tables (after a migration)"
    )
    for flag in ("--json", "--no-color", "--debug"):
        slot.add_argument(flag, action="store_true", default=argparse.SUPPRESS)
    add_target_argument(slot)
    # --source, as ``cdc run`` and ``cdc status`` name the database the slot is in
    slot.add_argument(
        "--url",
        "--source",
        dest="url",
        default=os.environ.get(URL_ENV) or None,
        required=not os.environ.get(URL_ENV),
        help=f"SQLAlchemy URL of the source database (default: ${URL_ENV})",
    )
    run.add_argument("--once", action="store_true", help="return once caught up")
    run.add_argument("--interval", type=float, default=1.0, help="seconds between rounds")
    run.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="with a subscription (--target): how long a run waits for it to apply the "
        f"source's changes before it fails (default {DEFAULT_TIMEOUT:.0f})",
    )


def _seconds(value: str) -> float:
    """A positive number of seconds (argparse names the option when this raises)."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return seconds


def _run(args: argparse.Namespace, ui: UI) -> int:
    metadata = load_metadata(args.target)
    if args.cdc_action == "status":
        return _status(args, ui, metadata)
    if args.cdc_action == "create-slot":
        return _create_slot(args, ui, metadata)
    source = create_engine(args.source)
    target = create_engine(args.target_url) if args.target_url else None
    try:
        _require_slot(cdc_status(source, metadata), args.target)
        consumer = Consumer(source, target, metadata=metadata, timeout=args.timeout)
        if args.once:
            written = consumer.run_once()
            if ui.json:
                ui.emit_json({"written": written})
            elif consumer.subscribes:
                ui.line(
                    f"caught up: {written} audit rows written while this run waited (the "
                    "subscription writes the trail also between runs; those are in the "
                    "trail, not in this number)",
                    "ok",
                )
            else:
                ui.line(f"caught up: {written} audit rows written", "ok")
            return EXIT_OK
        consumer.run(interval=args.interval)
        return EXIT_OK
    finally:
        source.dispose()
        if target is not None:
            target.dispose()


def _require_slot(found: CdcStatus, models: str) -> None:
    """Before consuming: the slot exists in this database and has all its WAL."""
    install = f"sqlalchemy-postgresql-audit install {models} --url SOURCE"
    if not found.slot_exists:
        raise CliError(
            f"slot {found.slot!r} does not exist on database {found.database!r}: change-data-"
            f"capture is not installed there and CDC writes are not captured.  Run {install} "
            f"(or, after an Alembic migration, sqlalchemy-postgresql-audit cdc create-slot "
            f"{models} --source SOURCE)"
        )
    if found.problems and found.slot_database != found.database:
        raise CliError(found.problems[0])
    if found.wal_status == "lost":
        raise CliError(
            f"slot {found.slot!r} is invalidated (wal_status 'lost'): it can no longer deliver "
            f"changes.  See sqlalchemy-postgresql-audit cdc status {models} --source SOURCE for "
            "how to recover"
        )


def _create_slot(args: argparse.Namespace, ui: UI, metadata: MetaData) -> int:
    engine = create_engine(args.url)
    try:
        create_slot(engine, metadata)
        found = cdc_status(engine, metadata)
    finally:
        engine.dispose()
    if ui.json:
        ui.emit_json({"slot": found.slot, "database": found.database})
    else:
        ui.line(f"slot {found.slot} is ready on database {found.database}", "ok")
    return EXIT_OK


def _status(args: argparse.Namespace, ui: UI, metadata: MetaData) -> int:
    source = create_engine(args.source)
    target = create_engine(args.target_url) if args.target_url else None
    try:
        found = cdc_status(source, metadata, target)
    finally:
        source.dispose()
        if target is not None:
            target.dispose()
    if ui.json:
        ui.emit_json({**asdict(found), "problems": list(found.problems)})
    else:
        ui.table(("", ""), [(name, value) for name, value in asdict(found).items()])
        for problem in found.problems:
            ui.warn(problem)
    return EXIT_DRIFT if found.problems else EXIT_OK


COMMAND = Command(
    name="cdc",
    help="change-data-capture: run the consumer, or show its status",
    add_arguments=_arguments,
    run=_run,
)
