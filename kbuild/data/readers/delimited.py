"""Delimited files: `tsv` (GLUE style, no quoting) and `csv` (RFC 4180 quoting via the csv module).

Both share one row loop: resolve the requested columns against the header, then check each row's
width so a stray delimiter is reported at its line rather than silently shifting columns.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from kbuild.data.example import ReadResult
from kbuild.data.readers.base import (
    LABEL,
    Column,
    ReadOptions,
    RowCollector,
    column_name,
    read_text,
    register_reader,
    split_lines,
)
from kbuild.errors import DataError
from kbuild.registry import did_you_mean

Row = tuple[int, list[str]]
"""(1-based line where the row starts, its fields)."""


@register_reader("tsv", extensions=(".tsv",))
def read_tsv(path: Path, options: ReadOptions) -> ReadResult:
    """Tab-separated rows, one per line. Fields are taken verbatim: quotes are ordinary characters,
    as in SST-2 and the other GLUE files, so a text may contain `"` but never a tab or newline."""
    rows = (
        (number, line.split("\t")) for number, line in enumerate(split_lines(read_text(path, options)), 1)
    )
    return _read_rows(path, options, rows, delimiter="tab")


@register_reader("csv", extensions=(".csv",))
def read_csv(path: Path, options: ReadOptions) -> ReadResult:
    """Comma-separated rows; quoted fields may hold commas, quotes (`""`) and line breaks."""
    return _read_rows(path, options, _csv_rows(path, options), delimiter="comma")


def _csv_rows(path: Path, options: ReadOptions) -> Iterator[Row]:
    """csv rows with the line each one *starts* on (a quoted field may span several lines, and
    `csv.reader.line_num` gives where a row ends). Strict parsing: a quote left open would
    otherwise swallow the rest of the file into one field without a word."""
    reader = csv.reader(io.StringIO(read_text(path, options), newline=""), strict=True)
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DataError(f"malformed CSV row: {error}", str(path), start) from None
        yield start, fields
        start = reader.line_num + 1


def _read_rows(path: Path, options: ReadOptions, rows: Iterator[Row], delimiter: str) -> ReadResult:
    collector = RowCollector(path, options)
    rows = (row for row in rows if not _is_blank(row[1]))
    width: int | None = None
    if options.header:
        first = next(rows, None)
        if first is None:
            return collector.result()
        header_line, header = first[0], [name.strip() for name in first[1]]
        width = len(header)
        indices = {role: _header_index(column, header, path, header_line, options.key) for role, column in options.columns}
    else:
        indices = {role: int(column) for role, column in options.columns}
    requested = [(column, indices[role]) for role, column in options.columns]
    label_index = indices.get(LABEL)
    inputs = [(name, indices[name]) for name, _ in options.inputs]

    for line, fields in rows:
        problem = _width_problem(len(fields), width, requested, delimiter)
        if problem:
            collector.bad(line, problem)
        else:
            label = fields[label_index].strip() if label_index is not None else None
            collector.add({name: fields[index] for name, index in inputs}, label, line)
        if collector.full:
            break
    return collector.result()


def _is_blank(fields: list[str]) -> bool:
    """An empty or whitespace-only line is not a row (files often end with one)."""
    return not fields or (len(fields) == 1 and not fields[0].strip())


def _width_problem(
    count: int, width: int | None, requested: list[tuple[Column, int]], delimiter: str
) -> str | None:
    """Why a row of `count` fields cannot be read, or None when it can.

    With a header every row must have its width (a stray delimiter would otherwise shift the
    columns silently); without one, a row only needs the requested columns.
    """
    if width is not None and count > width:
        return (
            f"row has {count} fields but the header has {width} (a stray {delimiter} in the text?)"
        )
    needed = width if width is not None else max(index for _, index in requested) + 1
    if count >= needed:
        return None
    missing = [column_name(column) for column, index in requested if index >= count]
    expected = f"the header has {width}" if width is not None else f"{needed} are needed"
    what = f"; column {', '.join(missing)} is missing" if missing else ""
    return f"row has {count} field{'' if count == 1 else 's'} but {expected}{what}"


def _header_index(column: Column, header: list[str], path: Path, line: int, key: str) -> int:
    """Index of a requested column in the header, or a DataError listing the columns it has."""
    names = ", ".join(header)
    if isinstance(column, int):
        if column >= len(header):
            raise DataError(
                f"{key}: column #{column} is out of range; the header has {len(header)} "
                f"columns: {names}",
                str(path),
                line,
            )
        return column
    if column not in header:
        raise DataError(
            f"{key}: column {column!r} not found in the header{did_you_mean(column, header)}; "
            f"the header has: {names} (set data.columns to pick others)",
            str(path),
            line,
        )
    return header.index(column)
