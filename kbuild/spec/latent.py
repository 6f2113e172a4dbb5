"""`model.latent`: the latent code of a text VAE and the recurrent decoder that reads it.

Validates without Keras (`kbuild validate` stays TensorFlow-free); `kbuild.tasks.vae_model` builds it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kbuild.spec.base import StrictModel


class LatentDecoderSpec(StrictModel):
    """Example: `{type: gru, units: 256, dropout: 0.1}`. The code z starts the recurrent state
    and is concatenated to every input step, so the decoder cannot drift away from it."""

    type: Literal["gru", "lstm"] = "gru"
    units: int = Field(default=256, ge=1)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout on the decoder's step inputs (token embedding and z)."""


class LatentSpec(StrictModel):
    """Example: `{dim: 32, kl_anneal_steps: 2000, free_bits: 0.25, word_dropout: 0.3,
    decoder: {type: gru, units: 256}}`."""

    dim: int = Field(default=32, ge=1, le=4096)
    """Size of the latent code z (the posterior's mean and log-variance)."""
    kl_anneal_steps: int = Field(default=2000, ge=0)
    """The KL term's weight grows linearly from 0 at the first step to 1 after this many training
    steps (Bowman et al. 2016); 0 weighs it fully from the start."""
    free_bits: float = Field(default=0.0, ge=0.0)
    """Nats per latent dimension (averaged over the batch) the KL term does not penalise
    (Kingma et al. 2016): a floor that keeps the posterior from collapsing onto the prior."""
    word_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Training only: this fraction of the decoder's input words become [UNK], so the decoder
    must lean on z rather than on the previous word (Bowman et al. 2016)."""
    decoder: LatentDecoderSpec = Field(default_factory=LatentDecoderSpec)
