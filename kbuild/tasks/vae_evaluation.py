"""The ELBO of a split, its two terms, and how many latent dimensions the model uses.

Per sentence, in nats: reconstruction = -log p(x | z) with z the posterior mean (deterministic,
like every other inference path of the model), kl = KL(q(z | x) || N(0, I)) exactly, unweighted
and without free bits; elbo = -(reconstruction + kl), a lower bound on log p(x) up to the use of
the mean for the expectation. `active_units` counts dimensions whose posterior mean varies across
the split (variance > 0.01, Burda et al. 2016): 0 means the posterior collapsed onto the prior.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ACTIVE_VARIANCE = 0.01


def elbo_metrics(model: Any, dataset: Any) -> dict:
    """`elbo`, `reconstruction`, `kl` (nats per sentence), `perplexity` (per target token, the
    end `[CLS]` included), `active_units`, `token_accuracy` (teacher-forced, from the mean) and
    `loss` (= -elbo, what `model.evaluate` reports) of `model` over the batches of `dataset`, in one
    pass: the train split is large, and a second pass for the compiled metrics would double it."""
    import tensorflow as tf
    from keras import ops

    from kbuild.layers.vae import gaussian_kl, sentence_cross_entropy
    from kbuild.names import DECODER, ENCODER, SOURCE_IDS, TARGET_IDS

    encoder, decoder = model.get_layer(ENCODER), model.get_layer(DECODER)

    ids = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[{SOURCE_IDS: ids, TARGET_IDS: ids}, ids])
    def terms(features, targets):
        mean, log_var = encoder(features[SOURCE_IDS], training=False)
        logits = decoder([features[TARGET_IDS], mean], training=False)
        real = ops.not_equal(targets, 0)
        hits = real & ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), targets)
        counts = ops.stack([ops.sum(ops.cast(real, "float32")), ops.sum(ops.cast(hits, "float32"))])
        return sentence_cross_entropy(targets, logits), ops.sum(gaussian_kl(mean, log_var), axis=-1), counts, mean

    reconstruction = kl = tokens = correct = 0.0
    means = []
    for features, targets in dataset:
        r, k, t, m = terms(features, targets)
        reconstruction += float(np.sum(r))
        kl += float(np.sum(k))
        tokens += float(t[0])
        correct += float(t[1])
        means.append(np.asarray(m))
    count = sum(len(m) for m in means)
    if not count:
        return {}
    variance = np.var(np.concatenate(means), axis=0)
    return {
        "loss": (reconstruction + kl) / count,
        "token_accuracy": correct / max(tokens, 1.0),
        "elbo": -(reconstruction + kl) / count,
        "reconstruction": reconstruction / count,
        "kl": kl / count,
        "perplexity": math.exp(min(reconstruction / max(tokens, 1.0), 700.0)),
        "active_units": int(np.sum(variance > ACTIVE_VARIANCE)),
    }
