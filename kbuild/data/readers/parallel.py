"""Parallel corpora as two aligned files: line i of the target file translates line i of the
source file (Multi30k, WMT, Europarl releases). A tab-separated pair per line needs no reader of
its own: `format: tsv` with `columns: {text: source, label: target}`."""

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
from kbuild.errors import DataError


def target_path(source: Path, suffix: str) -> Path:
    """The target side of `source`: its extension replaced by `suffix` (`train.en` -> `train.de`)."""
    return source.with_suffix(suffix if suffix.startswith(".") else f".{suffix}")


def _lines(path: Path, options: ReadOptions) -> list[str]:
    lines = split_lines(read_text(path, options))
    while lines and not lines[-1].strip():  # trailing blank lines are not pairs
        lines.pop()
    return lines


@register_reader("parallel", extensions=())
def read_parallel(path: Path, options: ReadOptions) -> ReadResult:
    """Each line of `path` is a source text; the same line of the target file (see
    `data.target_suffix`) its target. Unlabelled reads (prediction) take the source file alone."""
    sources = _lines(path, options)
    if options.label_column is None:
        collector = RowCollector(path, options)
        for number, line in enumerate(sources, 1):
            if line.strip():
                collector.add(line, None, number)
                if collector.full:
                    break
        return collector.result()
    if not options.target_suffix:
        raise DataError(f"{options.key}: format parallel needs data.target_suffix (e.g. .de), the "
                        "extension of the aligned target file")
    target = target_path(path, options.target_suffix)
    if not target.is_file():
        raise DataError(f"{options.key}: the target file of {path.name} is missing: {target}")
    targets = _lines(target, options)
    if len(targets) != len(sources):
        raise DataError(f"{options.key}: {path.name} has {len(sources):,} lines but {target.name} has "
                        f"{len(targets):,}; line i of one must translate line i of the other", str(target))
    collector = RowCollector(path, options)
    for number, (source, translation) in enumerate(zip(sources, targets, strict=True), 1):
        if not source.strip() and not translation.strip():
            continue
        if not translation.strip():
            collector.bad(number, f"empty target text at line {number} of {target.name}")
        else:
            collector.add(source, translation, number)
        if collector.full:
            break
    return collector.result()
