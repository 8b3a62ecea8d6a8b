"""The ``sqlalchemy-postgresql-audit`` command (also ``python -m sqlalchemy_postgresql_audit``).

Exit codes: 0 everything as declared or done; 1 ``check`` found drift or ``verify`` a broken
chain of seals; 2 bad usage or an error
(module or attribute not found, invalid URL, cannot connect, database error), reported as one
line on stderr (``--debug`` shows the traceback instead).

A subcommand is a ``.base.Command`` in a module of this package, listed in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

import sqlalchemy as sa

from ..errors import AuditError
from . import (
    activity,
    archive,
    baseline,
    cdc,
    check,
    demo,
    grant,
    history,
    install,
    retention,
    seals,
)
from .base import EXIT_ERROR, CliError, Command
from .database import first_line
from .ui import UI, wants_color

PROG = "sqlalchemy-postgresql-audit"
#: What a program killed by SIGPIPE returns, as ``git log | head`` does.
EXIT_BROKEN_PIPE = 141

#: In the order ``--help`` lists them.
COMMANDS: tuple[Command, ...] = (
    demo.COMMAND,
    install.DDL,
    install.INSTALL,
    install.UNINSTALL,
    check.COMMAND,
    history.HISTORY,
    history.AS_OF,
    activity.COMMAND,
    baseline.COMMAND,
    grant.COMMAND,
    retention.MAINTAIN,
    retention.HOLD,
    retention.RELEASE,
    retention.HOLDS,
    archive.PUBLISH,
    cdc.COMMAND,
    seals.SEAL,
    seals.VERIFY,
    seals.ERASE,
)

EPILOG = """\
exit codes: 0 ok, 1 drift found by check or a broken seal found by verify, 2 usage or error.
Output is coloured on a terminal (rich), plain text when piped; NO_COLOR or --no-color turns
colour off.  Commands that take --url read $DATABASE_URL when it is not given."""


def _common(default: object) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name.  The copy on each
    subcommand has no default of its own, so it cannot undo one given before the name."""
    common = argparse.ArgumentParser(add_help=False)
    for flag, help_text in (
        ("--json", "print one JSON document"),
        ("--no-color", "plain text even on a terminal"),
        ("--debug", "show tracebacks of errors"),
    ):
        common.add_argument(flag, action="store_true", default=default, help=help_text)
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common(False)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Typed, trigger-maintained audit tables for SQLAlchemy and PostgreSQL.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = commands.add_parser(
            command.name,
            help=command.help,
            description=_plain(command.description or command.help),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[_common(argparse.SUPPRESS)],
        )
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ui = UI(json=args.json, color=not args.json and wants_color(args.no_color, sys.stdout))
    try:
        code: int = args.run(args, ui)
    except BrokenPipeError:  # `... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (CliError, AuditError, sa.exc.SQLAlchemyError) as error:
        if args.debug:
            traceback.print_exc()
            return EXIT_ERROR
        message = first_line(error) if isinstance(error, sa.exc.SQLAlchemyError) else str(error)
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:  # a bug: still one line, and the way to see more
        if args.debug:
            traceback.print_exc()
            return EXIT_ERROR
        print(
            f"{PROG}: internal error: {type(error).__name__}: {error} "
            "(run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return code


def _plain(docstring: str) -> str:
    """A command's docstring as help text, without reST's double backquotes around literals."""
    return docstring.replace("``", "")
