"""``cdc run`` and ``cdc status``: the change-data-capture consumer and how it is doing.

``cdc run TARGET --source URL [--target URL] [--once]`` writes the trail of the CDC tables of
``TARGET`` (``MODULE:METADATA``) into ``--target`` (another database: a subscription there
captures; none: the source's own database, through the decoder).  ``--once`` returns when
everything committed before it started is in the trail; without it, it runs until interrupted.
``cdc status`` exits 1 when the slot is missing or invalidated or the subscription is failing.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from sqlalchemy import MetaData

from ..cdc.consumer import Consumer
from ..cdc.status import cdc_status
from .base import EXIT_DRIFT, EXIT_OK, Command, add_target_argument
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
    run.add_argument("--once", action="store_true", help="return once caught up")
    run.add_argument("--interval", type=float, default=1.0, help="seconds between rounds")


def _run(args: argparse.Namespace, ui: UI) -> int:
    metadata = load_metadata(args.target)
    if args.cdc_action == "status":
        return _status(args, ui, metadata)
    source = create_engine(args.source)
    target = create_engine(args.target_url) if args.target_url else None
    consumer = Consumer(source, target, metadata=metadata)
    try:
        if args.once:
            written = consumer.run_once()
            if ui.json:
                ui.emit_json({"written": written})
            else:
                ui.line(f"caught up: {written} changes written", "ok")
            return EXIT_OK
        consumer.run(interval=args.interval)
        return EXIT_OK
    finally:
        source.dispose()
        if target is not None:
            target.dispose()


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
