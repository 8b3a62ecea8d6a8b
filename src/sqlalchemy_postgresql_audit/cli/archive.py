"""``publish``: the publication of the audit tables an archive server subscribes to
(``..lifecycle.archive`` says what it publishes and why)."""

from __future__ import annotations

import argparse
import warnings
from dataclasses import asdict

from ..lifecycle.archive import PUBLICATION, publish
from .base import EXIT_OK, Command, add_table_argument, add_target_argument, add_url_argument
from .database import create_engine
from .target import audited, load_metadata
from .ui import UI


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    add_table_argument(parser)
    add_url_argument(parser)
    parser.add_argument(
        "--name", default=PUBLICATION, help=f"the publication's name (default: {PUBLICATION})"
    )


def _publish(args: argparse.Namespace, ui: UI) -> int:
    tables = [table for table, _ in audited(load_metadata(args.target), args.target, args.table)]
    engine = create_engine(args.url)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # said below, as the CLI says it
            done = publish(engine, tables, name=args.name)
    finally:
        engine.dispose()
    if done.wal_level != "logical":
        ui.warn(
            f"the server runs with wal_level={done.wal_level}: no subscriber receives anything "
            "until wal_level = logical is set in postgresql.conf and the server restarted"
        )
    if ui.json:
        ui.emit_json({"published": asdict(done)})
        return EXIT_OK
    for table in done.tables:
        ui.line(f"publishes {table}")
    filtered = "kept off the archive" if done.markers_filtered else "published (PostgreSQL 14)"
    ui.line(f"publication {done.publication}: INSERT and UPDATE; X and P markers {filtered}", "ok")
    return EXIT_OK


PUBLISH = Command(
    name="publish",
    help="create or update the publication of the audit tables for an archive server",
    description=__doc__,
    add_arguments=_arguments,
    run=_publish,
)
