"""Language modelling: predict every next token of running text (decoder-only Transformer, LSTM,
GRU). Loss is cross-entropy in nats per token over non-padding positions; perplexity is its
exponential. `kbuild generate` samples from a trained model (see kbuild.generation)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kbuild.names import LOGITS
from kbuild.tasks.base import TASKS, SplitData, Task
from kbuild.tasks.token_loss import perplexity, token_loss

if TYPE_CHECKING:
    from kbuild.data.example import ReadResult
    from kbuild.spec import Spec
    from kbuild.tasks.bundle import Assets, DataBundle

EXPORT_NEW_TOKENS = 100
"""Tokens `serving_default` of an exported language model adds to each prompt (greedy); the
`generate` signature takes the count as an input."""


class LanguageModelTask(Task):
    name = "language_model"
    logged_metrics = ("perplexity",)
    uses_labels = False

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Every block must be causal: a block that sees later tokens would learn to copy them."""
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
        train, in-order tiling otherwise)."""
        import functools

        from kbuild.data.windows import token_stream, window_count, window_dataset

        stream = token_stream(bundle.tokenizer, self.texts(split))
        count = window_count(stream, spec.preprocess.max_length, f"{key} ({split.source})")
        factory = functools.partial(
            window_dataset, stream, spec.preprocess.max_length, spec.train.batch_size,
            shuffle=train, seed=spec.seed,
        )
        return SplitData(factory, count)

    def build_outputs(self, features: Any, spec: Spec, labels: list[str], vocab_size: int) -> Any:
        """Next-token logits over the vocabulary at every position (float32 for a stable loss)."""
        import keras

        return keras.layers.Dense(vocab_size, dtype="float32", name=LOGITS)(features)

    def loss(self, spec: Spec) -> Any:
        return token_loss()  # padded targets (the tail of the last window) carry no token to predict

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        return [perplexity()]

    def serving_functions(self, model: Any, assets: Assets, spec: Spec) -> dict[str, Any]:
        """`serving_default(text)`: greedy continuation by EXPORT_NEW_TOKENS tokens;
        `generate(prompt, max_new_tokens)`: the same with the length as an input."""
        import keras_hub
        import tensorflow as tf

        from kbuild.decoding.graph import generate_in_graph
        from kbuild.decoding.stepper import LanguageModelStepper
        from kbuild.names import TEXT_INPUT

        tokenizer = assets.tokenizer
        stepper = LanguageModelStepper(model, spec)
        sampler = keras_hub.samplers.GreedySampler()

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompt"),
                                      tf.TensorSpec([], tf.int32, name="max_new_tokens")])
        def generate(prompt, max_new_tokens):
            return generate_in_graph(stepper, tokenizer, sampler, prompt, max_new_tokens)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=TEXT_INPUT)])
        def serve(text):
            return generate_in_graph(stepper, tokenizer, sampler, text, tf.constant(EXPORT_NEW_TOKENS))

        return {"serving_default": serve, "generate": generate}

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        return [{"prompt": text, "completion": completion.decode("utf-8")}
                for text, completion in zip(texts, outputs["completion"], strict=True)]


TASKS.register("language_model")(LanguageModelTask())
