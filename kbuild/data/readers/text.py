"""Plain text: one unlabelled example per line (prediction input, `kbuild predict --input`)."""

from __future__ import annotations

from pathlib import Path

from kbuild.data.example import ReadResult
from kbuild.data.readers.base import (
    ReadOptions,
    RowCollector,
    read_text,
    register_reader,
    split_lines,
)


@register_reader("text", extensions=(".txt",))
def read_plain_text(path: Path, options: ReadOptions) -> ReadResult:
    """Each non-blank line is one example with no label; columns and header do not apply."""
    unlabelled = ReadOptions(
        options.key, inputs=options.inputs[:1], label_column=None, limit=options.limit, on_error=options.on_error
    )
    collector = RowCollector(path, unlabelled)
    for number, line in enumerate(split_lines(read_text(path, options)), 1):
        if line.strip():
            collector.add(line, None, number)
            if collector.full:
                break
    return collector.result()
