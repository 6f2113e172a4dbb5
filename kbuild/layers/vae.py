"""The VAE's own layers and loss. Backend-neutral (keras.layers, keras.ops); each is registered,
so a trained `model.keras` reloads with `safe_mode=True` once this module is imported.
"""

from __future__ import annotations

import keras
from keras import ops

from kbuild.layers.base import PACKAGE
from kbuild.names import PAD_ID, UNK_ID


def gaussian_kl(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) per example and dimension, in nats: [batch, dim]."""
    return 0.5 * (ops.square(mean) + ops.exp(log_var) - 1.0 - log_var)


@keras.saving.register_keras_serializable(package=PACKAGE)
class GaussianPosterior(keras.layers.Layer):
    """`[mean, log_var]` -> the latent code z, adding the annealed, free-bits KL term as a loss.

    Training draws z = mean + exp(log_var / 2) * eps (the reparameterisation trick) and adds the
    weighted, floored KL below; inference returns the mean, so evaluation, reconstructions and
    exports are deterministic, and adds the plain KL (weight 1, no free bits): the evaluated loss
    is then the negative ELBO (see kbuild.tasks.vae_evaluation).

    The KL weight is min(1, steps / kl_anneal_steps), where `steps` counts training calls in a
    non-trainable variable of this layer: it is saved in `model.keras` and in checkpoints, so a
    reloaded or resumed model continues the schedule where it stopped, with no callback and no
    access to the optimizer. Free bits (Kingma et al. 2016): each dimension's KL, averaged over
    the batch, costs at least `free_bits` nats, so dimensions below the floor get no gradient
    pushing them onto the prior.

    Args:
        kl_anneal_steps: int. Training steps for the weight to grow from 0 to 1 (0: always 1).
        free_bits: float. Nats per dimension that go unpenalised.
        seed: int or None. Seeds the noise.
    """

    def __init__(self, kl_anneal_steps=0, free_bits=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.kl_anneal_steps, self.free_bits, self.seed = kl_anneal_steps, free_bits, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        # Float: exact up to 2**24 steps, and no casts where the weight is computed.
        self.steps = self.add_weight(shape=(), initializer="zeros", dtype="float32", trainable=False,
                                     name="steps", aggregation="only_first_replica")
        self.built = True

    def kl_weight(self):
        if not self.kl_anneal_steps:
            return ops.convert_to_tensor(1.0, "float32")
        return ops.minimum(1.0, ops.convert_to_tensor(self.steps) / float(self.kl_anneal_steps))

    def kl_penalty(self, mean, log_var):
        """The KL term before weighting: the sum over dimensions of max(batch-mean KL, free_bits)."""
        per_dimension = ops.mean(gaussian_kl(mean, log_var), axis=0)
        if self.free_bits:
            per_dimension = ops.maximum(per_dimension, self.free_bits)
        return ops.sum(per_dimension)

    def call(self, inputs, training=None):
        mean, log_var = inputs
        mean, log_var = ops.cast(mean, "float32"), ops.cast(log_var, "float32")
        if not training:
            # Evaluation adds the plain KL, so `val_loss` is the negative ELBO: a fixed target
            # for choosing the best model, where the annealed training loss keeps moving.
            self.add_loss(ops.mean(ops.sum(gaussian_kl(mean, log_var), axis=-1)))
            return mean
        self.add_loss(self.kl_weight() * self.kl_penalty(mean, log_var))
        self.steps.assign_add(1.0)
        noise = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * noise

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "kl_anneal_steps": self.kl_anneal_steps, "free_bits": self.free_bits,
                "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class WordDropout(keras.layers.Layer):
    """Training only: each token id (not padding) becomes [UNK] with probability `rate`, so the
    decoder cannot predict a word from the one before it alone (Bowman et al. 2016).

    Args:
        rate: float. Share of tokens replaced.
        keep_first: bool, default True. Never replace position 0 (the start token).
        seed: int or None.
    """

    def __init__(self, rate, keep_first=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.keep_first, self.seed = rate, keep_first, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, ids, training=None):
        if not training or not self.rate:
            return ids
        drop = keras.random.uniform(ops.shape(ids), seed=self.seed_generator) < self.rate
        drop = drop & ops.not_equal(ids, PAD_ID)
        if self.keep_first:
            drop = ops.concatenate([ops.zeros_like(drop[:, :1]), drop[:, 1:]], axis=1)
        return ops.where(drop, ops.full_like(ids, UNK_ID), ids)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "keep_first": self.keep_first, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConcatToSteps(keras.layers.Layer):
    """`[x [batch, time, d], z [batch, k]]` -> [batch, time, d + k]: z appended to every step;
    x's padding mask is kept."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        x, z = inputs
        steps = ops.shape(x)[1]
        z = ops.repeat(ops.expand_dims(ops.cast(z, x.dtype), 1), steps, axis=1)
        return ops.concatenate([x, z], axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[0]

    def compute_output_shape(self, input_shape):
        x, z = input_shape
        return (*x[:-1], x[-1] + z[-1])


@keras.saving.register_keras_serializable(package=PACKAGE)
class SentenceCrossEntropy(keras.losses.Loss):
    """Reconstruction term of the ELBO: token cross-entropy summed over each sentence (padding,
    id 0, excluded), so it is in nats per sentence like the KL term it is added to. Keras's
    SparseCategoricalCrossentropy would average over tokens and shrink it against the KL."""

    def __init__(self, name="sentence_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return sentence_cross_entropy(y_true, y_pred)


def sentence_cross_entropy(targets, logits):
    """Per-sentence reconstruction cost in nats: [batch]."""
    targets = ops.cast(targets, "int32")
    per_token = keras.losses.sparse_categorical_crossentropy(targets, ops.cast(logits, "float32"), from_logits=True)
    real = ops.cast(ops.not_equal(targets, PAD_ID), per_token.dtype)
    return ops.sum(per_token * real, axis=-1)
