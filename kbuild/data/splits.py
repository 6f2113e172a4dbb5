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
    structured: tuple[str, ...] = (),
) -> dict[str, ReadResult]:
    """The requested splits that exist, in `SPLITS` order.

    Args:
        data: the spec's `data:` section.
        seed: the spec's seed; decides which train rows `data.valid_fraction` and
            `data.test_fraction` hold out.
        splits: split names wanted; a split with no source (no test file, say) is left out.
        files: split -> file that replaces the spec's (e.g. `kbuild evaluate --data FILE`).
        inputs: the texts each example holds (the task's inputs, see `read_examples`).
        structured: the inputs a JSON Lines row may hold as a JSON list (see `read_examples`).

    Raises:
        DataError: unknown split name, both `valid` and `valid_fraction` (or `test` and
            `test_fraction`) given, or any read error.
    """
    wanted, files = set(splits), dict(files or {})
    for name in sorted(wanted | set(files)):
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; expected one of: {', '.join(SPLITS)}")
    for split in ("valid", "test"):
        given = getattr(data, split) is not None or data.builtin is not None
        if getattr(data, f"{split}_fraction") is not None and given:
            source = f"data.{split}" if getattr(data, split) is not None else "the built-in dataset"
            raise DataError(
                f"data.{split}_fraction: the {split} split is already given by {source}; remove one of them"
            )
    # Every configured share is held out whichever splits are wanted, so each split holds the
    # same examples in training, in `kbuild evaluate --split valid` and with `--data` on another.
    holding = {split: getattr(data, f"{split}_fraction") for split in ("test", "valid")
               if getattr(data, f"{split}_fraction") is not None}
    needs_train = "train" in wanted or any(split in wanted and split not in files for split in holding)
    generated = load_builtin(data.builtin, data.limit) if data.builtin is not None else {}
    spec_files = {"train": data.train, "valid": data.valid, "test": data.test}

    # Whole articles are held out of the whole file, then each split is capped: capping the file
    # first would leave `data.limit` questions of one or two articles, too few to split.
    capped_later = bool(holding) and data.holdout == "article" and data.limit is not None
    train_data = data.model_copy(update={"limit": None}) if capped_later else data
    read: dict[str, ReadResult] = {}
    for split in SPLITS:
        if split not in wanted and not (split == "train" and needs_train):
            continue
        if split in files:
            read[split] = read_examples(files[split], data, f"data.{split}", inputs=inputs, structured=structured)
        elif split in generated:
            read[split] = generated[split]
        elif spec_files[split] is not None:
            source = train_data if split == "train" else data
            read[split] = read_examples(spec_files[split], source, f"data.{split}", inputs=inputs, structured=structured)
    # Test first, so a spec that adds valid_fraction later keeps its test split unchanged.
    for split, fraction in holding.items() if "train" in read else ():
        read["train"], held = hold_out(read["train"], fraction, seed, data.holdout, f"data.{split}_fraction")
        read.setdefault(split, held)
    if capped_later:
        read = {split: _capped(result, data.limit) for split, result in read.items()}
    return {split: read[split] for split in SPLITS if split in wanted and split in read}


def hold_out(
    train: ReadResult, fraction: float, seed: int, mode: str = "random", key: str = "data.valid_fraction",
) -> tuple[ReadResult, ReadResult]:
    """(rest of train, held out): a seeded random `fraction` of the rows (`mode="random"`), the
    last rows (`"tail"`), or a seeded random `fraction` of the groups (`"article"`: whole
    articles, see `ReadResult.groups`), both kept in file order so line numbers and any later
    error still read naturally."""
    count = len(train.examples)
    if mode == "article":
        held = _held_groups(train, fraction, seed, key)
    else:
        size = round(count * fraction)
        if size < 1 or size >= count:
            raise DataError(f"{key}: {fraction} of {count} train rows leaves an empty split; "
                            "use more data or another fraction", train.source)
        held = set(range(count - size, count)) if mode == "tail" else set(random.Random(seed).sample(range(count), size))
    groups = train.groups

    def part(indices: list[int], skipped: int) -> ReadResult:
        kept = None if groups is None else tuple(groups[i] for i in indices)
        return ReadResult([train.examples[i] for i in indices], skipped, train.source, groups=kept)

    return (part([i for i in range(count) if i not in held], train.skipped),
            part([i for i in range(count) if i in held], 0))


def _capped(result: ReadResult, limit: int) -> ReadResult:
    """The first `limit` examples of a split (with their groups)."""
    groups = None if result.groups is None else result.groups[:limit]
    return ReadResult(result.examples[:limit], result.skipped, result.source, groups, result.repaired)


def _held_groups(train: ReadResult, fraction: float, seed: int, key: str) -> set[int]:
    """The rows of a seeded random `fraction` of the groups (at least one, never all)."""
    if train.groups is None:
        raise DataError(f"{key}: data.holdout: article needs examples grouped by article (format: squad); "
                        f"{train.source} has none: use holdout: random", train.source)
    names = list(dict.fromkeys(train.groups))
    size = round(len(names) * fraction)
    if size < 1 or size >= len(names):
        raise DataError(f"{key}: {fraction} of {len(names)} articles leaves an empty split; "
                        "use more data or another fraction", train.source)
    chosen = set(random.Random(seed).sample(names, size))
    return {i for i, group in enumerate(train.groups) if group in chosen}
