"""Language modelling: predict every next token of running text (decoder-only Transformer, LSTM,
GRU). Loss is cross-entropy in nats per token over non-padding positions; perplexity is its
exponential. `kbuild generate` samples from a trained model (see kbuild.generation).

With `model.backbone.from` a decoder checkpoint (SmolLM2, gpt2, ...), the same task continues its
pretraining: the text is read with the checkpoint's tokenizer into the same windows, and the model
is keras_hub's `CausalLM`, trained, scored and served as `task: chat` trains it
(`kbuild.tasks.causal_lm`), every real token of the text weighted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kbuild.names import LOGITS
from kbuild.pretrained.checkpoint import CAUSAL_LM
from kbuild.tasks.base import TASKS, SplitData, Task, logged_scores
from kbuild.tasks.causal_lm import (
    PADDING_MASK,
    TOKEN_IDS,
    TOKEN_LOSS,
    CausalLmTraining,
    serving_context,
)
from kbuild.tasks.token_loss import perplexity, token_loss

if TYPE_CHECKING:
    from kbuild.data.example import ReadResult
    from kbuild.spec import Spec
    from kbuild.tasks.bundle import Assets, DataBundle

EXPORT_NEW_TOKENS = 100
"""Tokens `serving_default` of an exported language model adds to each prompt (greedy); the
`generate` signature takes the count as an input."""

CHECKPOINT = CausalLmTraining()
"""The model, loss, metrics and scores of a language model from a `model.backbone` checkpoint."""


class LanguageModelTask(Task):
    name = "language_model"
    logged_metrics = ("perplexity",)
    uses_labels = False
    checkpoint_kind = CAUSAL_LM

    def metric_names(self, spec: Spec) -> tuple[str, ...]:
        """From a checkpoint, also the exact token-weighted loss (`token_loss`) perplexity is read off."""
        names = super().metric_names(spec)
        return names if spec.model.backbone is None else (*names, TOKEN_LOSS, f"val_{TOKEN_LOSS}")

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Every block must be causal (a block that sees later tokens would learn to copy them), and
        bucketing has nothing to group."""
        if spec.preprocess.bucketing:
            yield ("preprocess", "bucketing"), ("a language model's windows all hold max_length tokens, so there is "
                                                "nothing to bucket; set bucketing: false")
        for i, block in enumerate(spec.model.blocks):
            reason = block.not_causal_reason()
            if reason:
                yield ("model", "blocks", i, "type"), (
                    f"a language model needs causal blocks, but {reason}"
                )

    def texts(self, split: ReadResult) -> list[str]:
        """Each example is a line of running text: it ends with a line break."""
        return [f"{example.text}\n" for example in split.examples]

    def label_vocabulary(self, train: ReadResult) -> list[str]:
        return []

    def sample_positions(self, count: int, rows: int, seed: int) -> list[int]:
        """One unbroken run of `rows` lines from a seeded start: lines drawn apart would score the
        model on joins the text never has."""
        import random

        start = random.Random(seed).randrange(count - rows + 1)
        return list(range(start, start + rows))

    def make_dataset(self, bundle: DataBundle, split: ReadResult, spec: Spec, key: str, train: bool) -> SplitData:
        """Windows of `preprocess.max_length` tokens over the split's text (random offsets for
        train, in-order tiling otherwise); from a checkpoint, as its `CausalLM` reads them."""
        import functools

        from kbuild.data.windows import token_stream, window_count, window_dataset

        stream = token_stream(bundle.tokenizer, self.texts(split))
        count = window_count(stream, spec.preprocess.max_length, f"{key} ({split.source})")
        form = {} if spec.model.backbone is None else {"pad_id": bundle.tokenizer.pad_id, "pack": causal_lm_window}
        factory = functools.partial(
            window_dataset, stream, spec.preprocess.max_length, spec.train.batch_size,
            shuffle=train, seed=spec.seed, **form,
        )
        return SplitData(factory, count)

    # --- model: kbuild's own, or the checkpoint's CausalLM ----------------------------------------
    def build_model(self, spec: Spec, bundle: DataBundle) -> Any:
        if spec.model.backbone is not None:
            return CHECKPOINT.build_model(spec, bundle)
        return super().build_model(spec, bundle)

    def build_outputs(self, features: Any, spec: Spec, labels: list[str], vocab_size: int) -> Any:
        """Next-token logits over the vocabulary at every position (float32 for a stable loss)."""
        import keras

        return keras.layers.Dense(vocab_size, dtype="float32", name=LOGITS)(features)

    def loss(self, spec: Spec) -> Any:
        if spec.model.backbone is not None:
            return CHECKPOINT.loss(spec)
        return token_loss()  # padded targets (the tail of the last window) carry no token to predict

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        return CHECKPOINT.metrics(spec, labels) if spec.model.backbone is not None else [perplexity()]

    def weighted_metrics(self, spec: Spec) -> list[Any]:
        return CHECKPOINT.weighted_metrics(spec) if spec.model.backbone is not None else []

    def epoch_callbacks(self, spec: Spec, bundle: DataBundle) -> list[Any]:
        return CHECKPOINT.epoch_callbacks(spec, bundle) if spec.model.backbone is not None else []

    def evaluate(self, model: Any, bundle: DataBundle, split: str, spec: Spec) -> dict:
        if spec.model.backbone is not None:
            return CHECKPOINT.evaluate(model, bundle, split, spec)
        return super().evaluate(model, bundle, split, spec)

    def scores_from_validation(self, logs, bundle: DataBundle, split: str, spec: Spec) -> dict | None:
        """From a checkpoint, the saved epoch's `val_token_loss` (kbuild's own models log no such
        sum); kbuild's own models' `evaluate` is Keras's, whose `val_*` logs it is."""
        if spec.model.backbone is None:
            return logged_scores(logs, ("loss", *self.logged_metrics))
        return CHECKPOINT.scores_from_validation(logs, bundle, split, spec)

    def serving_functions(self, model: Any, assets: Assets, spec: Spec) -> dict[str, Any]:
        """`serving_default(text)`: greedy continuation by EXPORT_NEW_TOKENS tokens;
        `generate(prompt, max_new_tokens)`: the same with the length as an input. A checkpoint's
        model stops early at its end token (`<|endoftext|>`)."""
        import keras_hub
        import tensorflow as tf

        from kbuild.names import TEXT_INPUT

        tokenizer = assets.tokenizer
        sampler = keras_hub.samplers.GreedySampler()
        if spec.model.backbone is None:
            from kbuild.decoding.graph import generate_in_graph
            from kbuild.decoding.stepper import LanguageModelStepper

            stepper = LanguageModelStepper(model, spec)

            def complete(prompt, max_new_tokens):
                return generate_in_graph(stepper, tokenizer, sampler, prompt, max_new_tokens)
        else:
            from kbuild.decoding.causal_lm import continue_in_graph

            stops = () if tokenizer.end_id is None else (int(tokenizer.end_id),)
            context = serving_context(spec)

            def complete(prompt, max_new_tokens):
                completion = continue_in_graph(model, tokenizer, sampler, prompt, max_new_tokens, stops, context)
                return {"completion": completion, "text": tf.strings.join([prompt, completion])}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompt"),
                                      tf.TensorSpec([], tf.int32, name="max_new_tokens")])
        def generate(prompt, max_new_tokens):
            return complete(prompt, max_new_tokens)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=TEXT_INPUT)])
        def serve(text):
            return complete(text, tf.constant(EXPORT_NEW_TOKENS))

        return {"serving_default": serve, "generate": generate}

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        return [{"prompt": text, "completion": completion.decode("utf-8", errors="replace")}
                for text, completion in zip(texts, outputs["completion"], strict=True)]


TASKS.register("language_model")(LanguageModelTask())


def causal_lm_window(inputs: Any, targets: Any, inputs_real: Any, targets_real: Any) -> tuple:
    """A window as a checkpoint's `CausalLM` reads it (`window_dataset`'s `pack`): the tail of the
    last tiled window is masked out and its targets weigh nothing."""
    import tensorflow as tf

    # int32, the backbone's declared input type: MirroredStrategy cannot split a bool tensor.
    return {TOKEN_IDS: inputs, PADDING_MASK: tf.cast(inputs_real, tf.int32)}, targets, tf.cast(targets_real, tf.float32)
