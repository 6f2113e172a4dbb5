"""Text generation from a trained language model: samplers, key/value caching, `kbuild generate`.

    generator = kbuild.generation.load_generator("runs/tinyshakespeare-gpt/<stamp>")
    generator.generate("ROMEO:", GenerationOptions(max_new_tokens=200, sampler="top_p", seed=1))
"""

from __future__ import annotations

import importlib

_LAZY = {
    "GenerationOptions": "kbuild.generation.options:GenerationOptions",
    "SAMPLERS": "kbuild.generation.options:SAMPLERS",
    "Generator": "kbuild.generation.generator:Generator",
    "load_generator": "kbuild.generation.generator:load_generator",
    "generate": "kbuild.generation.generator:generate",
    "LanguageModelStepper": "kbuild.generation.stepper:LanguageModelStepper",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'kbuild.generation' has no attribute {name!r}")
    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value
