"""Sequence labelling (NER, chunking, POS): one tag per whitespace-separated word.

Words are read one id per word (`whitespace` tokenizer, optionally with char features) or as
subwords (`wordpiece`, `word`, `char`): the tokenizer then also encodes where each word starts, the
model keeps each word's first sub-token after its blocks, and from there on (labels, loss, CRF,
decoding, scoring, serving) everything is per word, as with the whitespace tokenizer.

Examples carry the tuple of their tags (the `conll` reader); tags are converted to the spec's
`preprocess.tag_scheme` on load, their vocabulary comes from train, and label sequences are padded
with -1, which the loss, the metrics and the CRF all mask. The head is a per-token softmax, or a
linear-chain CRF (`model.head.type: crf`) decoded by Viterbi inside the graph. Evaluation reports
conlleval's entity-level precision/recall/F1, per entity type, and token accuracy.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from kbuild.data.example import ReadResult
from kbuild.data.tag_schemes import OUTSIDE, convert
from kbuild.errors import DataError
from kbuild.names import TEXT_INPUT
from kbuild.registry import did_you_mean
from kbuild.tasks import conlleval
from kbuild.tasks.base import TASKS, SplitData, Task
from kbuild.tasks.head import dense_head

if TYPE_CHECKING:
    import numpy as np

    from kbuild.spec import Spec
    from kbuild.tasks.bundle import DataBundle

PADDING_TAG = -1
TAG_SCORES = "tag_scores"


def word_positions(features: Any) -> Any:
    """The input whose non-zero entries are the words a tagger labels: `word_starts` over
    subwords, else the token ids (one per word). Works on arrays, tensors and Keras inputs."""
    from kbuild.names import TOKEN_IDS, WORD_STARTS

    if not isinstance(features, dict):
        return features
    return features[WORD_STARTS] if WORD_STARTS in features else features[TOKEN_IDS]


class TaggingTask(Task):
    name = "tagging"
    logged_metrics = ("token_accuracy",)
    owned_fields = (("preprocess", "tag_scheme"), ("model", "embedding", "chars"), ("model", "embedding", "bigrams"))
    label_padding = PADDING_TAG
    default_monitor = "val_f1"
    # Tag scores per word are small: 128 rows of 128 tokens score in one batch.
    scoring_tokens = 16384

    def metric_names(self, spec: Spec) -> tuple[str, ...]:
        """The compiled metrics, and the entity scores the epoch callback adds (`val_f1`, ...)."""
        entity = ("f1", "precision", "recall")
        return (*super().metric_names(spec), *entity, *(f"val_{name}" for name in entity))

    def epoch_callbacks(self, spec: Spec, bundle: DataBundle) -> list[Any]:
        """`val_f1` (conlleval entity F1 on valid; `f1` on train without one) in every epoch's logs."""
        from kbuild.tasks.entity_f1 import EntityF1

        return [EntityF1(self, bundle, spec, "valid" if "valid" in bundle.datasets else "train")]

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        if self.word_aligned(spec) and spec.model.embedding.chars is not None:
            yield (("model", "embedding", "chars"),
                   "char features need one id per word (tokenizer type: whitespace); a "
                   f"{spec.preprocess.tokenizer.type} tokenizer already sees inside words: remove chars")
        # The resolved spec of a run writes the default back, so only a changed pooling is a mistake.
        if spec.model.pooling != type(spec.model).model_fields["pooling"].default:
            yield ("model", "pooling"), "tagging labels every token and pools nothing; remove model.pooling"

    def word_aligned(self, spec: Spec) -> bool:
        # `whitespace` gives one id per word; any other tokenizer may cut a word into several.
        return spec.preprocess.tokenizer.type != "whitespace"

    def needs_start_token(self, spec: Spec) -> bool:
        return self.word_aligned(spec)

    # --- data ----------------------------------------------------------------------------------
    def prepare(self, split: ReadResult, spec: Spec, key: str) -> ReadResult:
        """Tags converted to `preprocess.tag_scheme`; a bad tag or count fails naming its line."""
        examples = []
        for example in split.examples:
            if example.label is None:
                examples.append(example)
                continue
            if isinstance(example.label, str):
                raise DataError(f"{key}: tagging needs one tag per token (data.format: conll); "
                                f"received the single label {example.label!r}", split.source, example.line)
            if len(example.label) != len(example.text.split()):
                raise DataError(f"{len(example.text.split())} tokens but {len(example.label)} tags",
                                split.source, example.line)
            try:
                tags = tuple(convert(example.label, spec.preprocess.tag_scheme))
            except ValueError as error:
                raise DataError(f"{key}: {error}", split.source, example.line) from None
            examples.append(replace(example, label=tags))
        return ReadResult(examples, split.skipped, split.source)

    def label_vocabulary(self, train: ReadResult) -> list[str]:
        """`O` first (id 0), then the other train tags sorted."""
        if train.examples and train.examples[0].label is None:
            raise DataError("data.train: the examples have no tags", train.source)
        tags = {tag for example in train.examples for tag in example.label}
        return [OUTSIDE, *sorted(tags - {OUTSIDE})]

    def encode_labels(self, split: ReadResult, labels: list[str], key: str, spec: Spec) -> np.ndarray:
        """int32 `[examples, max_length]` tag ids, -1 past each sentence's end (or its last word
        that fits); a tag train never had fails naming its line."""
        import numpy as np

        index = {tag: i for i, tag in enumerate(labels)}
        length = spec.preprocess.max_length
        ids = np.full((len(split.examples), length), PADDING_TAG, np.int32)
        for row, example in enumerate(split.examples):
            if example.label is None:
                raise DataError(f"{key}: the examples have no tags", split.source)
            for position, tag in enumerate(example.label[:length]):
                tag_id = index.get(tag)
                if tag_id is None:
                    raise DataError(f"tag {tag!r} does not occur in the train split{did_you_mean(tag, labels)}; "
                                    f"known tags: {', '.join(labels)}", split.source, example.line)
                ids[row, position] = tag_id
        return ids

    def make_dataset(self, bundle: DataBundle, split: ReadResult, spec: Spec, key: str, train: bool) -> SplitData:
        """The rows' dataset, labels kept only for the words the encoding kept (the first
        max_length words, or, over subwords, those whose first sub-token fits), with a warning
        counting the sentences cut."""
        import numpy as np

        from kbuild.data.pipeline import encode_all

        label_ids = self.encode_labels(split, bundle.labels, key, spec)
        features = encode_all(bundle.tokenizer, self.texts(split))
        kept = (np.asarray(word_positions(features)) != 0).sum(axis=1)
        label_ids[np.arange(label_ids.shape[1])[None, :] >= kept[:, None]] = PADDING_TAG
        words = np.array([len(example.text.split()) for example in split.examples], np.int64)
        if (cut := int((words > kept).sum())):
            budget = "sub-tokens, [CLS] included" if self.word_aligned(spec) else "words"
            print(f"[kbuild] warning: {key}: {cut} sentence(s) did not fit in preprocess.max_length "
                  f"({spec.preprocess.max_length} {budget}) and were truncated; their words past it "
                  "count as tagged O when scoring", file=sys.stderr, flush=True)
        return self.row_data(features, label_ids, spec, train)

    # --- model ---------------------------------------------------------------------------------
    def build_outputs(self, features: Any, spec: Spec, labels: list[str], vocab_size: int) -> Any:
        """Per-token dense layers, then a float32 softmax over the tags or a CRF over emissions."""
        import keras

        from kbuild.layers.crf import CRF

        x, head = dense_head(features, spec), spec.model.head
        if head.type == "crf":
            emissions = keras.layers.Dense(len(labels), dtype="float32", name="emissions")(x)
            return CRF(len(labels), name="crf")(emissions)
        return keras.layers.Dense(len(labels), activation="softmax", dtype="float32", name=TAG_SCORES)(x)

    def loss(self, spec: Spec) -> Any:
        import keras

        from kbuild.layers.crf import CRFLoss

        if spec.model.head.type == "crf":
            return CRFLoss()
        return keras.losses.SparseCategoricalCrossentropy(ignore_class=PADDING_TAG)

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        from kbuild.layers import TokenAccuracy

        return [TokenAccuracy(crf=spec.model.head.type == "crf")]

    def decoder(self, model: Any, spec: Spec, labels: list[str], argmax_only: bool = False) -> Any:
        """A Keras model: the tagger's inputs -> int32 tag ids `[batch, time]`, -1 on padding."""
        import keras

        from kbuild.layers.crf import TagDecoder

        crf = spec.model.head.type == "crf"
        tags = TagDecoder(len(labels), crf=crf, argmax_only=argmax_only, name="decode")(model.output, word_positions(model.input))
        return keras.Model(model.input, tags, name=f"{model.name}_decoder")

    def evaluate(self, model: Any, bundle: DataBundle, split: str, spec: Spec) -> dict:
        """The compiled loss, and conlleval precision/recall/F1 (overall and per type) and token
        accuracy of the decoded tags over every word of every sentence, from one pass
        (`TagScorer`)."""
        from kbuild.tasks.tag_scoring import scorer_for

        data = bundle.splits[split]
        loss, ids = scorer_for(model, spec, len(bundle.labels)).loss_and_tags(data.features, data.targets)
        examples = bundle.examples[split]
        report = conlleval.score([example.label for example in examples], decoded_tags(examples, ids, bundle.labels)).report()
        return {"loss": loss, **report}

    def predict_tags(self, scorer: Any, bundle: DataBundle, split: str) -> list[list[str]]:
        """Decoded tags of each example of `split` by `scorer` (the model's `TagScorer`), in
        order; words past max_length get `O`."""
        return decoded_tags(bundle.examples[split], scorer.tags(bundle.splits[split].features), bundle.labels)

    # --- serving -------------------------------------------------------------------------------
    def serve(self, texts: Any, tokenizer: Any, model: Any, labels: list[str], spec: Spec) -> dict[str, Any]:
        """Sentences `[batch]` -> `tokens` and `tags` (strings `[batch, words]`, "" past each
        sentence's `length`), Viterbi (or argmax) decoding inside the graph."""
        import tensorflow as tf

        from kbuild.layers.crf import CRF, decode_tags

        text = texts[TEXT_INPUT]
        features = tokenizer.encode(text)
        outputs = model(features, training=False)
        crf = isinstance(model.layers[-1], CRF)
        tag_ids = decode_tags(outputs, tf.not_equal(word_positions(features), 0), len(labels), crf)
        # Words past what the encoding kept have no tag: they are cut from `tokens` too.
        tokens = tokenizer.words(text)[:, : tokenizer.max_length].to_tensor("")
        tag_ids = tag_ids[:, : tf.shape(tokens)[1]]
        length = tf.reduce_sum(tf.cast(tag_ids >= 0, tf.int32), axis=1)
        tokens = tf.where(tag_ids >= 0, tokens, "")
        tags = tf.where(tag_ids >= 0, tf.gather(tf.constant(labels), tf.maximum(tag_ids, 0)), "")
        return {"tokens": tokens, "tags": tags, "length": length}

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        """One row per sentence: its tokens, their tags and the entities they form."""
        rows = []
        for i, text in enumerate(texts):
            length = int(outputs["length"][i])
            tokens = [t.decode("utf-8") for t in outputs["tokens"][i][:length]]
            tags = [t.decode("utf-8") for t in outputs["tags"][i][:length]]
            entities = [
                {"type": kind, "start": start, "end": end + 1, "text": " ".join(tokens[start : end + 1])}
                for start, end, kind in conlleval.chunks(tags)
            ]
            rows.append({"text": text, "tokens": tokens, "tags": tags, "entities": entities})
        return rows


def decoded_tags(examples: list, ids: Any, labels: list[str]) -> list[list[str]]:
    """The decoder's tag ids (`[examples, length]`, -1 past the end) as tags per word of each
    example; words past max_length get `O`."""
    rows = []
    for example, row in zip(examples, ids, strict=True):
        words = len(example.text.split())
        tags = [labels[i] for i in row[:words] if i >= 0]
        rows.append(tags + [OUTSIDE] * (words - len(tags)))
    return rows


TASKS.register("tagging")(TaggingTask())
