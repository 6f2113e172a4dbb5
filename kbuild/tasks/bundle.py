"""`build` and `load_bundle`: from a spec to tokenizer, labels and batched datasets.

This is where the data layer meets the tasks: reading, tokenizers and pipelines (kbuild.data)
know no task; the task hooks decide what a split's examples become (`prepare`, `texts`,
`label_vocabulary`, `make_dataset`).

`build` fits the tokenizer and the label list on the train split (and saves them when given an
assets folder); `load_bundle` reuses what a trained run saved, so evaluating or exporting a run
encodes exactly as training did and never refits on other data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kbuild.data.example import Example, ReadResult
from kbuild.data.labels import load_labels, save_labels
from kbuild.data.split_data import SplitData
from kbuild.data.splits import SPLITS, read_splits
from kbuild.data.tokenizers import Tokenizer, make_tokenizer
from kbuild.tasks.registry import TASKS

if TYPE_CHECKING:
    from kbuild.spec.root import Spec


@dataclass
class Assets:
    """What a trained run saved besides its model: the tokenizer(s) and the label list. Serving,
    export and generation need exactly this, and no data.

    Args:
        tokenizer: fitted (or loaded) tokenizer; `tokenizer.vocabulary_size` sizes the embedding.
        labels: the train labels (the task orders them); a label's id is its index (empty for
            tasks without labels, such as a language model).
        target_tokenizer: seq2seq with separate vocabularies: the target side's tokenizer.
    """

    tokenizer: Tokenizer
    labels: list[str]
    target_tokenizer: Tokenizer | None = None

    @property
    def target(self) -> Tokenizer:
        """The tokenizer of target texts: its own, or the shared one."""
        return self.target_tokenizer or self.tokenizer

    def save(self, assets_dir: str | Path) -> None:
        """Write the tokenizer vocabulary and the label list into a run's `assets/` folder."""
        self.tokenizer.save(assets_dir)
        if self.target_tokenizer is not None:
            self.target_tokenizer.save(Path(assets_dir) / TARGET_ASSETS)
        if self.labels:
            save_labels(assets_dir, self.labels)

    def trackables(self) -> list[Any]:
        """The tokenizers' resources an export must track (vocabulary tables, ...)."""
        extra = self.target_tokenizer.trackables() if self.target_tokenizer is not None else []
        return [*self.tokenizer.trackables(), *extra]


@dataclass
class DataBundle(Assets):
    """The assets plus one `SplitData` per built split: everything the model, training and
    evaluation need from the data.

    For classification a split's batches are ids int32 `[batch, length]` (or a dict with
    `char_ids` too) and label ids int32 `[batch]` (`[batch, length]` for tagging, next-token ids
    for a language model); only `train` is shuffled (and bucketed, when `preprocess.bucketing`
    is on). The dict properties below are read-only views over `splits`.
    """

    splits: dict[str, SplitData] = field(default_factory=dict)

    @property
    def datasets(self) -> dict[str, Any]:
        return {name: split.dataset for name, split in self.splits.items()}

    @property
    def counts(self) -> dict[str, int]:
        return {name: split.count for name, split in self.splits.items()}

    @property
    def skipped(self) -> dict[str, int]:
        return {name: split.skipped for name, split in self.splits.items()}

    @property
    def examples(self) -> dict[str, list[Example]]:
        return {name: split.examples for name, split in self.splits.items()}

    @property
    def truncated(self) -> dict[str, int]:
        return {name: split.truncated for name, split in self.splits.items()}

    def describe(self) -> str:
        """One line for the training log: rows per split, vocabulary, labels, what was dropped or cut."""
        counts = ", ".join(f"{split} {n:,}" for split, n in self.counts.items())
        skipped, truncated = sum(self.skipped.values()), sum(self.truncated.values())
        extra = f"; skipped {skipped} bad rows" if skipped else ""
        if truncated:
            extra += "; truncated " + ", ".join(f"{split} {n:,}" for split, n in self.truncated.items() if n)
        return f"data: {counts} rows; vocabulary {self.tokenizer.vocabulary_size:,}; labels {self.labels}{extra}"

    @property
    def sources(self) -> dict[str, str]:
        return {name: split.source for name, split in self.splits.items()}

    def fresh_dataset(self, split: str) -> Any:
        """The split's dataset built anew, its shuffle back at the first epoch's order.

        Every iterator over one shuffled dataset object draws the next seed from the same
        generator, so a second `fit` call over `datasets[split]` would see different epoch
        orders than an unbroken run; a resume needs the orders exactly as a fresh start has them.
        """
        return self.splits[split].factory()

    def features_dataset(self, split: str, batch_size: int) -> Any:
        """Batches of the split's inputs only, in example order (for predictions to line up
        with `examples[split]`, whatever order training reads them in)."""
        from kbuild.data.pipeline import features_dataset

        return features_dataset(self.splits[split].features, batch_size)


TARGET_ASSETS = "target"
"""Sub-folder of `assets/` holding a separate target vocabulary."""


def target_tokenizer_for(spec: Spec) -> Tokenizer | None:
    """An unfitted target tokenizer when the task gives targets their own vocabulary."""
    target = TASKS.get(spec.task).target_tokenizer_spec(spec)
    return None if target is None else make_tokenizer(target, spec.preprocess.max_length)


def tokenizer_for(spec: Spec) -> Tokenizer:
    """An unfitted tokenizer as the spec asks: type, max_length, a start token when the task
    reads one (`cls` pooling), each word's characters when the model has char features, and where
    each word starts when the task labels words over sub-tokens."""
    task = TASKS.get(spec.task)
    if spec.model.backbone is not None:
        from kbuild.pretrained.tokenizer import pretrained_tokenizer

        return pretrained_tokenizer(spec, word_starts=task.word_aligned(spec), kind=task.checkpoint_kind)
    start_token = task.needs_start_token(spec)
    chars = spec.model.embedding.chars
    options = {} if chars is None else {"char_length": chars.max_chars, "char_buckets": chars.buckets}
    if task.word_aligned(spec):
        options["word_starts"] = True
    return make_tokenizer(spec.preprocess.tokenizer, spec.preprocess.max_length, start_token, **options)


def _read(spec: Spec, splits: Iterable[str], files: Mapping[str, str] | None = None) -> dict[str, ReadResult]:
    """The splits' examples as the task trains on them."""
    task = TASKS.get(spec.task)
    read = read_splits(spec.data, spec.seed, splits, files, inputs=task.input_names(spec),
                       structured=task.structured_inputs)
    return {split: task.prepare(result, spec, f"data.{split}") for split, result in read.items()}


def build(
    spec: Spec, assets_dir: str | Path | None = None, splits: Iterable[str] = SPLITS,
    vocabulary_from: str | Path | None = None,
) -> DataBundle:
    """Read the data, fit tokenizer and labels on train, and build the requested splits' datasets.

    Args:
        spec: the resolved spec (data, preprocess, model.pooling, train.batch_size, seed).
        assets_dir: when given, the vocabulary and label list are saved there.
        splits: splits to build; train is read (to fit on) even when not listed.
        vocabulary_from: another run's `assets/` folder whose vocabulary to load instead of
            fitting one (`init_from`: the backbone's embedding rows mean those tokens).

    Raises:
        DataError: any problem with the files, rows or labels, naming the file and line.
    """
    splits = tuple(splits)
    read = _read(spec, {"train", *splits})
    train = read["train"]
    task = TASKS.get(spec.task)
    target = target_tokenizer_for(spec)
    texts, target_texts = task.texts(train), task.target_texts(train)
    if vocabulary_from is not None:
        tokenizer = tokenizer_for(spec).load(vocabulary_from)
    else:
        # Without a target tokenizer of their own, target texts share the one vocabulary.
        tokenizer = tokenizer_for(spec).fit(texts if target else texts + target_texts, task.vocabulary_tokens(spec))
    if target is not None:
        target.fit(target_texts)
    bundle = DataBundle(tokenizer, task.label_vocabulary(train), target_tokenizer=target)
    if assets_dir is not None:
        bundle.save(assets_dir)
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
    target = target_tokenizer_for(spec)
    if target is not None:
        target.load(Path(assets_dir) / TARGET_ASSETS)
    bundle = DataBundle(tokenizer, labels, target_tokenizer=target)
    read = _read(spec, splits, files) if tuple(splits) else {}
    return _fill(bundle, spec, read)


def load_assets(spec: Spec, assets_dir: str | Path) -> Assets:
    """The tokenizer(s) and labels a trained run saved (what serving needs; no data read)."""
    bundle = load_bundle(spec, assets_dir, splits=())
    return Assets(bundle.tokenizer, bundle.labels, bundle.target_tokenizer)


def _fill(bundle: DataBundle, spec: Spec, read: dict[str, ReadResult]) -> DataBundle:
    """Encode each split (as the task shapes its examples) and add it to `bundle`."""
    for split, result in read.items():
        bundle.splits[split] = _split_data(bundle, spec, split, result, train=split == "train")
    return bundle


def _split_data(bundle: DataBundle, spec: Spec, split: str, result: ReadResult, train: bool) -> SplitData:
    made = TASKS.get(spec.task).make_dataset(bundle, result, spec, f"data.{split}", train)
    made.dataset = made.factory()
    made.examples, made.skipped, made.source = result.examples, result.skipped, result.source
    return made


def scoring_bundle(bundle: DataBundle, spec: Spec, split: str) -> DataBundle:
    """What a final score of `split` reads: valid and test in full, train on `eval.train_sample` rows."""
    sample = spec.evaluation.train_sample
    if split != "train" or sample == "all":
        return bundle
    return sample_split(bundle, spec, split, sample)


def sample_split(bundle: DataBundle, spec: Spec, split: str, rows: int) -> DataBundle:
    """`bundle` with `split` cut to a seeded sample of `rows` of its examples (the task picks which, in their
    order, encoded unshuffled, as for scoring); the other splits are shared, not rebuilt. The bundle itself
    when the split has no more than `rows` examples. What the final train metrics read
    (`eval.train_sample`): scoring all of a large train split can outlast the training."""
    examples = bundle.splits[split].examples
    if len(examples) <= rows:
        return bundle
    keep = TASKS.get(spec.task).sample_positions(len(examples), rows, spec.seed)
    sampled = ReadResult([examples[i] for i in keep], source=bundle.splits[split].source)
    view = DataBundle(bundle.tokenizer, bundle.labels, bundle.target_tokenizer, splits=dict(bundle.splits))
    view.splits[split] = _split_data(view, spec, split, sampled, train=False)
    return view
