"""Output for people and for machines: rich tables and colour on a terminal, plain text when
piped, JSON with ``--json``; progress and warnings on stderr.

Colour is on only when stdout is a terminal, ``--no-color`` is not given, ``NO_COLOR`` is unset
(https://no-color.org) and ``rich`` (the ``cli`` extra) is installed.  Plain text is aligned
columns with no decoration, so ``grep`` and ``awk`` work on it.
"""

from __future__ import annotations

import datetime
import decimal
import json
import os
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..history._redacted import Hashed, Redacted

#: Install progress is reported once per this many tables (on a terminal).
PROGRESS_EVERY = 25

#: Style names the commands use, and what rich makes of them.
STYLES = {"ok": "green", "drift": "bold red", "warn": "yellow", "dim": "dim", "head": "bold"}


def cell(value: object) -> str:
    """How a value reads in a table: NULL as ``-``, timestamps to the millisecond."""
    if value is None:
        return "-"
    if isinstance(value, datetime.datetime):
        return value.strftime("%H:%M:%S.%f")[:-3]
    return str(value)


def to_json(value: object) -> Any:
    """JSON-ready ``value``: decimals and UUIDs as strings, times in ISO 8601; a redacted
    value as ``{"redacted": true}`` (``history`` and ``as-of`` name the form:
    ``{"redacted": "mask"}``), a hashed one as ``{"hash": {"key_version": 1, "digest": hex}}``,
    objects no column's text can be confused with."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, Redacted):  # an object: no text value can be mistaken for it
        return {"redacted": True}
    if isinstance(value, Hashed):  # the whole digest, where a table shows its first bytes
        return {"hash": {"key_version": value.key_version, "digest": value.digest.hex()}}
    return value


def wants_color(no_color_flag: bool, stream: TextIO) -> bool:
    if no_color_flag or os.environ.get("NO_COLOR"):
        return False
    if not _isatty(stream):
        return False
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@dataclass(slots=True)
class UI:
    """Where a command writes.  ``json`` commands print one document with ``emit_json``."""

    json: bool = False
    color: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def line(self, text: str = "", style: str | None = None) -> None:
        if self.color and style:
            self._console().print(text, style=STYLES.get(style, style), markup=False)
        else:
            print(text, file=self.out)

    def heading(self, text: str) -> None:
        self.line()
        self.line(text, "head")

    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[object]],
        *,
        styles: Sequence[str | None] = (),
    ) -> None:
        """Rows of cells; ``styles[i]`` colours row ``i`` on a terminal."""
        texts = [[cell(value) for value in row] for row in rows]
        if self.color:
            self._rich_table(columns, texts, styles)
            return
        widths = [max(len(text) for text in column) for column in zip(columns, *texts, strict=True)]
        for row in [list(columns), *texts]:
            padded = (text.ljust(width) for text, width in zip(row, widths, strict=True))
            print("  ".join(padded).rstrip(), file=self.out)

    def emit_json(self, document: object) -> None:
        json.dump(to_json(document), self.out, indent=2)
        self.out.write("\n")

    def progress(self, done: int, total: int, what: str) -> None:
        """A line on stderr every :data:`PROGRESS_EVERY` items, when stderr is a terminal."""
        if (
            total >= PROGRESS_EVERY
            and _isatty(self.err)
            and (done % PROGRESS_EVERY == 0 or done == total)
        ):
            print(f"{what} {done}/{total}", file=self.err, flush=True)

    def status(self, text: str) -> None:
        """What a slow step is doing (starting a server), on stderr when it is a terminal."""
        if _isatty(self.err):
            print(text, file=self.err, flush=True)

    def warn(self, text: str) -> None:
        print(f"warning: {text}", file=self.err, flush=True)

    def _console(self) -> Any:
        from rich.console import Console

        return Console(file=self.out, force_terminal=True, highlight=False, soft_wrap=True)

    def _rich_table(
        self, columns: Sequence[str], rows: list[list[str]], styles: Sequence[str | None]
    ) -> None:
        from rich import box
        from rich.table import Table
        from rich.text import Text

        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
        for name in columns:
            table.add_column(name)
        for i, row in enumerate(rows):
            style = styles[i] if i < len(styles) else None
            table.add_row(
                *(Text(text) for text in row), style=STYLES.get(style, style) if style else None
            )
        self._console().print(table)
