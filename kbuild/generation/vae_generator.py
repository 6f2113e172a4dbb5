"""`kbuild generate` for a vae run: sentences from codes drawn from the prior (`sample`), and the
path between two sentences' posterior means (`interpolate`).

Decoding compiles one tf.function per request; with `greedy` (the default) the same code always
gives the same sentence, so an interpolation starts and ends with the two reconstructions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kbuild.generation.options import GenerationError, GenerationOptions

MAX_SAMPLES = 10_000
MAX_STEPS = 1_000


@dataclass
class VaeGeneration:
    """Generated sentences; `notes` says what the model made of the request (unknown words)."""

    texts: list[str]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"texts": self.texts, "notes": self.notes}


class VaeGenerator:
    """Args:
        model: the trained vae model.
        spec: its spec.
        tokenizer: the run's fitted tokenizer.
    """

    def __init__(self, model: Any, spec: Any, tokenizer: Any):
        from kbuild.decoding.vae import TextVae

        if spec.task != "vae":
            raise GenerationError(f"sampling and interpolation need a vae run; this run's task is {spec.task}")
        self.spec, self.tokenizer = spec, tokenizer
        self.codec = TextVae(model, tokenizer, spec.preprocess.max_length)
        self.dim = spec.model.latent.dim
        self._compiled: dict[GenerationOptions, Any] = {}

    def sample(self, count: int, options: GenerationOptions) -> VaeGeneration:
        """`count` sentences decoded from z ~ N(0, I) (drawn with `options.seed`)."""
        if not 1 <= count <= MAX_SAMPLES:
            raise GenerationError(f"Expected --samples between 1 and {MAX_SAMPLES:,}; received {count}")
        z = np.random.default_rng(options.seed).standard_normal((count, self.dim)).astype(np.float32)
        return VaeGeneration(self.decode(z, options))

    def interpolate(self, first: str, last: str, steps: int, options: GenerationOptions) -> VaeGeneration:
        """`steps + 2` sentences decoded from evenly spaced points between the posterior means
        of `first` and `last` (both ends included)."""
        if not 0 <= steps <= MAX_STEPS:
            raise GenerationError(f"Expected --steps between 0 and {MAX_STEPS:,}; received {steps}")
        notes = [note for text in (first, last) for note in self._check(text)]
        ends = np.asarray(self.codec.encode(_strings([first, last])))
        weights = np.linspace(0.0, 1.0, steps + 2, dtype=np.float32)[:, None]
        z = (1.0 - weights) * ends[0] + weights * ends[1]
        return VaeGeneration(self.decode(z.astype(np.float32), options), notes)

    def reconstruct(self, texts: list[str], options: GenerationOptions | None = None) -> list[str]:
        """Each text decoded from its posterior mean."""
        for text in texts:
            self._check(text)
        return self.decode(np.asarray(self.codec.encode(_strings(texts))), options or GenerationOptions())

    def decode(self, z: np.ndarray, options: GenerationOptions) -> list[str]:
        """Latent codes [count, dim] -> sentences, with the sampler `options` asks for."""
        decode = self._decoder(options)
        return [text.decode("utf-8") for text in decode(np.asarray(z, np.float32)).numpy()]

    def _decoder(self, options: GenerationOptions) -> Any:
        """One compiled decoding graph per set of options; a seeded sampler's state is rewound
        before every request, so the same seed gives the same sentences every call."""
        import tensorflow as tf

        if options not in self._compiled:
            sampler = options.build_sampler()
            function = tf.function(lambda codes: self.codec.decode(codes, sampler),
                                   input_signature=[tf.TensorSpec([None, self.dim], tf.float32)])
            seeds = getattr(sampler, "seed_generator", None)
            self._compiled[options] = (function, seeds, None if seeds is None else seeds.state.numpy())
        function, seeds, first_state = self._compiled[options]
        if seeds is not None:
            seeds.state.assign(first_state)
        return function

    def _check(self, text: str) -> list[str]:
        import tensorflow as tf

        from kbuild.data.tokenizers import UNK_ID

        if not text.strip():
            raise GenerationError("an empty sentence cannot be encoded; give two non-empty sentences to --interpolate")
        ids = self.tokenizer.token_ids(tf.constant([text]))[0].numpy().tolist()
        if not ids:
            raise GenerationError(f"the sentence {text!r} has no tokens after tokenisation")
        if UNK_ID in ids:
            unknown = sorted(set(self.tokenizer.unknown_tokens(text)))
            return [f"{text!r} has word(s) the model never saw in training, read as [UNK]: "
                    f"{', '.join(repr(t) for t in unknown[:20])}"]
        return []


def _strings(texts: list[str]) -> Any:
    import tensorflow as tf

    return tf.constant(texts, tf.string)


def load_vae_generator(run: str | os.PathLike) -> VaeGenerator:
    """A `VaeGenerator` over the best model of a trained vae run folder."""
    from kbuild.runs import load_run_for

    loaded = load_run_for(run, "vae", "sampling and interpolation", GenerationError)
    return VaeGenerator(loaded.model, loaded.spec, loaded.assets.tokenizer)
