"""JSON Lines: one JSON object per line; `data.columns` names the keys holding text and label."""

from __future__ import annotations

import json
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
from kbuild.registry import did_you_mean


@register_reader("jsonl", extensions=(".jsonl", ".json"))
def read_jsonl(path: Path, options: ReadOptions) -> ReadResult:
    """Objects such as `{"text": "...", "label": "positive"}`, one per line.

    Labels may be JSON strings, numbers or booleans (`1` reads as the label "1"); the text must
    be a string.
    """
    for role, column in (("text", options.text_column), ("label", options.label_column)):
        if isinstance(column, int):
            raise DataError(
                f"data.columns.{role}: JSON Lines rows are objects; give a key name, not index {column}"
            )
    collector = RowCollector(path, options)
    for number, line in enumerate(split_lines(read_text(path)), 1):
        if not line.strip():
            continue
        problem, text, label = _parse_row(line, options)
        if problem:
            collector.bad(number, problem)
        else:
            collector.add(text, label, number)
        if collector.full:
            break
    return collector.result()


def _parse_row(line: str, options: ReadOptions) -> tuple[str | None, str, str | None]:
    """(problem or None, text, label) for one line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        return (
            f"invalid JSON ({error.msg} at column {error.colno}); expected one object per line",
            "",
            None,
        )
    if not isinstance(row, dict):
        return f"expected a JSON object per line; received {type(row).__name__}", "", None
    text = row.get(options.text_column)
    if text is None:
        return _missing_key(str(options.text_column), row), "", None
    if not isinstance(text, str):
        return (
            f"key {options.text_column!r} holds {type(text).__name__}; expected a string",
            "",
            None,
        )
    if options.label_column is None:
        return None, text, None
    label = row.get(options.label_column)
    if label is None:
        return _missing_key(str(options.label_column), row), "", None
    if isinstance(label, str):
        return None, text, label.strip()
    if isinstance(label, (bool, int, float)):
        return None, text, json.dumps(label)
    return (
        f"key {options.label_column!r} holds {type(label).__name__}; expected a string or number",
        "",
        None,
    )


def _missing_key(key: str, row: dict) -> str:
    keys = [str(k) for k in row]
    return f"missing key {key!r}{did_you_mean(key, keys)}; the row has keys: {', '.join(keys) or 'none'}"
