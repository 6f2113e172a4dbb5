"""The label vocabulary: computed from the train split, saved with the run, reused to evaluate.

Label ids are positions in the sorted list of train labels, so a run and its export agree on them
without any other record. A label that only valid or test contain has no id (the model has no
output for it): that is a data error pointing at its line, never a silent remap.
"""

from __future__ import annotations

from pathlib import Path

from kbuild.data.example import ReadResult
from kbuild.errors import DataError
from kbuild.files import write_atomic
from kbuild.registry import did_you_mean

LABELS_FILE = "labels.txt"


def label_vocabulary(train: ReadResult, key: str = "data.train") -> list[str]:
    """Sorted distinct labels of the train split; at least two (a one-class classifier is a
    mistake in the data or in `data.columns`)."""
    if train.examples and train.examples[0].label is None:
        raise DataError(
            f"{key}: the examples have no labels (the text format carries none); "
            "use tsv, csv or jsonl with a label column",
            train.source,
        )
    for example in train.examples:
        if "\n" in example.label or "\r" in example.label:
            raise DataError(
                f"label {example.label!r} contains a line break", train.source, example.line
            )
    labels = sorted({example.label for example in train.examples})
    if len(labels) < 2:
        raise DataError(
            f"{key}: every example has the label {labels[0]!r}; classification needs at least two "
            "(check data.columns.label, or a data.limit that keeps only the first rows)",
            train.source,
        )
    return labels


def label_ids(split: ReadResult, labels: list[str], key: str) -> list[int]:
    """Each example's label id, or a DataError at the first label the train split never had."""
    index = {label: i for i, label in enumerate(labels)}
    ids = []
    for example in split.examples:
        label_id = index.get(example.label)
        if label_id is None:
            if example.label is None:
                raise DataError(f"{key}: the examples have no labels", split.source)
            raise DataError(
                f"label {example.label!r} does not occur in the train split"
                f"{did_you_mean(example.label, labels)}; known labels: {', '.join(labels)}",
                split.source,
                example.line,
            )
        ids.append(label_id)
    return ids


def save_labels(assets_dir: str | Path, labels: list[str]) -> Path:
    """Write `labels.txt`, one label per line in id order; returns its path."""
    path = Path(assets_dir) / LABELS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "".join(f"{label}\n" for label in labels))
    return path


def load_labels(assets_dir: str | Path) -> list[str]:
    """The labels `save_labels` wrote."""
    path = Path(assets_dir) / LABELS_FILE
    if not path.is_file():
        raise DataError(f"label list not found: {path} (was the run trained?)")
    labels = path.read_text(encoding="utf-8").split("\n")
    if labels and labels[-1] == "":
        labels.pop()
    if not labels:
        raise DataError("the label list is empty", str(path))
    return labels
