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
    """Objects such as `{"text": "...", "label": "positive"}` (or `{"sentence1": ..., "sentence2":
    ..., "label": ...}` with `data.columns` naming the keys), one per line.

    Labels may be JSON strings, numbers or booleans (`1` reads as the label "1"); texts must be
    strings, except a task's structured inputs (chat's `messages`), which may be JSON lists.
    """
    for role, column in options.columns:
        if isinstance(column, int):
            raise DataError(
                f"data.columns.{role}: JSON Lines rows are objects; give a key name, not index {column}"
            )
    collector = RowCollector(path, options)
    for number, line in enumerate(split_lines(read_text(path, options)), 1):
        if not line.strip():
            continue
        problem, texts, label = _parse_row(line, options)
        if problem:
            collector.bad(number, problem)
        else:
            collector.add(texts, label, number)
        if collector.full:
            break
    return collector.result()


def _parse_row(line: str, options: ReadOptions) -> tuple[str | None, dict[str, str], str | None]:
    """(problem or None, texts by input name, label) for one line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        return f"invalid JSON ({error.msg} at column {error.colno}); expected one object per line", {}, None
    if not isinstance(row, dict):
        return f"expected a JSON object per line; received {type(row).__name__}", {}, None
    texts = {}
    for name, key in options.inputs:
        text = row.get(key)
        if text is None:
            return _missing_key(str(key), row), {}, None
        if isinstance(text, list) and name in options.structured:
            # Kept as JSON text: an Example holds strings, and the task that asked parses it.
            text = json.dumps(text, ensure_ascii=False)
        elif not isinstance(text, str):
            expected = "a JSON list or a string" if name in options.structured else "a string"
            return f"key {key!r} holds {_json_type(text)}; expected {expected}", {}, None
        texts[name] = text
    if options.label_column is None:
        return None, texts, None
    label = row.get(options.label_column)
    if label is None:
        return _missing_key(str(options.label_column), row), {}, None
    if isinstance(label, str):
        return None, texts, label.strip()
    if isinstance(label, (bool, int, float)):
        return None, texts, json.dumps(label)
    return f"key {options.label_column!r} holds {_json_type(label)}; expected a string or number", {}, None


def _json_type(value: object) -> str:
    """What a decoded JSON value is, in JSON's words (`an object`, not `dict`)."""
    names = {dict: "an object", list: "a list", bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _missing_key(key: str, row: dict) -> str:
    keys = [str(k) for k in row]
    return f"missing key {key!r}{did_you_mean(key, keys)}; the row has keys: {', '.join(keys) or 'none'}"
