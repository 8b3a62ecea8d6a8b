"""``cdc run`` and ``cdc status``: the change-data-capture consumer and how it is doing.

``cdc run TARGET --source URL [--target URL] [--once]`` writes the trail of the CDC tables of
``TARGET`` (``MODULE:METADATA``) into ``--target`` (another database: a subscription there
captures; none: the source's own database, through the decoder).  ``--once`` returns when
everything committed before it started is in the trail; without it, it runs until interrupted.
``cdc status`` exits 1 when the slot is missing or invalidated, the subscription is failing,
or ``--target`` holds no subscription.  ``cdc create-slot TARGET --url URL`` creates the slot
(what an Alembic migration cannot: a slot is made only before a transaction writes).

``cdc run`` refuses, naming the slot and what to do, when the slot is missing, lost or read by
another process: PostgreSQL's own error would read like a bug of the library.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from sqlalchemy import Engine, MetaData
from sqlalchemy.exc import DBAPIError

from ..cdc.consumer import Consumer, create_slot
from ..cdc.status import CdcStatus, cdc_status, slot_holder
from ..declare.cdc import cdc_names
from .base import (
    EXIT_DRIFT,
    EXIT_OK,
    CliError,
    Command,
    add_target_argument,
    add_url_argument,
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
    add_url_argument(slot)
    run.add_argument("--once", action="store_true", help="return once caught up")
    run.add_argument("--interval", type=float, default=1.0, help="seconds between rounds")


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
        consumer = Consumer(source, target, metadata=metadata)
        try:
            if args.once:
                written = consumer.run_once()
                if ui.json:
                    ui.emit_json({"written": written})
                elif consumer.subscribes:
                    ui.line(
                        f"caught up: {written} changes applied while this run waited (the "
                        "subscription writes the trail also between runs; those are in the "
                        "trail, not in this number)",
                        "ok",
                    )
                else:
                    ui.line(f"caught up: {written} changes written", "ok")
                return EXIT_OK
            consumer.run(interval=args.interval)
        except Exception as error:
            if _sqlstate(error) not in _SLOT_STATES:
                raise
            raise CliError(_slot_trouble(source, metadata, args.target, error)) from error
        return EXIT_OK
    finally:
        source.dispose()
        if target is not None:
            target.dispose()


#: PostgreSQL's ``object_in_use`` (a slot another process reads) and
#: ``object_not_in_prerequisite_state`` (a slot that lost its WAL).
_SLOT_STATES = frozenset({"55006", "55000"})


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a driver's error, raw (the decoder's COPY) or wrapped by SQLAlchemy."""
    raw = error.orig if isinstance(error, DBAPIError) else error
    code = getattr(raw, "sqlstate", None) or getattr(raw, "pgcode", None)
    return code if isinstance(code, str) else None


def _require_slot(found: CdcStatus, models: str) -> None:
    """Before consuming: the slot exists in this database and has all its WAL."""
    install = f"sqlalchemy-postgresql-audit install {models} --url SOURCE"
    if not found.slot_exists:
        raise CliError(
            f"slot {found.slot!r} does not exist on database {found.database!r}: change-data-"
            f"capture is not installed there and CDC writes are not captured.  Run {install} "
            f"(or, after an Alembic migration, sqlalchemy-postgresql-audit cdc create-slot "
            f"{models} --url SOURCE)"
        )
    if found.problems and found.slot_database != found.database:
        raise CliError(found.problems[0])
    if found.wal_status == "lost":
        raise CliError(
            f"slot {found.slot!r} is invalidated (wal_status 'lost'): it can no longer deliver "
            f"changes.  See sqlalchemy-postgresql-audit cdc status {models} --source SOURCE for "
            "how to recover"
        )


def _slot_trouble(source: Engine, metadata: MetaData, models: str, error: Exception) -> str:
    """What the slot's state says about a consumer refused by PostgreSQL, and what to do."""
    slot = cdc_names(metadata).slot
    found = cdc_status(source, metadata)
    if found.wal_status == "lost":
        try:
            _require_slot(found, models)
        except CliError as lost:
            return str(lost)
    holder = slot_holder(source, slot) if found.active else None
    if holder is not None or _sqlstate(error) == "55006":
        return (
            f"slot {slot!r} is being read by {holder or 'another process'}: one slot feeds one "
            "consumer.  When it is a subscription (cdc run --target), this database's trail is "
            "written on that target: run cdc run with that --target, or drop that subscription "
            "(Consumer.drop) before decoding here; when it is another decoder, let that one run"
        )
    return f"slot {slot!r} cannot be read: {error}"


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
