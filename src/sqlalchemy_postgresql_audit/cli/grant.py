"""``grant``: the least-privilege model of ``..install.grants`` for the models' audited tables.

Writers get DML on the audited tables and nothing on the audit tables (only the SECURITY DEFINER
trigger function writes there), readers get SELECT on the audit tables, an optional owner role
owns the audit tables and functions.  Without ``--url`` it prints the SQL (which reads the
catalog when it runs); with ``--url`` it runs it in one transaction.
"""

from __future__ import annotations

import argparse

from ..install.grants import grant_least_privilege, least_privilege_script
from .base import EXIT_OK, CliError, Command, add_target_argument
from .database import begin, create_engine
from .target import audited, load_metadata
from .ui import UI


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    parser.add_argument(
        "--writer", action="append", required=True, metavar="ROLE", help="a writer role; repeatable"
    )
    parser.add_argument(
        "--reader", action="append", default=[], metavar="ROLE", help="a reader role; repeatable"
    )
    parser.add_argument(
        "--owner", metavar="ROLE", help="the role owning audit tables and functions"
    )
    parser.add_argument("--url", help="grant in this database instead of printing the SQL")


def _grant(args: argparse.Namespace, ui: UI) -> int:
    metadata = load_metadata(args.target)
    tables = [source.fullname for source, _ in audited(metadata, args.target)]
    roles = {"writers": args.writer, "readers": args.reader, "owner": args.owner}
    try:
        # Every role is checked before any SQL is rendered, so a refused name runs nothing.
        least_privilege_script(metadata, writers=args.writer, readers=args.reader, owner=args.owner)
    except ValueError as error:  # a pseudo or reserved role: public, none, pg_*
        raise CliError(str(error)) from None
    if args.url is None:
        script = least_privilege_script(
            metadata, writers=args.writer, readers=args.reader, owner=args.owner
        )
        if ui.json:
            ui.emit_json({"tables": tables, **roles, "script": script})
        else:
            ui.out.write(script)
        return EXIT_OK
    engine = create_engine(args.url)
    try:
        with begin(engine) as connection:
            grant_least_privilege(
                connection, metadata, writers=args.writer, readers=args.reader, owner=args.owner
            )
    finally:
        engine.dispose()
    if ui.json:
        ui.emit_json({"granted": tables, **roles})
        return EXIT_OK
    readers = f"; readers {', '.join(args.reader)}" if args.reader else ""
    owner = f"; owner {args.owner}" if args.owner else ""
    ui.line(
        f"granted least privilege on {len(tables)} audited table"
        f"{'' if len(tables) == 1 else 's'}: writers {', '.join(args.writer)}{readers}{owner}",
        "ok",
    )
    return EXIT_OK


COMMAND = Command(
    name="grant",
    help="least privilege: writers write data only, readers read history (SQL without --url)",
    description=__doc__,
    add_arguments=_arguments,
    run=_grant,
)
