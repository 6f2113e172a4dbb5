"""What every reader shares: options taken from the spec, the reader registry, and the row policy.

A reader turns one file into `Example`s. The policy for bad rows (`data.on_error`), the row cap
(`data.limit`) and the "no usable rows" check live here once, in `RowCollector`, so every format
reports problems the same way: file, line, what is wrong, what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kbuild.data.example import Example, ReadResult
from kbuild.errors import DataError
from kbuild.registry import Registry, did_you_mean

if TYPE_CHECKING:
    from kbuild.spec.data import DataSpec

ROLES = ("text", "label")
"""Column roles a reader understands (`data.columns` keys)."""

SKIP_HINT = "set data.on_error: skip to drop such rows"

Column = str | int


@dataclass(frozen=True)
class ReadOptions:
    """How to read one file, taken from `DataSpec` (see `from_spec`).

    Args:
        key: the spec key the file came from (`data.train`), for messages.
        text_column: column name, or 0-based index, holding the text.
        label_column: the same for the label; `None` reads unlabelled examples.
        header: whether csv/tsv files start with a header row.
        limit: keep at most this many examples (`None`: all).
        on_error: `fail` raises on the first bad row; `skip` drops it and counts it.
        target_suffix: `parallel` files: the extension of the aligned target file.
    """

    key: str
    text_column: Column = "text"
    label_column: Column | None = "label"
    header: bool = True
    limit: int | None = None
    on_error: Literal["fail", "skip"] = "fail"
    target_suffix: str | None = None

    @classmethod
    def from_spec(cls, data: DataSpec, key: str, labelled: bool = True) -> ReadOptions:
        """Options for one split of `data`; `labelled=False` ignores the label column."""
        unknown = [role for role in data.columns if role not in ROLES]
        if unknown:
            role = unknown[0]
            raise DataError(
                f"data.columns: unknown role {role!r}{did_you_mean(role, ROLES)}; "
                f"expected roles: {', '.join(ROLES)}"
            )
        if "text" not in data.columns:
            raise DataError("data.columns: no `text` column given; e.g. columns: {text: sentence}")
        for role, column in data.columns.items():
            if isinstance(column, str) and not data.header:
                raise DataError(
                    f"data.columns.{role}: {column!r} is a column name but data.header is false; "
                    "give a 0-based column index instead"
                )
            if isinstance(column, int) and column < 0:
                raise DataError(f"data.columns.{role}: expected a 0-based index; received {column}")
        return cls(
            key=key,
            text_column=data.columns["text"],
            label_column=data.columns.get("label") if labelled else None,
            header=data.header,
            limit=data.limit,
            on_error=data.on_error,
            target_suffix=data.target_suffix,
        )


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


def read_text(path: Path) -> str:
    """The file decoded as UTF-8 (a leading BOM dropped), or a DataError at the offending line.

    Whole-file decoding is both the fastest way to read these files and the only way to name the
    line of an invalid byte.
    """
    raw = path.read_bytes()
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

    def add(self, text: str, label: str | None, line: int) -> None:
        """Keep the row, or treat it as bad when its text (or required label) is empty."""
        options = self.options
        if not text.strip():
            self._reject(line, f"empty text in column {column_name(options.text_column)}")
        elif options.label_column is not None and not label:
            self._reject(line, f"empty label in column {column_name(options.label_column)}")
        else:
            self.examples.append(Example(text, label, line))

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
