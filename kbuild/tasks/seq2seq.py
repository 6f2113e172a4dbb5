"""Sequence to sequence (translation): an encoder over the source, a decoder with cross-attention
over the target, trained with teacher forcing; evaluated by corpus BLEU on decoded translations.

Examples are (source text, target text) pairs: `format: parallel` reads two aligned files, a tsv
with `columns: {text: source, label: target}` works too. One tokenizer serves both sides (a
shared vocabulary) unless `preprocess.target_tokenizer` gives the target its own.

With `model.backbone` the encoder is a pretrained checkpoint (a warm start) and its tokenizer reads
the sources (and, shared, writes the targets); the decoder is kbuild's own, cross-attending to the
checkpoint's features (see kbuild.tasks.seq2seq_model).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from kbuild.names import TEXT_INPUT
from kbuild.tasks.base import TASKS, SplitData, Task
from kbuild.tasks.token_loss import perplexity, token_loss

if TYPE_CHECKING:
    from kbuild.data.example import ReadResult
    from kbuild.spec import Spec
    from kbuild.tasks.bundle import Assets, DataBundle

TRANSLATION = "translation"


class Seq2SeqTask(Task):
    name = "seq2seq"
    backbone_init = False
    logged_metrics = ("token_accuracy", "perplexity")
    owned_fields = (("model", "decoder"), ("preprocess", "target_tokenizer"), ("data", "target_suffix"),
                    ("eval", "metrics"))
    uses_labels = False

    def metric_names(self, spec: Spec) -> tuple[str, ...]:
        """The compiled metrics, and the decoded scores `eval.metrics` selects (`rougeL`, `bleu`, ...)."""
        from kbuild.tasks.decoded_metrics import result_names, selected

        decoded = result_names(selected(spec))
        return (*super().metric_names(spec), *decoded, *(f"val_{name}" for name in decoded))

    def epoch_callbacks(self, spec: Spec, bundle: DataBundle) -> list[Any]:
        """When a monitor names a decoded score (`val_rougeL`): the scores of the valid split's
        decoded outputs in every epoch's logs (train's, without a valid split)."""
        from kbuild.tasks.decoded_metrics import result_names, selected

        decoded = set(result_names(selected(spec)))
        monitors = {spec.train.monitor}
        if spec.train.early_stopping is not None:
            monitors.add(spec.train.early_stopping.monitor)
        if not {name.removeprefix("val_") for name in monitors} & decoded:
            return []
        from kbuild.tasks.decoded_scores import DecodedScores

        return [DecodedScores(bundle, spec, "valid" if "valid" in bundle.datasets else "train")]

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        yield from eval_issues(spec)
        yield from decoding_issues(spec)
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

        return build_seq2seq_model(spec, bundle.tokenizer.vocabulary_size, bundle.target.vocabulary_size,
                                   shared_vocabulary=bundle.target_tokenizer is None)

    def loss(self, spec: Spec) -> Any:
        return token_loss()

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        from kbuild.layers import TokenAccuracy

        return [TokenAccuracy(padding=0), perplexity()]

    def evaluate(self, model: Any, bundle: DataBundle, split: str, spec: Spec) -> dict:
        """Teacher-forced loss, token accuracy and perplexity, and the `eval.metrics` scores of
        the decoded outputs against the targets (default: corpus BLEU, sacrebleu's 13a, cased;
        `rouge`: ROUGE-1/2/L F1). The train split gets no decoded scores: decoding all of it
        would cost more than an epoch of training."""
        from kbuild.decoding.translator import Translator
        from kbuild.tasks.decoded_metrics import score_all, selected

        results = super().evaluate(model, bundle, split, spec)
        if split == "train":
            return results
        examples = bundle.examples[split]
        translator = Translator(model, bundle.tokenizer, bundle.target, spec)
        hypotheses = translator.translate([example.text for example in examples])
        results.update(score_all(selected(spec), hypotheses, [example.label for example in examples]))
        return results

    def scores_from_validation(self, logs: Mapping[str, float], bundle: DataBundle, split: str,
                               spec: Spec) -> dict | None:
        """The saved epoch's teacher-forced `val_*` metrics and, when a monitor made the epochs decode
        valid (`DecodedScores`), its decoded scores: `evaluate`'s, from the same rows and the same
        `Translator`. Without decoded scores in the logs, valid is decoded again (None). AESLC's dev
        split is 1,960 beam-searched emails: minutes after training, for numbers already logged."""
        from kbuild.tasks.decoded_metrics import result_names, selected

        names = ("loss", *self.logged_metrics, *result_names(selected(spec)))
        if not all(f"val_{name}" in logs for name in names):
            return None
        return {name: float(logs[f"val_{name}"]) for name in names}

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


def decoding_issues(spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """The decoder's length options: within `preprocess.max_length`, consistent, and a length
    penalty only where there are beams to rank."""
    decoder = spec.model.decoder
    if decoder is None:
        return
    longest = spec.preprocess.max_length - 1  # the buffer's first position holds the start token
    if decoder.max_length is not None and decoder.max_length > longest:
        yield ("model", "decoder", "max_length"), (f"Expected at most preprocess.max_length - 1 ({longest}) output "
                                                   f"tokens; received max_length={decoder.max_length}")
    if decoder.min_length > min(decoder.max_length or longest, longest):
        yield ("model", "decoder", "min_length"), (f"Expected at most the output's maximum length "
                                                   f"({min(decoder.max_length or longest, longest)}); "
                                                   f"received min_length={decoder.min_length}")
    if decoder.length_penalty is not None and decoder.search != "beam":
        yield ("model", "decoder", "length_penalty"), "a length penalty ranks beams: set search: beam, or remove it"
    units = getattr(decoder, "units", None)
    if decoder.tie_embeddings and units is not None and spec.model.backbone is None and units != spec.model.embedding.dim:
        yield ("model", "decoder", "tie_embeddings"), (f"a tied output layer reads the decoder's {units} units through "
                                                       f"the {spec.model.embedding.dim}-wide target embedding: set "
                                                       f"units: {spec.model.embedding.dim}, or tie_embeddings: false")
    if getattr(decoder, "from_backbone", False) and spec.model.backbone is None:
        yield ("model", "decoder", "from_backbone"), ("there is no checkpoint to start the decoder from: "
                                                      "set model.backbone, or remove from_backbone")


def eval_issues(spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """`eval.metrics`: registered names, none writing a result another one writes too."""
    from kbuild.registry import did_you_mean
    from kbuild.tasks.decoded_metrics import DECODED_METRICS

    if spec.eval is None:
        return
    known, writers = DECODED_METRICS.names(), {}
    for i, name in enumerate(spec.eval.metrics):
        if name not in known:
            yield ("eval", "metrics", i), (f"unknown metric {name!r}{did_you_mean(name, known)}; "
                                           f"expected one of: {', '.join(known)}")
            continue
        for result in DECODED_METRICS.get(name).names:
            if (other := writers.setdefault(result, name)) != name:
                yield ("eval", "metrics", i), (f"{name} and {other} both report {result}: keep one "
                                               "(rouge for words with stemming, rouge_char for characters)")
                break


TASKS.register("seq2seq")(Seq2SeqTask())
