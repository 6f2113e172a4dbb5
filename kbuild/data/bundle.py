"""`build` and `load_bundle`: from a spec to tokenizer, labels and batched datasets.

`build` fits the tokenizer and the label list on the train split (and saves them when given an
assets folder); `load_bundle` reuses what a trained run saved, so evaluating or exporting a run
encodes exactly as training did and never refits on other data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf

from kbuild.data.example import Example, ReadResult
from kbuild.data.labels import load_labels, save_labels
from kbuild.data.splits import SPLITS, read_splits
from kbuild.data.tokenizers import Tokenizer, make_tokenizer
from kbuild.tasks import TASKS

if TYPE_CHECKING:
    from kbuild.spec.root import Spec


@dataclass
class DataBundle:
    """Everything the model, training and evaluation need from the data.

    Args:
        tokenizer: fitted (or loaded) tokenizer; `tokenizer.vocabulary_size` sizes the embedding.
        labels: sorted train labels; a label's id is its index (empty for tasks without labels).
        datasets: split -> batches of (inputs, targets) as the task builds them (classification:
            `(ids int32 [batch, length], label_id int32 [batch])`); only `train` is shuffled.
        counts: split -> number of examples in one pass (rows, or windows for a language model).
        skipped: split -> rows dropped under `data.on_error: skip`.
        examples: split -> the examples, in dataset order for valid and test.
        sources: split -> the file (or built-in name) the examples came from.
    """

    tokenizer: Tokenizer
    labels: list[str]
    datasets: dict[str, tf.data.Dataset] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[Example]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def save_assets(self, assets_dir: str | Path) -> None:
        """Write the tokenizer vocabulary and the label list into a run's `assets/` folder."""
        self.tokenizer.save(assets_dir)
        if self.labels:
            save_labels(assets_dir, self.labels)


def tokenizer_for(spec: Spec) -> Tokenizer:
    """An unfitted tokenizer as the spec asks: type, max_length, and a start token when the
    task reads one (classification with `cls` pooling)."""
    start_token = TASKS.get(spec.task).needs_start_token(spec)
    return make_tokenizer(spec.preprocess.tokenizer, spec.preprocess.max_length, start_token)


def build(
    spec: Spec, assets_dir: str | Path | None = None, splits: Iterable[str] = SPLITS
) -> DataBundle:
    """Read the data, fit tokenizer and labels on train, and build the requested splits' datasets.

    Args:
        spec: the resolved spec (data, preprocess, model.pooling, train.batch_size, seed).
        assets_dir: when given, the vocabulary and label list are saved there.
        splits: splits to build; train is read (to fit on) even when not listed.

    Raises:
        DataError: any problem with the files, rows or labels, naming the file and line.
    """
    splits = tuple(splits)
    read = read_splits(spec.data, spec.seed, {"train", *splits})
    train = read["train"]
    tokenizer = tokenizer_for(spec).fit(TASKS.get(spec.task).texts(train))
    bundle = DataBundle(tokenizer, TASKS.get(spec.task).label_vocabulary(train))
    if assets_dir is not None:
        bundle.save_assets(assets_dir)
    return _fill(bundle, spec, {split: read[split] for split in splits if split in read})


def load_bundle(
    spec: Spec,
    assets_dir: str | Path,
    splits: Iterable[str] = SPLITS,
    files: Mapping[str, str] | None = None,
) -> DataBundle:
    """Like `build`, but with the tokenizer and labels a trained run saved in `assets_dir`.

    Args:
        spec: the run's resolved spec.
        assets_dir: the run's `assets/` folder.
        splits: splits to build; `()` gives just the tokenizer and labels (for export).
        files: split -> file replacing the spec's (`kbuild evaluate --data FILE`).
    """
    tokenizer = tokenizer_for(spec).load(assets_dir)
    labels = load_labels(assets_dir) if TASKS.get(spec.task).uses_labels else []
    bundle = DataBundle(tokenizer, labels)
    read = read_splits(spec.data, spec.seed, splits, files) if tuple(splits) else {}
    return _fill(bundle, spec, read)


def _fill(bundle: DataBundle, spec: Spec, read: dict[str, ReadResult]) -> DataBundle:
    """Encode each split (as the task shapes its examples) and add its dataset, counts and
    examples to `bundle`."""
    task = TASKS.get(spec.task)
    for split, result in read.items():
        bundle.datasets[split], bundle.counts[split] = task.make_dataset(
            bundle.tokenizer, result, bundle.labels, spec, f"data.{split}", split == "train"
        )
        bundle.skipped[split] = result.skipped
        bundle.examples[split] = result.examples
        bundle.sources[split] = result.source
    return bundle
