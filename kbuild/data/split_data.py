"""`SplitData`: one split of a data bundle, as one typed record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kbuild.data.example import Example


@dataclass
class SplitData:
    """One split: how to build its dataset, and what it was made from.

    A task's `make_dataset` fills the first three fields; the bundle adds the rest.

    Args:
        factory: builds the split's batched `(inputs, targets)` tf.data.Dataset anew (see
            `DataBundle.fresh_dataset`).
        count: examples in one pass (rows, or windows for a language model).
        features: the encoded inputs in example order, when examples are rows (for predictions
            that line up with the examples); None otherwise.
        dataset: `factory()`, built once: what evaluation and the first fit call read.
        examples: the examples, in dataset order for valid and test.
        skipped: rows dropped under `data.on_error: skip`.
        source: the file (or built-in name) the examples came from.
        truncated: examples of several texts that did not fit `preprocess.max_length` together
            and lost tokens (see `preprocess.truncation`).
        targets: the encoded targets in example order, beside `features` (a tagger's tag ids,
            for a scoring pass that reads rows in its own order); None otherwise.
    """

    factory: Callable[[], Any]
    count: int
    features: Any = None
    dataset: Any = None
    examples: list[Example] = field(default_factory=list)
    skipped: int = 0
    source: str = ""
    truncated: int = 0
    targets: Any = None
