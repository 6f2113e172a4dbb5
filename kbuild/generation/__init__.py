"""Text generation from a trained language model: samplers, key/value caching, `kbuild generate`.

    generator = kbuild.generation.load_generator("runs/tinyshakespeare-gpt/<stamp>")
    generator.generate("ROMEO:", GenerationOptions(max_new_tokens=200, sampler="top_p", seed=1))
"""

from __future__ import annotations

from kbuild.lazy import lazy_getattr

_LAZY = {
    "GenerationOptions": "kbuild.generation.options:GenerationOptions",
    "SAMPLERS": "kbuild.generation.options:SAMPLERS",
    "Generator": "kbuild.generation.generator:Generator",
    "load_generator": "kbuild.generation.generator:load_generator",
    "generate": "kbuild.generation.generator:generate",
    "LanguageModelStepper": "kbuild.decoding.stepper:LanguageModelStepper",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
