"""What every subcommand shares: the error type, the exit codes, and how a command plugs in.

A subcommand is a ``Command``: a name, one line of help, a function that adds its arguments
to its argparse parser, and a function that runs it and returns the exit code.  Adding one is a
module exposing a ``Command`` plus one line in ``cli/__init__.py``'s ``COMMANDS``; ``baseline.py``
is a short example::

    def _arguments(parser):
        add_target_argument(parser)
        add_table_argument(parser)
        add_url_argument(parser)

    def _baseline(args, ui):
        pairs = audited(load_metadata(args.target), args.target, args.table)
        with begin(create_engine(args.url)) as connection:
            counts = {t.fullname: record_baseline(connection, t) for t, _ in pairs}
        ...  # ui.emit_json(...) or ui.table(...); return EXIT_OK

    COMMAND = Command(name="baseline", help="...", add_arguments=_arguments, run=_baseline)

``target.audited`` turns a table name that is unknown or not audited into one clear error;
``database.begin`` does the same for a server that cannot be reached.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ui import UI

#: Everything as declared / done.
EXIT_OK = 0
#: ``check`` found the database out of step with the declaration, or ``verify`` a broken seal.
EXIT_DRIFT = 1
#: Bad usage or an error (module, URL, connection, database); argparse exits 2 too.
EXIT_ERROR = 2

URL_ENV = "DATABASE_URL"


class CliError(Exception):
    """An error the user can act on: printed as one line on stderr, exit code 2."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, UI], int]
    description: str | None = None


def add_target_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="MODULE:METADATA",
        help="where the models are, e.g. myapp.models:Base.metadata or myapp.models:Base",
    )


def add_url_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV) or None,
        required=not os.environ.get(URL_ENV),
        help=f"SQLAlchemy URL of the database (default: ${URL_ENV})",
    )


def add_table_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--table",
        action="append",
        default=[],
        metavar="NAME",
        help='only this audited table (schema.name when it has a schema; "my.table" for a '
        "name holding a dot); repeatable",
    )
