"""The rows `kbuild predict` reads: plain lines, JSON lines or a csv/tsv file with a header, from
any readable stream (a file, a pipe, a FIFO, stdin), one row at a time.

Nothing here reads ahead: a stream is consumed as its rows are predicted, so a pipe works like a
file and a row that cannot be read is reported after every row before it was answered. Each row is
read with a byte bound, so a file without line breaks (or `/dev/zero`) is an error at its first row
instead of unbounded memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from kbuild.errors import DataError

MAX_ROW_BYTES = 1 << 20
"""The longest row `kbuild predict` reads (1 MiB): far above any text a model reads whole."""

FORMATS = ("auto", "text", "jsonl", "csv", "tsv")
"""`kbuild predict --format`: `auto` picks by the file's extension, else by the first row (an
object: JSON lines), else plain lines."""


@dataclass(frozen=True)
class BadRow:
    """A row that could not be read: its 1-based line and why."""

    line: int
    message: str


Row = dict[str, str]


def raw_lines(stream: BinaryIO, max_bytes: int = MAX_ROW_BYTES) -> Iterator[tuple[int, str] | BadRow]:
    """(line number, text without its line break) per line of a binary stream, decoded as UTF-8
    one line at a time (so an undecodable byte is a `BadRow` at its line), or a `BadRow` for a line
    longer than `max_bytes`, the rest of which is skipped unread into memory."""
    number = 0
    while True:
        raw = stream.readline(max_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_bytes and not raw.endswith(b"\n"):
            # Said first: a caller that stops at a bad row never reads an endless one (/dev/zero).
            yield BadRow(number, f"row longer than {max_bytes:,} bytes (no line break); is this a text file?")
            while (rest := stream.readline(1 << 16)) and not rest.endswith(b"\n"):
                pass
            continue
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        try:
            yield number, raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as error:
            yield BadRow(number, f"not valid UTF-8 text ({error.reason} at byte {error.start} of the line); "
                                 "save the file as UTF-8")


def read_rows(stream: BinaryIO, inputs: tuple[str, ...], fmt: str = "auto", name: str = "<stdin>",
              max_bytes: int = MAX_ROW_BYTES) -> Iterator[tuple[int, Row] | BadRow]:
    """(line, texts by input name) per row of `stream`, or a `BadRow` naming what is wrong.

    Args:
        stream: binary, read lazily.
        inputs: the names of the texts the model reads (`text`, or `text` and `text_pair`, ...).
        fmt: one of `FORMATS`; plain lines need a one-input model.
        name: the file name, for the extension `auto` looks at.
        max_bytes: the longest row read.
    """
    lines = raw_lines(stream, max_bytes)
    fmt = _format_of(fmt, name)
    if fmt == "auto":
        first = _first_row(lines)
        if first is None:
            return
        fmt = "jsonl" if isinstance(first, tuple) and first[1].lstrip().startswith("{") else "text"
        lines = _chain(first, lines)
    if fmt == "text" and len(inputs) > 1:
        raise DataError(f"this model reads {', '.join(inputs)}: give JSON lines with those fields "
                        f"(e.g. {json.dumps({n: '...' for n in inputs})}) or a csv/tsv file with a header", name)
    yield from READERS[fmt](lines, inputs, name)


def _format_of(fmt: str, name: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {"jsonl": "jsonl", "json": "jsonl", "csv": "csv", "tsv": "tsv", "txt": "text"}.get(suffix, "auto")


def _first_row(lines: Iterator) -> tuple[int, str] | BadRow | None:
    for item in lines:
        if isinstance(item, BadRow) or item[1].strip():
            return item
    return None


def _chain(first, rest: Iterator) -> Iterator:
    yield first
    yield from rest


def _nonblank(lines: Iterable, parse) -> Iterator[tuple[int, Row] | BadRow]:
    """`parse(number, line)` over every non-blank line (None: a line that is not a row, such as a
    header); a `BadRow` from reading passes through."""
    for item in lines:
        if isinstance(item, BadRow):
            yield item
        elif item[1].strip() and (row := parse(*item)) is not None:
            yield row


def _plain(lines: Iterable, inputs: tuple[str, ...], name: str) -> Iterator[tuple[int, Row] | BadRow]:
    return _nonblank(lines, lambda number, line: (number, {inputs[0]: line}))


def _jsonl(lines: Iterable, inputs: tuple[str, ...], name: str) -> Iterator[tuple[int, Row] | BadRow]:
    def parse(number: int, line: str) -> tuple[int, Row] | BadRow:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            return BadRow(number, f"invalid JSON ({error.msg} at column {error.colno}); expected one object per line")
        if not isinstance(row, dict):
            return BadRow(number, f"expected a JSON object with {', '.join(inputs)}; received {type(row).__name__}")
        return _fields(number, row, inputs)

    return _nonblank(lines, parse)


def _delimited(delimiter: str):
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL

    def read(lines: Iterable, inputs: tuple[str, ...], name: str) -> Iterator[tuple[int, Row] | BadRow]:
        header: list[str] = []

        def parse(number: int, line: str) -> tuple[int, Row] | BadRow | None:
            fields = next(csv.reader([line], delimiter=delimiter, quoting=quoting))
            if not header:
                header.extend(field.strip() for field in fields)
                missing = [column for column in inputs if column not in header]
                if missing:
                    raise DataError(f"the header has no column {', '.join(map(repr, missing))}; this model reads "
                                    f"{', '.join(inputs)}; the header has: {', '.join(header)}", name, number)
                return None
            if len(fields) != len(header):
                return BadRow(number, f"row has {len(fields)} fields but the header has {len(header)}")
            return _fields(number, dict(zip(header, fields, strict=True)), inputs)

        return _nonblank(lines, parse)

    return read


def _fields(number: int, row: dict, inputs: tuple[str, ...]) -> tuple[int, Row] | BadRow:
    """The model's inputs out of one parsed row; other fields are ignored (an id column, a gold label)."""
    texts = {}
    for name in inputs:
        value = row.get(name)
        if value is None:
            return BadRow(number, f"missing field {name!r}; this model reads {', '.join(inputs)}; "
                                  f"the row has: {', '.join(map(str, row)) or 'no fields'}")
        if not isinstance(value, str):
            return BadRow(number, f"field {name!r} holds {type(value).__name__}; expected a string")
        texts[name] = value
    return number, texts


READERS = {"text": _plain, "jsonl": _jsonl, "csv": _delimited(","), "tsv": _delimited("\t")}
