"""File readers, one module per format, looked up by name in `READERS` (tsv, csv, jsonl, text,
conll, parallel, squad).

`read_examples` is the entry point: it finds the file, picks the format (the spec's, or the one the
extension implies) and applies the spec's columns, limit and on_error policy. Plain Python only:
reading never imports TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbuild.data.example import Example, ReadResult
from kbuild.data.readers import conll, delimited, jsonl, parallel, squad, text  # noqa: F401  (registration side effect)
from kbuild.data.readers.base import READERS, Reader, ReadOptions, register_reader
from kbuild.errors import DataError
from kbuild.paths import expand_data_path

if TYPE_CHECKING:
    from pathlib import Path

    from kbuild.spec.data import DataSpec

__all__ = [
    "READERS",
    "Example",
    "ReadOptions",
    "ReadResult",
    "Reader",
    "infer_format",
    "read_examples",
    "register_reader",
]


def read_examples(path: str, data: DataSpec, key: str, labelled: bool = True,
                  inputs: tuple[str, ...] = ("text",), structured: tuple[str, ...] = ()) -> ReadResult:
    """Read one split's file as `data` describes it.

    Args:
        path: the file; `${KBUILD_DATA}` and `~` are expanded.
        data: the spec's `data:` section (format, columns, header, limit, on_error).
        key: the spec key naming this file, e.g. `data.valid`, used in every message.
        labelled: read the label column too (`False` for prediction input).
        inputs: the names of the texts each example holds (the task's inputs; `data.columns`
            maps each to a column).
        structured: the inputs a JSON Lines row may hold as a JSON list (kept as its JSON text).

    Returns:
        The examples and the number of rows skipped under `on_error: skip`.

    Raises:
        DataError: missing file, unknown format, header without a requested column, a bad row
            under `on_error: fail`, or no usable rows at all.
    """
    try:
        file = expand_data_path(path)
        found, folder = file.is_file(), file.is_dir()
    except (OSError, ValueError, RuntimeError) as exc:  # a name too long, a NUL byte, ~nobody
        raise DataError(f"{key}: not a usable path: {str(path)[:80]!r} ({exc.__class__.__name__}: "
                        f"{str(exc)[:80]})") from None
    if not found:
        raise DataError(f"{key}: {_not_a_file(file, folder)}: {file}")
    reader = READERS.get(data.format or infer_format(file, key))
    return reader.read(file, ReadOptions.from_spec(data, key, labelled, inputs, structured))


def infer_format(file: Path, key: str = "data") -> str:
    """The format a file's extension implies, or a DataError asking for `data.format`."""
    suffix = file.suffix.lower()
    for name, reader in READERS.items():
        if suffix in reader.extensions:
            return name
    known = ", ".join(ext for _, reader in READERS.items() for ext in reader.extensions)
    raise DataError(
        f"{key}: cannot tell the format of {file.name} from its extension ({suffix or 'none'}; "
        f"known: {known}); set data.format to one of: {', '.join(READERS.names())}"
    )


def _not_a_file(file: Path, folder: bool) -> str:
    """What stands at a data path that is not a regular file: a data split is read twice (fit,
    then encode), so a pipe or a device cannot be one."""
    import stat

    if folder:
        return "is a folder, not a file"
    try:
        mode = file.stat().st_mode
    except OSError:
        return "file not found"
    kinds = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"is {kind}, not a regular file (kbuild reads each split twice; save it to a file first)"
