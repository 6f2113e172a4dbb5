"""The text VAE of task `vae`.

`{source_ids [batch, S], target_ids [batch, T]} -> logits [batch, T, vocabulary]`, built from two
named sub-models and the posterior layer between them, so generation can run each on its own:

- `encoder`: source ids -> the embedding and `model.blocks` -> pooled -> `[mean, log_var]`;
- `posterior`: `[mean, log_var]` -> z, adding the annealed, free-bits KL as a loss;
- `decoder`: `(target ids, z)` -> next-token logits; a GRU/LSTM whose state starts from z and
  which reads z again at every step (`model.latent.decoder`).

The targets are the source sentence itself: `[CLS] w1 .. wn` in, `w1 .. wn [CLS]` out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbuild.names import DECODER, ENCODER, LATENT, POSTERIOR, SOURCE_IDS, TARGET_IDS

if TYPE_CHECKING:
    import keras

    from kbuild.spec import Spec



def build_vae_model(spec: Spec, vocab_size: int) -> keras.Model:
    """The model for a `vae` spec (`model.latent` set; see `VaeTask.spec_issues`)."""
    import keras
    from keras import ops

    from kbuild.blocks.pooling import POOLINGS
    from kbuild.layers import DropMask, TokenAndPositionEmbedding
    from kbuild.layers.vae import ConcatToSteps, GaussianPosterior, WordDropout
    from kbuild.model import assemble, build_backbone

    embedding, latent, max_length = spec.model.embedding, spec.model.latent, spec.preprocess.max_length
    backbone = build_backbone(spec, vocab_size, input_name=SOURCE_IDS)
    source = backbone.inputs
    summary = POOLINGS.get(spec.model.pooling).build(backbone.features)
    # float32: the KL and the noise are computed in full precision whatever the policy.
    mean = keras.layers.Dense(latent.dim, dtype="float32", name="latent_mean")(summary)
    log_var = keras.layers.Dense(latent.dim, dtype="float32", name="latent_log_var")(summary)
    encoder = keras.Model(source, [mean, log_var], name=ENCODER)

    target = keras.Input(shape=(None,), dtype="int32", name=TARGET_IDS)
    z = keras.Input(shape=(latent.dim,), name=LATENT)
    decoder_spec = latent.decoder
    ids = WordDropout(latent.word_dropout, seed=spec.seed + 7, name="word_dropout")(target) if latent.word_dropout else target
    y = TokenAndPositionEmbedding(vocab_size, embedding.dim, max_length, "none", name="decoder_embedding")(ids)
    y = ConcatToSteps(name="decoder_inputs")([y, z])
    if decoder_spec.dropout:
        y = keras.layers.Dropout(decoder_spec.dropout, name="decoder_input_dropout")(y)
    state = [keras.layers.Dense(decoder_spec.units, activation="tanh", name="decoder_init_h")(z)]
    if decoder_spec.type == "lstm":
        state.append(keras.layers.Dense(decoder_spec.units, activation="tanh", name="decoder_init_c")(z))
    rnn = keras.layers.LSTM if decoder_spec.type == "lstm" else keras.layers.GRU
    y = rnn(decoder_spec.units, return_sequences=True, name="decoder_rnn")(
        y, initial_state=state, mask=ops.not_equal(target, 0))
    logits = keras.layers.Dense(vocab_size, dtype="float32", name="logits")(DropMask(name="decoder_features")(y))
    decoder = keras.Model([target, z], logits, name=DECODER)

    source_in = keras.Input(shape=(None,), dtype="int32", name=SOURCE_IDS)
    target_in = keras.Input(shape=(None,), dtype="int32", name=TARGET_IDS)
    posterior = GaussianPosterior(latent.kl_anneal_steps, latent.free_bits, seed=spec.seed + 11, name=POSTERIOR)
    outputs = decoder([target_in, posterior(encoder(source_in))])
    return assemble(spec, {SOURCE_IDS: source_in, TARGET_IDS: target_in}, outputs)
