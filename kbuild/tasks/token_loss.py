"""The loss and perplexity of the tasks that predict tokens (language_model, masked_lm, seq2seq):
cross-entropy in nats per token over the positions that have a target, and its exponential.

A target of PAD_ID has no token to predict: padding, the tail of a language model's last window,
or a position a masked LM did not choose. Both ignore it, so the logged `perplexity` is exactly
`exp(loss)` of the same positions (without regularisation or distillation terms)."""

from __future__ import annotations

from typing import Any


def token_loss() -> Any:
    """Sparse cross-entropy from float logits, PAD_ID targets ignored."""
    import keras

    from kbuild.data.tokenizers import PAD_ID

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID)


def perplexity() -> Any:
    """keras_hub's perplexity metric (`perplexity` in the logs), PAD_ID targets masked."""
    import keras_hub

    from kbuild.data.tokenizers import PAD_ID

    return keras_hub.metrics.Perplexity(from_logits=True, mask_token_id=PAD_ID, name="perplexity")
