"""Which examples make up train, valid and test: files named by the spec, a built-in dataset, or
a seeded share of train held out as valid. Plain Python, no TensorFlow."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from kbuild.data.builtin import load_builtin
from kbuild.data.example import ReadResult
from kbuild.data.readers import read_examples
from kbuild.errors import DataError

if TYPE_CHECKING:
    from kbuild.spec.data import DataSpec

SPLITS = ("train", "valid", "test")


def read_splits(
    data: DataSpec,
    seed: int,
    splits: Iterable[str] = SPLITS,
    files: Mapping[str, str] | None = None,
    inputs: tuple[str, ...] = ("text",),
) -> dict[str, ReadResult]:
    """The requested splits that exist, in `SPLITS` order.

    Args:
        data: the spec's `data:` section.
        seed: the spec's seed; decides which train rows `data.valid_fraction` holds out.
        splits: split names wanted; a split with no source (no test file, say) is left out.
        files: split -> file that replaces the spec's (e.g. `kbuild evaluate --data FILE`).
        inputs: the texts each example holds (the task's inputs, see `read_examples`).

    Raises:
        DataError: unknown split name, both `valid` and `valid_fraction` given, or any read error.
    """
    wanted, files = set(splits), dict(files or {})
    for name in sorted(wanted | set(files)):
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; expected one of: {', '.join(SPLITS)}")
    if data.valid_fraction is not None and (data.valid is not None or data.builtin is not None):
        given = "data.valid" if data.valid is not None else "the built-in dataset"
        raise DataError(
            f"data.valid_fraction: the valid split is already given by {given}; remove one of them"
        )
    holding_out = data.valid_fraction is not None and "valid" in wanted and "valid" not in files
    generated = load_builtin(data.builtin, data.limit) if data.builtin is not None else {}
    spec_files = {"train": data.train, "valid": data.valid, "test": data.test}

    read: dict[str, ReadResult] = {}
    for split in SPLITS:
        if split not in wanted and not (split == "train" and holding_out):
            continue
        if split in files:
            read[split] = read_examples(files[split], data, f"data.{split}", inputs=inputs)
        elif split in generated:
            read[split] = generated[split]
        elif spec_files[split] is not None:
            read[split] = read_examples(spec_files[split], data, f"data.{split}", inputs=inputs)
    if holding_out:
        read["train"], read["valid"] = hold_out(read["train"], data.valid_fraction, seed, data.holdout)
    return {split: read[split] for split in SPLITS if split in wanted and split in read}


def hold_out(
    train: ReadResult, fraction: float, seed: int, mode: str = "random"
) -> tuple[ReadResult, ReadResult]:
    """(rest of train, held-out valid): a seeded random `fraction` of the rows (`mode="random"`)
    or the last rows (`"tail"`), both kept in file order so line numbers and any later error
    still read naturally."""
    count = len(train.examples)
    size = round(count * fraction)
    if size < 1 or size >= count:
        raise DataError(
            f"data.valid_fraction: {fraction} of {count} train rows leaves an empty split; "
            "use more data or another fraction",
            train.source,
        )
    if mode == "tail":
        held = set(range(count - size, count))
    else:
        held = set(random.Random(seed).sample(range(count), size))
    valid = [e for i, e in enumerate(train.examples) if i in held]
    rest = [e for i, e in enumerate(train.examples) if i not in held]
    return ReadResult(rest, train.skipped, train.source), ReadResult(valid, 0, train.source)
