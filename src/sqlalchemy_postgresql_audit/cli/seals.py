"""``seal``, ``verify`` and ``erase``: tamper evidence and lawful erasure of the audit trail.

``seal`` hashes the audit rows written since the last seal into the chain (run it from cron,
after ``maintain``) and prints the chain's head; ``verify`` recomputes the chain and every sealed
row, prints the head (anchor it outside the database: a log, a ticket, a timestamping service)
and exits 1 when anything no longer matches; ``--anchor HEAD`` also proves that the chain still
holds a head anchored earlier.  ``erase`` sets one row's values to NULL in every recorded
version (``erase [MODULE:METADATA] TABLE PK``), or a session setting's value across every
table recording it (``erase MODULE:METADATA --setting NAME=VALUE``), and records who, when, why
and what.  Run all three as the audit owner.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

import sqlalchemy as sa

from ..declare.audit_table import AUDIT_TABLE_KEY
from ..lifecycle.erasure import Erased, erase, erase_setting
from ..lifecycle.seals import seal
from ..lifecycle.verify import normal_head, verify
from .base import (
    EXIT_DRIFT,
    EXIT_OK,
    CliError,
    Command,
    add_table_argument,
    add_target_argument,
    add_url_argument,
)
from .database import begin, create_engine
from .lookup import find_table, parse_key, split_target, typed_value
from .target import audited, load_metadata
from .ui import UI

ERASE_USAGE = "[MODULE:METADATA] TABLE PK | MODULE:METADATA --setting NAME=VALUE"


def _seal_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_argument(parser)
    add_table_argument(parser)
    add_url_argument(parser)


def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    _seal_arguments(parser)
    parser.add_argument(
        "--anchor", metavar="HEAD", help="a head printed earlier: prove the chain still holds it"
    )


def _seal(args: argparse.Namespace, ui: UI) -> int:
    pairs = audited(load_metadata(args.target), args.target, args.table)
    engine = create_engine(args.url)
    try:
        done = [item for table, _ in pairs for item in seal(engine, table)]
    finally:
        engine.dispose()
    head = next((item.head for item in reversed(done) if item.head), None)
    if ui.json:
        ui.emit_json({"sealed": [asdict(item) for item in done], "head": head})
        return EXIT_OK
    ui.table(
        ("audit table", "segments", "rows", "sealed to audit_id"),
        [
            (i.audit_table, ", ".join(i.segments) or None, i.rows, i.sealed_to if i.head else None)
            for i in done
        ],
    )
    ui.line(f"sealed {_rows(sum(i.rows for i in done))}; head {head or '(empty chain)'}", "ok")
    return EXIT_OK


def _rows(count: int, what: str = "row") -> str:
    return f"{count} {what}" if count == 1 else f"{count} {what}s"


def _verify(args: argparse.Namespace, ui: UI) -> int:
    anchor = None
    if args.anchor is not None:
        try:
            anchor = normal_head(args.anchor)
        except ValueError as error:
            raise CliError(f"--anchor: {error}") from None
    metadata = load_metadata(args.target)
    pairs = audited(metadata, args.target, args.table)
    engine = create_engine(args.url)
    try:
        if args.table:
            reports = [verify(engine, table, anchor=anchor) for table, _ in pairs]
        else:
            reports = [verify(engine, metadata, anchor=anchor)]
    finally:
        engine.dispose()
    broken = next((report for report in reports if not report.ok), None)
    report = broken or reports[-1]
    sealed = sum(r.sealed_rows for r in reports)
    unsealed = sum(r.unsealed_rows for r in reports)
    nothing_sealed = broken is None and sealed == 0 and unsealed > 0
    if ui.json:
        ui.emit_json(asdict(report))
        return EXIT_OK if broken is None and not nothing_sealed else EXIT_DRIFT
    for erasure in (e for r in reports for e in r.erasures):
        ui.line(
            f"erasure {erasure.marker_id} of {erasure.audit_table}: {', '.join(erasure.columns)} "
            f"in {_rows(erasure.rows)} by {erasure.erased_by} at {erasure.erased_at}: "
            f"{erasure.reason}"
        )
    for removed in (item for r in reports for item in r.removed):
        ui.line(
            f"partition {removed.partition} of {removed.audit_table} removed by retention "
            f"({_rows(removed.rows)} sealed) by {removed.removed_by} at {removed.removed_at}"
        )
    ui.line(f"head {report.head or '(empty chain)'}")
    if broken is not None:
        where = ""
        if broken.first_broken is not None:
            audit_table, audit_id = broken.first_broken
            where = f" in {audit_table}" + ("" if audit_id is None else f" at audit_id {audit_id}")
        ui.line(f"BROKEN{where}: {broken.problem}", "error")
        return EXIT_DRIFT
    if nothing_sealed:
        ui.line(f"nothing is sealed, and {_rows(unsealed)} of audit history are: run seal", "error")
        return EXIT_DRIFT
    more = f"; {_rows(unsealed)} not sealed yet (run seal)" if unsealed else ""
    ui.line(f"verified {_rows(sealed, 'sealed row')}{more}", "ok")
    return EXIT_OK


def _erase_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = (
        f"%(prog)s [--json] [--no-color] [--debug] {ERASE_USAGE} [--column NAME] --reason TEXT "
        "[--url URL]"
    )
    parser.add_argument("words", nargs="*", metavar="ARGUMENT", help=ERASE_USAGE)
    parser.add_argument(
        "--column",
        action="append",
        default=None,
        metavar="NAME",
        help="erase only this column (default: every column but the key); repeatable",
    )
    parser.add_argument("--setting", metavar="NAME=VALUE", help="erase a session setting's value")
    parser.add_argument("--reason", required=True, help="why (recorded in the trail)")
    add_url_argument(parser)


def _erase(args: argparse.Namespace, ui: UI) -> int:
    if not args.words:
        raise CliError(f"erase takes {ERASE_USAGE}")
    if args.setting is not None and args.column is not None:
        raise CliError(
            "--column cannot be used with --setting: a setting's value is erased from "
            "the setting's own column in every table recording it"
        )
    target, words = split_target(args.words)
    engine = create_engine(args.url)
    try:
        if args.setting is not None:
            done = _erase_setting(engine, target, words, args)
        else:
            if len(words) != 2 or args.column == []:
                raise CliError(f"erase takes {ERASE_USAGE}, got {' '.join(args.words)!r}")
            with begin(engine) as connection:
                table = find_table(connection, target, words[0])
                key = parse_key(table, words[1])
                done = [erase(connection, table, key, columns=args.column, reason=args.reason)]
    except ValueError as error:
        raise CliError(str(error)) from None
    finally:
        engine.dispose()
    nothing = not any(d.rows for d in done)
    if ui.json:
        ui.emit_json({"erased": [asdict(item) for item in done]})
        return EXIT_DRIFT if nothing else EXIT_OK
    if nothing:
        ui.line("nothing to erase: no recorded version holds a value that matches", "error")
        return EXIT_DRIFT
    ui.table(
        ("audit table", "columns", "rows", "of them sealed", "kept partitions", "marker"),
        [
            (
                d.audit_table,
                ", ".join(d.columns),
                d.rows,
                d.sealed_rows,
                ", ".join(d.kept_partitions),
                d.marker_id,
            )
            for d in done
        ],
    )
    ui.line(f"erased values from {sum(d.rows for d in done)} audit rows", "ok")
    return EXIT_OK


def _erase_setting(
    engine: sa.Engine, target: str | None, words: list[str], args: argparse.Namespace
) -> list[Erased]:
    name, sep, text = args.setting.partition("=")
    if not sep or not name:
        raise CliError(f"--setting takes NAME=VALUE, got {args.setting!r}")
    if target is None or words:
        raise CliError(f"erase takes {ERASE_USAGE}, got {' '.join(args.words)!r}")
    metadata = load_metadata(target)
    for table, spec in audited(metadata, target, []):
        column = next((s.column for s in spec.settings if s.name == name), None)
        if column is not None:
            value = typed_value(table.info[AUDIT_TABLE_KEY].c[column], text, table)
            return erase_setting(engine, metadata, name, value, reason=args.reason)
    raise CliError(f"no audited table of {target} records session setting {name!r}")


SEAL = Command(
    name="seal",
    help="hash the audit rows written since the last seal into the chain; print its head",
    description=__doc__,
    add_arguments=_seal_arguments,
    run=_seal,
)
VERIFY = Command(
    name="verify",
    help="recompute the chain of seals and every sealed row; exit 1 when broken",
    description=__doc__,
    add_arguments=_verify_arguments,
    run=_verify,
)
ERASE = Command(
    name="erase",
    help="erase values from every recorded version of a row, or a setting's value",
    description=__doc__,
    add_arguments=_erase_arguments,
    run=_erase,
)
