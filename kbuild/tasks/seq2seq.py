"""Sequence to sequence (translation): an encoder over the source, a decoder with cross-attention
over the target, trained with teacher forcing; evaluated by corpus BLEU on decoded translations.

Examples are (source text, target text) pairs: `format: parallel` reads two aligned files, a tsv
with `columns: {text: source, label: target}` works too. One tokenizer serves both sides (a
shared vocabulary) unless `preprocess.target_tokenizer` gives the target its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kbuild.names import TEXT_INPUT
from kbuild.tasks.base import TASKS, SplitData, Task
from kbuild.tasks.token_loss import perplexity, token_loss

if TYPE_CHECKING:
    from kbuild.data.example import ReadResult
    from kbuild.spec import Spec
    from kbuild.tasks.bundle import Assets, DataBundle

TRANSLATION = "translation"
DECODE_BATCH = 128


class Seq2SeqTask(Task):
    name = "seq2seq"
    backbone_init = False
    logged_metrics = ("token_accuracy", "perplexity")
    owned_fields = (("model", "decoder"), ("preprocess", "target_tokenizer"), ("data", "target_suffix"))
    uses_labels = False

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        if spec.model.decoder is None:
            yield ("model", "decoder"), ("seq2seq needs a decoder, e.g. decoder: {type: transformer, layers: 2, "
                                         "heads: 4, ff_dim: 512} or {type: lstm, units: 256, attention: luong}")
        if spec.model.embedding.pretrained is not None:
            yield ("model", "embedding", "pretrained"), "pretrained vectors are not supported for seq2seq yet"
        if spec.preprocess.bucketing:
            yield ("preprocess", "bucketing"), ("seq2seq trims every batch to its longest source and target "
                                                "already; set bucketing: false")

    # --- data ----------------------------------------------------------------------------------
    def texts(self, split: ReadResult) -> list[str]:
        """The source texts (the shared tokenizer also learns the targets: see `target_texts`)."""
        return [example.text for example in split.examples]

    def target_tokenizer_spec(self, spec: Spec) -> Any:
        return spec.preprocess.target_tokenizer

    def target_texts(self, split: ReadResult) -> list[str]:
        return [example.label for example in split.examples]

    def label_vocabulary(self, train: ReadResult) -> list[str]:
        from kbuild.errors import DataError

        if train.examples and not isinstance(train.examples[0].label, str):
            raise DataError("data.train: seq2seq needs a target text per example (format: parallel with "
                            "data.target_suffix, or a tsv with columns: {text: ..., label: ...})", train.source)
        return []

    def make_dataset(self, bundle: DataBundle, split: ReadResult, spec: Spec, key: str, train: bool) -> SplitData:
        """Batches of ({source_ids, target_ids}, next target ids), each batch trimmed to its
        longest source and target; train is shuffled."""
        import functools

        from kbuild.data.pairs import encode_pairs, pair_dataset

        if split.examples and not isinstance(split.examples[0].label, str):
            from kbuild.errors import DataError

            raise DataError(f"{key}: seq2seq needs a target text per example", split.source)
        pairs = encode_pairs(bundle.tokenizer, bundle.target, split.examples, spec.preprocess.max_length, key)
        factory = functools.partial(pair_dataset, pairs, spec.train.batch_size, shuffle=train, seed=spec.seed,
                                    shuffle_buffer=spec.train.shuffle_buffer)
        return SplitData(factory, len(split.examples))

    # --- model ---------------------------------------------------------------------------------
    def build_model(self, spec: Spec, bundle: DataBundle) -> Any:
        from kbuild.tasks.seq2seq_model import build_seq2seq_model

        return build_seq2seq_model(spec, bundle.tokenizer.vocabulary_size, bundle.target.vocabulary_size)

    def loss(self, spec: Spec) -> Any:
        return token_loss()

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        from kbuild.layers import TokenAccuracy

        return [TokenAccuracy(padding=0), perplexity()]

    def evaluate(self, model: Any, bundle: DataBundle, split: str, spec: Spec) -> dict:
        """Teacher-forced loss, token accuracy and perplexity, and corpus BLEU (sacrebleu's
        default: 13a, cased) of the decoded translations against the targets. The train split
        gets no BLEU: decoding all of it would cost more than an epoch of training."""
        from kbuild.decoding.translator import Translator
        from kbuild.tasks.bleu import corpus_bleu

        results = super().evaluate(model, bundle, split, spec)
        if split == "train":
            return results
        examples = bundle.examples[split]
        translator = Translator(model, bundle.tokenizer, bundle.target, spec)
        hypotheses = translator.translate([example.text for example in examples])
        results.update(corpus_bleu(hypotheses, [example.label for example in examples]).as_dict())
        return results

    # --- serving -------------------------------------------------------------------------------
    def serving_functions(self, model: Any, bundle: Assets, spec: Spec) -> dict[str, Any]:
        """`serving_default(text)`: source strings [batch] -> `translation` strings [batch]."""
        import tensorflow as tf

        from kbuild.decoding.translator import Translator, quiet_masks

        translator = Translator(model, bundle.tokenizer, bundle.target, spec)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=TEXT_INPUT)])
        def serving_default(text):
            with quiet_masks():
                return {TRANSLATION: translator.translate_graph(text)}

        return {"serving_default": serving_default}

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        return [{"source": text, TRANSLATION: translation.decode("utf-8")}
                for text, translation in zip(texts, outputs[TRANSLATION], strict=True)]


TASKS.register("seq2seq")(Seq2SeqTask())
