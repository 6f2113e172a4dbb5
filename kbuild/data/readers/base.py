"""What every reader shares: options taken from the spec, the reader registry, and the row policy.

A reader turns one file into `Example`s. The policy for bad rows (`data.on_error`), the row cap
(`data.limit`) and the "no usable rows" check live here once, in `RowCollector`, so every format
reports problems the same way: file, line, what is wrong, what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kbuild.data.example import TEXT, Example, ReadResult
from kbuild.errors import DataError
from kbuild.registry import Registry, did_you_mean

if TYPE_CHECKING:
    from kbuild.spec.data import DataSpec

LABEL = "label"
"""The role of the label column; every other role of `data.columns` names a text input."""
ROLES = (TEXT, LABEL)
"""The roles of a one-text task (the default inputs); a task that reads more texts declares them
(`Task.inputs`) and they are passed to `read_examples` as `inputs`."""

SKIP_HINT = "set data.on_error: skip to drop such rows"

DEFAULT_MAX_BYTES = 1 << 30
"""`data.max_bytes`: the largest data file read whole (1 GiB), far past every corpus kbuild ships
specs for (IMDB's 50k unlabelled reviews are 130 MB) and well below what would exhaust a 24 GiB
machine once decoded, split and encoded."""
DEFAULT_MAX_ROW_BYTES = 16 << 20
"""`data.max_row_bytes`: the longest line (16 MiB); a longer one means a file that is not rows of
text (no line breaks), found before it is decoded."""

Column = str | int


@dataclass(frozen=True)
class ReadOptions:
    """How to read one file, taken from `DataSpec` (see `from_spec`).

    Args:
        key: the spec key the file came from (`data.train`), for messages.
        inputs: (input name, column name or 0-based index) of each text the example holds, in the
            task's order; one `text` input by default.
        label_column: the same for the label; `None` reads unlabelled examples.
        header: whether csv/tsv files start with a header row.
        limit: keep at most this many examples (`None`: all).
        on_error: `fail` raises on the first bad row; `skip` drops it and counts it.
        target_suffix: `parallel` files: the extension of the aligned target file.
        drop_labels: rows with one of these labels are left out and counted as skipped (an NLI
            set's `-`, "no majority").
        max_bytes: the largest file read (its size is checked before a byte is read).
        max_row_bytes: the longest line read.
        structured: inputs whose JSON Lines value may be a JSON list (chat's `messages`, a list of
            {role, content}); such a value is kept as its JSON text for the task to parse.
    """

    key: str
    inputs: tuple[tuple[str, Column], ...] = ((TEXT, TEXT),)
    label_column: Column | None = LABEL
    header: bool = True
    limit: int | None = None
    on_error: Literal["fail", "skip"] = "fail"
    target_suffix: str | None = None
    drop_labels: tuple[str, ...] = ()
    max_bytes: int = DEFAULT_MAX_BYTES
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES
    structured: tuple[str, ...] = ()

    @property
    def text_column(self) -> Column:
        """The first input's column: the only one of a one-text format (conll, parallel, text)."""
        return self.inputs[0][1]

    @property
    def columns(self) -> list[tuple[str, Column]]:
        """(role, column) of every column read: the inputs, then the label if labelled."""
        label = [] if self.label_column is None else [(LABEL, self.label_column)]
        return [*self.inputs, *label]

    @classmethod
    def from_spec(cls, data: DataSpec, key: str, labelled: bool = True,
                  inputs: tuple[str, ...] = (TEXT,), structured: tuple[str, ...] = ()) -> ReadOptions:
        """Options for one split of `data`; `labelled=False` ignores the label column; `inputs`
        are the names of the texts the task reads (`data.columns` roles besides `label`), and
        `structured` those of them a JSON Lines row may hold as a list."""
        for role, column in data.columns.items():
            problem = column_problem(role, column, data.header, (*inputs, LABEL))
            if problem:
                raise DataError(f"data.columns.{role}: {problem}")
        missing = [name for name in inputs if name not in data.columns]
        if missing:
            raise DataError(f"data.columns: no {missing[0]!r} column given; e.g. columns: {{{missing[0]}: sentence}}")
        return cls(
            key=key,
            inputs=tuple((name, data.columns[name]) for name in inputs),
            label_column=data.columns.get(LABEL) if labelled else None,
            header=data.header,
            limit=data.limit,
            on_error=data.on_error,
            target_suffix=data.target_suffix,
            drop_labels=tuple(data.drop_labels),
            max_bytes=data.max_bytes,
            max_row_bytes=data.max_row_bytes,
            structured=tuple(name for name in structured if name in inputs),
        )


def column_problem(role: str, column: Column, header: bool, roles: tuple[str, ...]) -> str | None:
    """What is wrong with one `data.columns` entry (an unknown role, an empty name, a negative
    index, a name where the file has no header), or None. The task checks ask this at spec time,
    so the same words locate the key in the spec file."""
    if role not in roles:
        return f"unknown role {role!r}{did_you_mean(role, roles)}; expected roles: {', '.join(roles)}"
    if isinstance(column, str) and not column.strip():
        return "expected a column name or a 0-based index; received an empty name"
    if isinstance(column, str) and not header:
        return f"{column!r} is a column name but data.header is false; give a 0-based column index instead"
    if isinstance(column, int) and column < 0:
        return f"expected a 0-based index; received {column}"
    return None


ReadFunction = Callable[[Path, ReadOptions], ReadResult]


@dataclass(frozen=True)
class Reader:
    """A registered file format: its name, the extensions that imply it, and its read function."""

    name: str
    extensions: tuple[str, ...]
    read: ReadFunction


READERS: Registry[Reader] = Registry("data format")


def register_reader(
    name: str, extensions: tuple[str, ...]
) -> Callable[[ReadFunction], ReadFunction]:
    """Decorator: `@register_reader("tsv", (".tsv",))` over `read(path, options) -> ReadResult`."""

    def decorator(read: ReadFunction) -> ReadFunction:
        READERS.register(name)(Reader(name, extensions, read))
        return read

    return decorator


def read_text(path: Path, options: ReadOptions | None = None) -> str:
    """The file decoded as UTF-8 (a leading BOM dropped), or a DataError at the offending line.

    Whole-file decoding is both the fastest way to read these files and the only way to name the
    line of an invalid byte. With `options`, its bounds hold first: the size before a byte is read,
    the longest line before decoding.
    """
    raw = _read_bounded(path, options) if options is not None else path.read_bytes()
    # The BOM is cut here rather than by the utf-8-sig codec, whose error offsets then count from
    # after it: offsets stay offsets into the file.
    start = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        return raw[start:].decode("utf-8") if start else raw.decode("utf-8")
    except UnicodeDecodeError as error:
        offset = error.start + start
        line = raw.count(b"\n", 0, offset) + 1
        column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
        raise DataError(
            f"not valid UTF-8 text ({error.reason} at byte {offset}, column {column}); save the file as UTF-8",
            str(path),
            line,
        ) from None


_CHUNK = 8 << 20


def _read_bounded(path: Path, options: ReadOptions) -> bytes:
    """The file's bytes, read in chunks that are checked as they come: its size against
    `max_bytes` (before reading), each line's length against `max_row_bytes`, so a file without
    line breaks fails after one row's worth of reading, not after filling memory."""
    size = path.stat().st_size
    if size > options.max_bytes:
        raise DataError(f"{options.key}: the file is {size:,} bytes, over data.max_bytes ({options.max_bytes:,}); "
                        "raise data.max_bytes if it really is one corpus", str(path))
    data, line, run = bytearray(), 1, 0  # `run`: bytes since the last line break
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            parts = chunk.split(b"\n")
            lengths = [run + len(parts[0]), *map(len, parts[1:])]
            longest = max(lengths[:-1], default=0) if len(parts) > 1 else 0
            if max(longest, lengths[-1]) > options.max_row_bytes:
                at = next(i for i, n in enumerate(lengths) if n > options.max_row_bytes)
                raise DataError(f"{options.key}: a row over data.max_row_bytes ({options.max_row_bytes:,} bytes); "
                                "is this a text file with one row per line?", str(path), line + at)
            line += len(parts) - 1
            run = lengths[-1]
            data += chunk
            if len(data) > options.max_bytes:  # a file that grew while it was read
                raise DataError(f"{options.key}: more than data.max_bytes ({options.max_bytes:,}) bytes", str(path))
    return bytes(data)


def split_lines(text: str) -> list[str]:
    """Lines split on `\\n` only (`str.splitlines` would also split on characters such as U+2028
    that may appear inside a text), with a trailing `\\r` removed."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def column_name(column: Column) -> str:
    """How messages name a column: `'sentence'` by name, `#1` by index."""
    return repr(column) if isinstance(column, str) else f"#{column}"


class RowCollector:
    """Gathers examples from one file, applying `on_error` and `limit` the same way for all formats.

    Readers call `add()` for each good row and `bad()` for each bad one, and stop once `full`.
    """

    def __init__(self, path: Path, options: ReadOptions):
        self.path = path
        self.options = options
        self.examples: list[Example] = []
        self.skipped = 0
        self._first_problem: tuple[int, str] | None = None

    @property
    def full(self) -> bool:
        limit = self.options.limit
        return limit is not None and len(self.examples) >= limit

    def add(self, inputs: Mapping[str, str] | str, label: str | None, line: int) -> None:
        """Keep the row (its texts by input name, or the one text), or treat it as bad when a text
        (or a required label) is empty; a label in `drop_labels` drops it quietly, counted."""
        options = self.options
        texts = {options.inputs[0][0]: inputs} if type(inputs) is str else inputs
        for name, text in texts.items():
            if not text.strip():
                self._reject(line, f"empty text in column {column_name(dict(options.inputs)[name])}")
                return
        if options.label_column is not None and not label:
            self._reject(line, f"empty label in column {column_name(options.label_column)}")
        elif label is not None and label in options.drop_labels:
            self.skipped += 1
        else:
            self.examples.append(Example(texts, label, line))

    def bad(self, line: int, message: str) -> None:
        """A row that could not be parsed: raise under `fail`, count under `skip`."""
        self._reject(line, message)

    def _reject(self, line: int, message: str) -> None:
        if self.options.on_error == "fail":
            raise DataError(f"{message} ({SKIP_HINT})", str(self.path), line)
        self.skipped += 1
        if self._first_problem is None:
            self._first_problem = (line, message)

    def result(self) -> ReadResult:
        """The examples read; a DataError when the file held no usable row at all."""
        if not self.examples:
            if self._first_problem is not None:
                line, message = self._first_problem
                raise DataError(
                    f"{self.options.key}: no usable rows: all {self.skipped} rows were bad and "
                    f"skipped; the first, at line {line}: {message}",
                    str(self.path),
                )
            raise DataError(
                f"{self.options.key}: no rows to read (the file is empty or holds only a header)",
                str(self.path),
            )
        return ReadResult(self.examples, self.skipped, str(self.path))
