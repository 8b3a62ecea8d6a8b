"""``baseline``: record rows that existed before auditing began, as ``B`` versions.

After it, every row's history starts somewhere, so ``history``, ``as-of`` and ``restore`` know
rows nobody has changed since auditing was installed.  Idempotent: a second run records only
rows whose state the trail does not explain.  Each table is locked against writes (SHARE) until
the one transaction commits.
"""

from __future__ import annotations

import argparse

from ..context.session import set_session_vars
from ..history import record_baseline
from .base import (
    EXIT_OK,
    CliError,
    Command,
    add_table_argument,
    add_target_argument,
    add_url_argument,
)
from .database import begin, create_engine
from .target import audited, load_metadata
from .ui import UI


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    add_table_argument(parser)
    add_url_argument(parser)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a session setting recorded on the baseline rows (e.g. username=ops); repeatable",
    )


def _settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--set {pair!r} is not NAME=VALUE")
        settings[name] = value
    return settings


def _baseline(args: argparse.Namespace, ui: UI) -> int:
    settings = _settings(args.set)
    pairs = audited(load_metadata(args.target), args.target, args.table)
    engine = create_engine(args.url)
    counts: dict[str, int] = {}
    try:
        with begin(engine) as connection:
            if settings:
                set_session_vars(connection, **settings)
            for done, (table, _) in enumerate(pairs, 1):
                counts[table.fullname] = record_baseline(connection, table)
                ui.progress(done, len(pairs), "recorded")
    finally:
        engine.dispose()
    if ui.json:
        ui.emit_json({"recorded": counts, "total": sum(counts.values())})
        return EXIT_OK
    ui.table(("table", "baseline rows"), list(counts.items()))
    ui.line(f"recorded {sum(counts.values())} baseline rows in {len(counts)} tables", "ok")
    return EXIT_OK


COMMAND = Command(
    name="baseline",
    help="record the rows that existed before auditing began (B versions; idempotent)",
    description=__doc__,
    add_arguments=_arguments,
    run=_baseline,
)
