"""CoNLL-style column files: one token per line, a blank line between sentences.

Each sentence becomes one `Example` whose text is its tokens joined by single spaces (tokens never
hold whitespace, since columns are whitespace-separated) and whose label is the tuple of tags, one
per token. The tagging task's whitespace tokenizer splits that text back 1:1, and an exported
tagger therefore serves raw sentences split on whitespace.

Columns are 0-based indices (`data.columns: {text: 0, label: 3}`); the defaults read the token
from the first column and the tag from the last, as in CoNLL-2003's `word POS chunk NER`.
`-DOCSTART-` lines separate documents, not sentences, and are skipped.
"""

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

DOCSTART = "-DOCSTART-"
_DEFAULT_NAMES = {"text": 0, "label": -1}
"""The default column *names* of `data.columns` mean, for a headerless CoNLL file, these indices."""


@register_reader("conll", extensions=(".conll", ".bio", ".iob"))
def read_conll(path: Path, options: ReadOptions) -> ReadResult:
    """Sentences of (token, tag) rows; a row without the requested columns fails naming its line
    (or drops its whole sentence under `data.on_error: skip`)."""
    text_index = _index(options.text_column, "text")
    label_index = None if options.label_column is None else _index(options.label_column, "label")
    needed = max(text_index, -1 if label_index is None else label_index) + 1
    collector = RowCollector(path, options)
    tokens: list[str] = []
    tags: list[str] = []
    start, problem = 0, None

    def flush() -> None:
        nonlocal tokens, tags, problem
        if problem is not None:
            collector.bad(*problem)
        elif tokens:
            collector.add(" ".join(tokens), tuple(tags) if label_index is not None else None, start)
        tokens, tags, problem = [], [], None

    for number, line in enumerate(split_lines(read_text(path, options)), 1):
        fields = line.split()
        if not fields:
            flush()
            if collector.full:
                break
            continue
        if fields[0] == DOCSTART:
            continue
        if not tokens and problem is None:
            start = number
        if len(fields) < needed or (label_index == -1 and len(fields) < 2):
            if problem is None:
                problem = (number, f"expected at least {max(needed, 2 if label_index == -1 else 1)} "
                                   f"whitespace-separated columns; received {len(fields)}: {line.strip()!r}")
            continue
        tokens.append(fields[text_index])
        if label_index is not None:
            tags.append(fields[label_index])
    if not collector.full:
        flush()
    return collector.result()


def _index(column: str | int, role: str) -> int:
    if isinstance(column, int):
        return column
    if column == role:
        return _DEFAULT_NAMES[role]
    raise DataError(
        f"data.columns.{role}: {column!r} is a column name, but CoNLL files have no header; "
        "give a 0-based column index, e.g. columns: {text: 0, label: 3}"
    )
