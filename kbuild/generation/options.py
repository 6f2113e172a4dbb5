"""What a user may ask of generation, checked before any model is loaded, and the sampler registry
(each name builds a keras_hub sampler)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kbuild.errors import KbuildError
from kbuild.registry import Registry, did_you_mean

MAX_NEW_TOKENS = 100_000
"""More than this is a typo, not a request: refuse it rather than run for hours."""


class GenerationError(KbuildError):
    """A generation request that cannot be served as given (exit 2, like a usage error)."""

    exit_code = 2


@dataclass(frozen=True)
class GenerationOptions:
    """Args:
        max_new_tokens: tokens to add after the prompt (1..100,000).
        sampler: `greedy`, `top_k`, `top_p` or `beam` (see `SAMPLERS`).
        temperature: logits are divided by it before sampling (> 0; < 1 sharpens).
        top_k: candidates kept by `top_k` (and a cap for `top_p` when set there).
        top_p: probability mass kept by `top_p` (0 < p <= 1).
        num_beams: beams of `beam`.
        seed: seed of the sampler's random draws; same seed and settings, same text (XLA draws
            differently, so `jit_compile` is one of the settings).
        stop: texts that end generation; each must be a single token of the vocabulary.
        use_cache: key/value cache (Transformer) or carried state (RNN); False re-runs the whole
            window for every new token (only for comparisons: same output, much slower).
        jit_compile: compile the decoding loop with XLA under TensorFlow (about 10x faster per
            token at batch 1 on a CPU, but seconds to compile per buffer length).
    """

    max_new_tokens: int = 100
    sampler: str = "greedy"
    temperature: float = 1.0
    top_k: int = 10
    top_p: float = 0.9
    num_beams: int = 4
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)
    use_cache: bool = True
    jit_compile: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise GenerationError(
                f"Expected max_new_tokens between 1 and {MAX_NEW_TOKENS:,}; received {self.max_new_tokens}"
            )
        if self.sampler not in SAMPLERS:
            raise GenerationError(f"unknown sampler {self.sampler!r}{did_you_mean(self.sampler, SAMPLERS.names())}; "
                                  f"expected one of: {', '.join(SAMPLERS.names())}")
        if not self.temperature > 0:
            raise GenerationError(f"Expected temperature > 0; received {self.temperature}")
        if self.top_k < 1:
            raise GenerationError(f"Expected top_k >= 1; received {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise GenerationError(f"Expected 0 < top_p <= 1; received {self.top_p}")
        if self.num_beams < 1:
            raise GenerationError(f"Expected num_beams >= 1; received {self.num_beams}")

    def build_sampler(self) -> Any:
        return SAMPLERS.get(self.sampler)(self)


SAMPLERS: Registry[Callable[[GenerationOptions], Any]] = Registry("sampler")


@SAMPLERS.register("greedy")
def _greedy(options: GenerationOptions) -> Any:
    import keras_hub

    return keras_hub.samplers.GreedySampler()


@SAMPLERS.register("top_k")
def _top_k(options: GenerationOptions) -> Any:
    import keras_hub

    return keras_hub.samplers.TopKSampler(k=options.top_k, seed=options.seed, temperature=options.temperature)


@SAMPLERS.register("top_p")
def _top_p(options: GenerationOptions) -> Any:
    import keras_hub

    return keras_hub.samplers.TopPSampler(p=options.top_p, seed=options.seed, temperature=options.temperature)


@SAMPLERS.register("beam")
def _beam(options: GenerationOptions) -> Any:
    from kbuild.decoding.beam import BeamSearch

    return BeamSearch(num_beams=options.num_beams, temperature=options.temperature)
