"""Language modelling: predict every next token of running text (decoder-only Transformer, LSTM,
GRU). Loss is cross-entropy in nats per token over non-padding positions; perplexity is its
exponential. `kbuild generate` samples from a trained model (see kbuild.generation)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kbuild.tasks.base import TASKS, Task

if TYPE_CHECKING:
    from kbuild.data.example import ReadResult
    from kbuild.spec import Spec

LOGITS = "logits"


class LanguageModelTask(Task):
    name = "language_model"

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

    def make_dataset(self, tokenizer: Any, split: ReadResult, labels: list[str], spec: Spec,
                     key: str, train: bool) -> tuple[Any, int]:
        """Windows of `preprocess.max_length` tokens over the split's text (random offsets for
        train, in-order tiling otherwise)."""
        from kbuild.data.windows import token_stream, window_dataset

        stream = token_stream(tokenizer, self.texts(split))
        return window_dataset(
            stream, spec.preprocess.max_length, spec.train.batch_size,
            shuffle=train, seed=spec.seed, source=f"{key} ({split.source})",
        )

    def build_outputs(self, features: Any, spec: Spec, labels: list[str], vocab_size: int) -> Any:
        """Next-token logits over the vocabulary at every position (float32 for a stable loss)."""
        import keras

        return keras.layers.Dense(vocab_size, dtype="float32", name=LOGITS)(features)

    def loss(self, spec: Spec) -> Any:
        import keras

        from kbuild.data.tokenizers import PAD_ID

        # Padded targets (the tail of the last window) carry no token to predict.
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID)

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        import keras_hub

        from kbuild.data.tokenizers import PAD_ID

        return [keras_hub.metrics.Perplexity(from_logits=True, mask_token_id=PAD_ID, name="perplexity")]


TASKS.register("language_model")(LanguageModelTask())
