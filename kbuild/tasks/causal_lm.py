"""Training a pretrained causal language model (keras_hub's `CausalLM` of the `model.backbone`
checkpoint): what `task: chat` and `task: language_model` from a checkpoint share.

Batches are `({token_ids, padding_mask}, next ids, weights)`; a weight says whether a target token
counts (a reply's token in a chat, every real token of running text), so the loss is the mean over
the weighted tokens (`mean_with_sample_weight`) and padding carries none. `token_loss` is that mean
summed token by token over an epoch (Keras's `loss` is a mean of batch means) and perplexity its
exponential, added per epoch and by `evaluate`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from kbuild.names import LOSS_POSITIONS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kbuild.spec import Spec
    from kbuild.tasks.bundle import DataBundle

TOKEN_IDS, PADDING_MASK = "token_ids", "padding_mask"
"""keras_hub's causal LM inputs."""
TOKEN_LOSS = "token_loss"
"""The logged token-weighted loss (`WeightedTokenLoss`); Keras's `loss` is a mean of batch means."""
SERVING_CONTEXT = 1024
"""Tokens the exported model's cache holds (prompt and continuation; at least `preprocess.max_length`)."""


def perplexity_of(loss: float) -> float:
    """exp of a loss in nats per token, capped at exp(50) so a diverged run logs a number, not inf."""
    return math.exp(min(loss, 50.0))


def token_scores(loss: float, tokens: float) -> dict:
    """A split's final scores: loss per weighted token, its perplexity (NaN without tokens), the count."""
    return {"loss": loss, "perplexity": perplexity_of(loss) if tokens else float("nan"), "tokens": int(tokens)}


def serving_context(spec: Spec) -> int:
    """Tokens of prompt and continuation the served model's cache holds."""
    return max(SERVING_CONTEXT, spec.preprocess.max_length)


class CausalLmTraining:
    """The model, loss, metrics and scoring of a fine-tuned checkpoint `CausalLM` (Task hooks)."""

    def build_model(self, spec: Spec, bundle: DataBundle) -> Any:
        """keras_hub's `CausalLM` of the checkpoint (no preprocessor: the data is tokenized), with
        `model.backbone`'s trainable / freeze_layers / lora controls, inside the model that
        computes its output layer at the weighted targets only (`TargetPositions`; it saves the
        `CausalLM`)."""
        from kbuild.pretrained.backbone import apply_controls
        from kbuild.pretrained.causal_lm import load_causal_lm, target_positions_model
        from kbuild.pretrained.checkpoint import CAUSAL_LM, inspect

        model = load_causal_lm(inspect(spec, CAUSAL_LM))
        model.preprocessor = None
        apply_controls(model.backbone, spec.model.backbone)
        return target_positions_model(model)

    def loss(self, spec: Spec) -> Any:
        import keras

        # The mean over weighted tokens, not over every position of the batch.
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        return []

    def weighted_metrics(self, spec: Spec) -> list[Any]:
        """keras_hub's default (token accuracy) and the exact loss over the weighted tokens;
        perplexity is exp(token_loss), added per epoch (`epoch_callbacks`) and in `evaluate`."""
        import keras

        from kbuild.layers.metrics import WeightedTokenLoss

        return [keras.metrics.SparseCategoricalAccuracy(), WeightedTokenLoss(name=TOKEN_LOSS)]

    def epoch_callbacks(self, spec: Spec, bundle: DataBundle) -> list[Any]:
        import keras

        class Perplexity(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                for prefix in ("", "val_"):
                    if logs is not None and f"{prefix}{TOKEN_LOSS}" in logs:
                        logs[f"{prefix}perplexity"] = perplexity_of(float(logs[f"{prefix}{TOKEN_LOSS}"]))

        return [Perplexity()]

    def scores_from_validation(self, logs: Mapping[str, float], bundle: DataBundle, split: str,
                               spec: Spec) -> dict | None:
        """The saved epoch's `val_token_loss` is `evaluate`'s loss: the same valid batches, summed
        token by token (the AESLC LoRA run spent 509 s after training loading its model and reading valid again)."""
        if f"val_{TOKEN_LOSS}" not in logs:
            return None
        tokens = sum(float(weights.numpy().sum()) for _, _, weights in bundle.datasets[split])
        return token_scores(float(logs[f"val_{TOKEN_LOSS}"]), tokens)

    def evaluate(self, model: Any, bundle: DataBundle, split: str, spec: Spec) -> dict:
        """Loss and perplexity over the split's weighted tokens, summed token by token, and how
        many tokens that is. `model` is the saved `CausalLM` or the training model around it."""
        import keras
        import tensorflow as tf

        from kbuild.pretrained.causal_lm import target_positions_model

        model = target_positions_model(model)

        @tf.function
        def sums(x, y, w):
            losses = keras.losses.sparse_categorical_crossentropy(y, model(x, training=False), from_logits=True)
            return tf.reduce_sum(losses * w), tf.reduce_sum(w)

        total = tokens = 0.0
        for x, y, w in bundle.datasets[split]:
            loss, count = sums(x, y, w)
            total, tokens = total + float(loss), tokens + float(count)
        return token_scores(total / tokens if tokens else float("nan"), tokens)


def weighted_dataset(features: dict[str, Any], targets: Any, weights: Any, batch_size: int, *, shuffle: bool,
                     seed: int, pad_id: int = 0, bucketing: bool = False, at_weighted: bool = False) -> Any:
    """Batches of `(inputs, targets, weights)`, reshuffled each epoch with `seed` when `shuffle`.
    `bucketing` groups rows of similar length and pads each batch to its bucket
    (`kbuild.data.pipeline.bucket_lengths`), not to `preprocess.max_length`: chat exchanges vary
    in length, and every padded position costs the whole model's work. Scores are sums over
    weighted tokens, so valid and test are bucketed too. `at_weighted` keeps only the weighted
    targets of each batch (`at_weighted_targets`)."""
    import numpy as np
    import tensorflow as tf

    from kbuild.data.pipeline import bucket_by_length

    dataset = tf.data.Dataset.from_tensor_slices((features, targets, weights))
    if shuffle:
        dataset = dataset.shuffle(max(1, len(targets)), seed=seed, reshuffle_each_iteration=True)
    if not bucketing:
        batched = dataset.batch(batch_size)
        return _kept(batched, at_weighted).prefetch(tf.data.AUTOTUNE)

    def length(x, y, w):
        return tf.reduce_sum(tf.cast(x[PADDING_MASK], tf.int32))

    def cut(n, x, y, w):
        return {name: value[:n] for name, value in x.items()}, y[:n], w[:n]

    padding = ({TOKEN_IDS: tf.constant(pad_id, tf.int32), PADDING_MASK: tf.constant(0, tf.int32)}, tf.constant(0, tf.int32),
               tf.constant(0.0, tf.float32))
    lengths = np.sum(features[PADDING_MASK], axis=1)
    batched = bucket_by_length(dataset, lengths, np.shape(targets)[1], batch_size, length, cut, padding)
    return _kept(batched, at_weighted).prefetch(tf.data.AUTOTUNE)


def _kept(batches: Any, at_weighted: bool) -> Any:
    import tensorflow as tf

    return batches.map(at_weighted_targets, num_parallel_calls=tf.data.AUTOTUNE) if at_weighted else batches


def at_weighted_targets(x: dict[str, Any], y: Any, w: Any) -> tuple[dict[str, Any], Any, Any]:
    """A batch cut to the targets that carry a loss (TF ops): each row's weighted positions first,
    in order, `[batch, k]` for the row with the most (the rest padded with weight 0), as
    `x[LOSS_POSITIONS]`, and the targets and weights at them.

    A chat's loss reads the replies only: an AESLC exchange of about 200 tokens has a subject of
    about 15. The model then computes the output layer (SmolLM2: 49,152 words) at those positions
    only, not at every one (`kbuild.pretrained.causal_lm.TargetPositions`); the loss and metrics,
    sums over weighted tokens, are the same."""
    import tensorflow as tf

    weighted = tf.cast(w > 0, tf.int32)
    k = tf.maximum(tf.reduce_max(tf.reduce_sum(weighted, axis=1)), 1)
    positions = tf.argsort(weighted, axis=1, direction="DESCENDING", stable=True)[:, :k]
    return ({**x, LOSS_POSITIONS: positions}, tf.gather(y, positions, batch_dims=1),
            tf.gather(w, positions, batch_dims=1))
