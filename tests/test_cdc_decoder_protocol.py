"""The pgoutput parser on messages built by hand (the formats PostgreSQL documents), and the
COPY text the decoder makes of values; no server needed."""

from __future__ import annotations

import io
import struct

import pytest

from sqlalchemy_postgresql_audit.cdc.pgoutput import (
    UNCHANGED,
    Begin,
    Change,
    Commit,
    Relation,
    Truncate,
    commit_datetime,
    copy_binary_rows,
    format_lsn,
    parse_lsn,
    parse_message,
)
from sqlalchemy_postgresql_audit.cdc.rows import copy_fields, text_array


def tuple_data(*values: bytes | str | None) -> bytes:
    out = struct.pack("!h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value == "u":
            out += b"u"
        else:
            assert isinstance(value, bytes)
            out += b"t" + struct.pack("!i", len(value)) + value
    return out


def test_begin_commit_relation_and_truncate() -> None:
    assert parse_message(b"B" + struct.pack("!qqI", 7, 1_000_000, 42)) == Begin(7, 1_000_000, 42)
    assert parse_message(b"C" + struct.pack("!bqqq", 0, 5, 9, 3)) == Commit(5, 9, 3)
    relation = (
        b"R"
        + struct.pack("!I", 16384)
        + b"shop\0order line\0"
        + b"f"
        + struct.pack("!h", 2)
        + b"\x01id\0"
        + struct.pack("!Ii", 23, -1)
        + b"\x00note\0"
        + struct.pack("!Ii", 25, -1)
    )
    assert parse_message(relation) == Relation(
        16384, "shop", "order line", "f", ("id", "note"), ("id",)
    )
    truncate = b"T" + struct.pack("!ib", 2, 0) + struct.pack("!II", 1, 2)
    assert parse_message(truncate) == Truncate((1, 2))
    assert parse_message(b"Y" + b"anything") is None
    assert str(commit_datetime(1_000_000)) == "2000-01-01 00:00:01+00:00"


def test_an_update_with_old_key_new_row_and_an_unchanged_toasted_value() -> None:
    message = (
        b"U"
        + struct.pack("!I", 16385)
        + b"K"
        + tuple_data(b"1", None)
        + b"N"
        + tuple_data(b"2", "u")
    )
    change = parse_message(message)
    assert isinstance(change, Change)
    assert (change.kind, change.relation, change.old_is_key) == ("U", 16385, True)
    assert list(change.old or ()) == [b"1", None]
    assert list(change.new or ()) == [b"2", UNCHANGED]


def test_copy_text_escapes_what_it_must_and_marks_null() -> None:
    assert copy_fields([b"a", None, b""]) == b"a\t\\N\t"
    assert copy_fields([b"a\tb", b"c\\d\ne\r"]) == b"a\\tb\tc\\\\d\\ne\\r"
    assert text_array(["a", 'say "x"', "back\\slash"]) == b'{"a","say \\"x\\"","back\\\\slash"}'


def test_lsn_text_round_trips_and_copy_binary_rows_split() -> None:
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    header = b"PGCOPY\n\xff\r\n\0" + struct.pack("!ii", 0, 0)
    rows = b"".join(struct.pack("!hi", 1, len(r)) + r for r in (b"one", b"two"))
    stream = header + rows + struct.pack("!h", -1)
    # Read a few bytes at a time too: rows and their headers cross the reads.
    for chunk in (1 << 20, 1, 3, 7):
        assert list(copy_binary_rows(io.BytesIO(stream), chunk)) == [b"one", b"two"]
    with pytest.raises(ValueError, match="ends inside a row"):
        list(copy_binary_rows(io.BytesIO(stream[:-5]), 4))
