"""The task interface: everything that differs between classification, tagging, generation, ...

A task is a stateless object looked up by name in `TASKS`. Data building, training, evaluation and
export call these hooks; there is one data bundle, one training loop and one exporter for all
tasks. The defaults implement one label per example read row by row (classification); a language
model overrides the data hooks (windows over running text) and the serving functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from kbuild.data.split_data import SplitData
from kbuild.names import TEXT_INPUT
from kbuild.tasks.registry import TASKS  # noqa: F401  (re-exported: tasks register here)

if TYPE_CHECKING:
    import numpy as np

    from kbuild.data.example import ReadResult
    from kbuild.spec.preprocess import TokenizerSpec
    from kbuild.spec.root import Spec
    from kbuild.tasks.bundle import Assets, DataBundle




SCORING_ROWS = 128
"""The most rows `Task.scoring_batch_size` puts in one batch."""


class Task:
    name: str = ""
    inputs: tuple[str, ...] = (TEXT_INPUT,)
    """The named texts every example of this task holds, in order. Everything that reads or
    serves examples derives from this: the `data.columns` roles (besides `label`), the fields of
    each `Example`, what the tokenizer is fitted on and encodes, one `tf.string [batch]` input per
    name in every serving signature, and the fields of `kbuild predict`/`serve` requests."""
    optional_inputs: tuple[str, ...] = ()
    """Inputs a spec adds by naming them in `data.columns` (a pooled task's `text_pair`)."""
    structured_inputs: tuple[str, ...] = ()
    """Inputs whose JSON Lines value may be a JSON list rather than a string (chat's `messages`, a
    list of {role, content}); the reader keeps it as its JSON text and the task parses it."""
    label_padding: int | None = None
    """For per-token labels: the id that pads them in bucketed batches; None for per-example labels."""
    uses_labels: bool = True
    """Whether the task learns a label list from the train split (saved as assets/labels.txt)."""
    owned_fields: tuple[tuple[str, ...], ...] = ()
    """Spec fields only this task (and others that list them) reads; another task's spec that sets
    one away from its default is an error, not a silently ignored setting."""
    default_monitor: str = "val_loss"
    """`train.monitor` when the spec leaves it unset (and so `train.early_stopping.monitor`)."""
    scoring_tokens: int = 0
    """Tokens a batch of valid, test or a final score may hold (`scoring_batch_size`), for a task
    whose outputs per row are small; 0 keeps the training batch."""
    extra_tokens: tuple[str, ...] = ()
    """Tokens the task adds to the vocabulary it fits, after the learned ones (a masked LM's
    `[MASK]`); none by default, so the ids are those of any other task."""
    def vocabulary_tokens(self, spec: Spec) -> tuple[str, ...]:
        """`extra_tokens`, and `[SEP]` when the examples hold several texts (it ends each one)."""
        from kbuild.names import SEPARATOR_TOKEN

        return (*self.extra_tokens, *((SEPARATOR_TOKEN,) if len(self.input_names(spec)) > 1 else ()))

    checkpoint_kind: str = "encoder"
    """The kind of `model.backbone` checkpoint the task reads (`kbuild.pretrained.checkpoint`):
    an `encoder`'s per-token features, or a `causal_lm` that continues text."""

    backbone_init: bool = True
    """Whether `init_from: RUN` can start this task's backbone: its model is `compose`d from
    `model.build_backbone` (false for the encoder-decoder tasks)."""

    logged_metrics: tuple[str, ...] = ()
    """Names of the metrics `metrics()` compiles, besides `loss`: what `train.monitor` may name
    (with `val_` for the valid split). Declared, not read from `metrics()`, so that checking a spec
    needs no Keras; tests/test_robust_spec.py keeps the two in step."""

    def input_names(self, spec: Spec) -> tuple[str, ...]:
        """The inputs this spec's examples hold: `inputs`, then the optional ones `data.columns` names."""
        return (*self.inputs, *(name for name in self.optional_inputs if name in spec.data.columns))

    def roles(self) -> tuple[str, ...]:
        """Every `data.columns` role this task understands: its inputs, then `label`."""
        return (*self.inputs, *self.optional_inputs, "label")

    def default_columns(self) -> dict[str, str]:
        """`data.columns` when the spec leaves it unset: a column named after each input, and `label`."""
        return {**{name: name for name in self.inputs}, "label": "label"}

    def serving_inputs(self, spec: Spec) -> tuple[str, ...]:
        """The texts `serving_default` takes, by name: the examples' inputs, unless the task
        serves something else (a chat model trains on conversations, answers one message)."""
        return self.input_names(spec)

    def metric_names(self, spec: Spec) -> tuple[str, ...]:
        """Every metric name training logs for `spec`: `loss`, the compiled metrics, and `val_` of each."""
        names = ("loss", *self.logged_metrics)
        return (*names, *(f"val_{name}" for name in names))

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Task-specific spec problems (location, message)."""
        return iter(())

    # --- data (plain Python, NumPy) ------------------------------------------------------------
    def prepare(self, split: ReadResult, spec: Spec, key: str) -> ReadResult:
        """The examples as the task trains on them (e.g. tags converted to the spec's scheme)."""
        return split

    def texts(self, split: ReadResult) -> list[str]:
        """The texts the model reads from a split, every input of every example: what the
        tokenizer is fitted on."""
        return [text for example in split.examples for text in example.inputs.values()]

    def target_tokenizer_spec(self, spec: Spec) -> TokenizerSpec | None:
        """A second tokenizer for target texts (seq2seq with separate vocabularies); None when
        the task has no target texts, or shares `preprocess.tokenizer` with them."""
        return None

    def target_texts(self, split: ReadResult) -> list[str]:
        """Target texts (seq2seq): fitted into the target tokenizer, or into the shared one."""
        return []

    def label_vocabulary(self, train: ReadResult) -> list[str]:
        """The labels, learned from the train split; an id is a position in this list."""
        from kbuild.data.labels import label_vocabulary

        return label_vocabulary(train)

    def encode_labels(self, split: ReadResult, labels: list[str], key: str, spec: Spec) -> np.ndarray:
        """The split's labels as int32 ids (`[examples]` here; per-token tasks add a time axis)."""
        import numpy as np

        from kbuild.data.labels import label_ids

        return np.asarray(label_ids(split, labels, key), np.int32)

    def make_dataset(self, bundle: DataBundle, split: ReadResult, spec: Spec, key: str, train: bool) -> SplitData:
        """One split's dataset: each row encoded, paired with `encode_labels`; `train` asks for
        the shuffled (and, under `preprocess.bucketing`, bucketed) variant; `key` names the split
        in errors."""
        from kbuild.data.pipeline import encode_columns

        ids_of_labels = self.encode_labels(split, bundle.labels, key, spec)
        columns = {name: split.texts(name) for name in self.input_names(spec)}
        features = encode_columns(lambda texts: self.encode(bundle.tokenizer, texts, spec), columns)
        made = self.row_data(features, ids_of_labels, spec, train)
        if len(columns) > 1:
            made.truncated = bundle.tokenizer.segments_truncated(list(columns.values()))
        return made

    def encode(self, tokenizer: Any, texts: Mapping[str, Any], spec: Spec) -> Any:
        """Strings `[batch]` by input name -> the model's inputs, in the graph: one text encoded
        as the tokenizer does; several packed into one sequence, `[CLS] a [SEP] b [SEP]`, with
        their `segment_ids` (`preprocess.truncation` decides which text loses tokens first)."""
        names = self.input_names(spec)
        if len(names) == 1:
            return tokenizer.encode(texts[names[0]])
        return tokenizer.encode_segments([texts[name] for name in names], spec.preprocess.truncation)

    def scoring_batch_size(self, spec: Spec) -> int:
        """Rows per batch of a split that is only scored (valid, test, a final score): the
        training batch, or, for a task with `scoring_tokens`, as many rows of `max_length` as
        those tokens hold, up to `SCORING_ROWS`. Forward passes alone pay a batch's fixed costs
        over fewer rows than a training step does: ChnSentiCorp's 2,000-row train sample scored
        in 1.3 s at 64 rows a batch against 2.6 s at 32 (benchmarks/RESULTS.md, Session 33)."""
        train = spec.train.batch_size
        if not self.scoring_tokens:
            return train
        return max(train, min(SCORING_ROWS, self.scoring_tokens // spec.preprocess.max_length))

    def row_data(self, features: Any, label_ids: np.ndarray, spec: Spec, train: bool) -> SplitData:
        """A split whose examples are rows: encoded inputs paired with their label ids."""
        import functools

        from kbuild.data.pipeline import labelled_dataset

        factory = functools.partial(
            labelled_dataset,
            features,
            label_ids,
            spec.train.batch_size if train else self.scoring_batch_size(spec),
            shuffle=train,
            seed=spec.seed,
            shuffle_buffer=spec.train.shuffle_buffer,
            # valid and test too: their scores are order-free sums (padding is masked), and a
            # batch padded to its bucket, not max_length, scores SST-2 2-3x faster.
            bucketing=spec.preprocess.bucketing,
            label_padding=self.label_padding,
        )
        return SplitData(factory, len(label_ids), features, targets=label_ids)

    def epoch_callbacks(self, spec: Spec, bundle: DataBundle) -> list[Any]:
        """Keras callbacks that add task metrics to each epoch's logs before the checkpoint, early
        stopping and the logs read them (a tagger's `val_f1`); none by default."""
        return []

    # --- model (Keras; each task imports it lazily) --------------------------------------------
    def build_model(self, spec: Spec, bundle: DataBundle) -> Any:
        """The whole model: by default `compose` with the bundle's vocabulary and labels."""
        return self.compose(spec, bundle.tokenizer.vocabulary_size, bundle.labels)

    def compose(self, spec: Spec, vocab_size: int, labels: list[str]) -> Any:
        """The backbone (embedding -> `model.blocks`) with `build_outputs` on its features."""
        from kbuild.model import assemble, build_backbone

        backbone = build_backbone(spec, vocab_size, word_aligned=self.word_aligned(spec),
                                  segments=len(self.input_names(spec)))
        return assemble(spec, backbone.inputs, self.build_outputs(backbone.features, spec, labels, vocab_size))

    def build_outputs(self, features: Any, spec: Spec, labels: list[str], vocab_size: int) -> Any:
        raise NotImplementedError

    def loss(self, spec: Spec) -> Any:
        raise NotImplementedError

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        raise NotImplementedError

    def weighted_metrics(self, spec: Spec) -> list[Any]:
        """Metrics that read the batches' sample weights (Keras passes none to `metrics`); none by
        default, which leaves a keras_hub task's own."""
        return []

    def needs_start_token(self, spec: Spec) -> bool:
        """Whether the tokenizer must prepend [CLS] (e.g. for `cls` pooling)."""
        return False

    def sample_positions(self, count: int, rows: int, seed: int) -> list[int]:
        """Which `rows` of a split's `count` examples a sampled score reads (`eval.train_sample`):
        seeded, in their order."""
        import random

        return sorted(random.Random(seed).sample(range(count), rows))

    def word_aligned(self, spec: Spec) -> bool:
        """Whether the model reads sub-tokens but predicts per whitespace-separated word (a tagger
        over subwords): the tokenizer then also encodes `word_starts`, and the model keeps each
        word's first sub-token after its blocks."""
        return False

    def evaluate(self, model: Any, bundle: DataBundle, split: str, spec: Spec) -> dict:
        """Metrics of `model` on one split of `bundle`: the compiled metrics by default."""
        metrics = model.evaluate(bundle.datasets[split], verbose=0, return_dict=True)
        return {name: float(value) for name, value in metrics.items()}

    def scores_from_validation(self, logs: Mapping[str, float], bundle: DataBundle, split: str,
                               spec: Spec) -> dict | None:
        """`evaluate`'s scores of the saved model on `split` (valid), read off the logs of the epoch
        whose weights were saved, when those logs are exactly what `evaluate` would compute (the
        same rows, aggregated the same way); None, the default, scores the split again."""
        return None

    # --- serving (TensorFlow graph) ------------------------------------------------------------
    def serving_functions(self, model: Any, assets: Assets, spec: Spec) -> dict[str, Any]:
        """Signature name -> tf.function of the SavedModel (and of `kbuild predict` on a run).
        `serving_default` takes one raw-strings input `[batch]` per input name (`text`, or `text`
        and `text_pair`, ...); by default it is `serve`. `assets` holds the run's tokenizers and
        labels."""
        return {"serving_default": text_function(
            self.input_names(spec), lambda texts: self.serve(texts, assets.tokenizer, model, assets.labels, spec))}

    def serve(self, texts: Mapping[str, Any], tokenizer: Any, model: Any, labels: list[str], spec: Spec) -> dict[str, Any]:
        """Raw strings `[batch]` by input name -> the named tensors of the SavedModel's `serving_default`."""
        return self.serving_outputs(model(self.encode(tokenizer, texts, spec), training=False), labels)

    def serving_outputs(self, outputs: Any, labels: list[str]) -> dict[str, Any]:
        """Model outputs -> named serving tensors (used by the default `serve`)."""
        raise NotImplementedError

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        """Serving outputs (numpy) -> one JSON-ready dict per input text."""
        raise NotImplementedError



def logged_scores(logs: Mapping[str, float], names: tuple[str, ...]) -> dict | None:
    """`Task.scores_from_validation` for a task whose `evaluate` is Keras's with these compiled
    metrics: Keras scored the valid batches with the saved weights at that epoch's end, and its
    `val_<name>` logs are `evaluate`'s numbers. None unless every name is in the logs (a run
    compiled without one)."""
    if not all(f"val_{name}" in logs for name in names):
        return None
    return {name: float(logs[f"val_{name}"]) for name in names}


def text_function(names: tuple[str, ...], body: Callable[[dict[str, Any]], Any]) -> Any:
    """A tf.function over one `tf.string [batch]` input per name, in order, calling `body` with
    them by name: the shape of every serving signature (its inputs are named after `names`). It
    takes them by position or by name (`f(text=..., text_pair=...)`), like a hand-written one."""
    import inspect

    import tensorflow as tf

    signature = [tf.TensorSpec([None], tf.string, name=name) for name in names]

    def function(*texts, **named):
        return body({**dict(zip(names, texts, strict=False)), **named})

    # tf.function binds arguments through the Python signature: give it the inputs' names.
    function.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names])
    return tf.function(function, input_signature=signature)
