"""Weight quantisation of a built Keras model by name (`--quantize int8 | int4`), through Keras's own
`Model.quantize` modes.

- `int8`: Keras's default: one int8 value per weight with a float scale per output channel, and
  each layer's inputs quantised on the fly (abs-max per token), so the matmul runs in int8. Measured
  on SmolLM2's decode step (2 shared cores): 251 ms against 771 ms for weight-only int8, whose kernel
  turns every weight back to float32 at each step (TensorFlow has no fused weight-only kernel);
  float32 took 139 ms. It is also what classifier exports were measured with (RESULTS.md).
- `int4`: weight-only, int4 values packed two to a byte, a scale and zero point per block of 128
  inputs (Keras's sub-channel default; a layer narrower than a block gets one block): smaller, and
  slower than float32 on a CPU for the same reason.

Dense, EinsumDense, Embedding and keras_hub's tied ReversibleEmbedding take both modes; every other
layer (norms, LSTM and GRU cells) stays float, and `QuantizedLayers` lists which did what.
Quantising rewrites a model in place and cannot be undone: quantise a fresh load, never a model
someone else holds.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kbuild.errors import KbuildError
from kbuild.registry import Registry, did_you_mean

NONE = "none"
WEIGHT_QUANTIZATIONS: Registry[Callable[[], Any]] = Registry("weight quantisation")
"""Mode name -> a fresh `keras.quantizers.QuantizationConfig` for `Model.quantize`."""


@WEIGHT_QUANTIZATIONS.register("int8")
def _int8() -> Any:
    from keras.quantizers import Int8QuantizationConfig

    return Int8QuantizationConfig()


@WEIGHT_QUANTIZATIONS.register("int4")
def _int4() -> Any:
    from keras.quantizers import Int4QuantizationConfig

    return Int4QuantizationConfig(activation_quantizer=None, block_size=128)


class QuantizationError(KbuildError):
    """A mode that does not exist, or one that found nothing to quantise in a model (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class QuantizedLayers:
    """What `quantize_weights` did: the quantised layers' paths and those with weights it left float."""

    mode: str
    quantized: tuple[str, ...]
    left_float: tuple[str, ...]

    def as_dict(self) -> dict[str, list[str]]:
        """As metadata.json records it: {mode: paths, "float": paths}."""
        return {self.mode: list(self.quantized), "float": list(self.left_float)}


def check_mode(mode: str) -> str:
    """`mode` if it is `none` or a registered mode; else a QuantizationError naming the modes."""
    if mode != NONE and mode not in WEIGHT_QUANTIZATIONS:
        raise QuantizationError(f"unknown quantisation {mode!r}{did_you_mean(mode, WEIGHT_QUANTIZATIONS.names())}; "
                                f"expected one of: {', '.join((NONE, *WEIGHT_QUANTIZATIONS.names()))}")
    return mode


def quantize_weights(model: Any, mode: str) -> QuantizedLayers:
    """Quantise the weights of every layer of `model` that Keras's `mode` applies to, in place.

    Raises:
        QuantizationError: an unknown mode, or a model where no layer takes it.
    """
    check_mode(mode)
    if mode == NONE:
        return QuantizedLayers(mode, (), ())
    with warnings.catch_warnings():  # one warning per layer without quantised weights (Dropout, LSTMCell, ...)
        warnings.filterwarnings("ignore", message=r".*does not have a `quantize` method")
        # Only built layers: a keras_hub task keeps its (unbuilt) preprocessor's tokenizer among its layers.
        model.quantize(config=WEIGHT_QUANTIZATIONS.get(mode)(), filters=lambda layer: layer.built)
    quantized, left_float = [], []
    for layer in model._flatten_layers(include_self=False):
        if getattr(layer, "quantization_mode", None) == mode:
            quantized.append(layer.path)
        elif layer._trainable_variables and not list(layer._flatten_layers(include_self=False)):
            left_float.append(layer.path)
    if not quantized:
        raise QuantizationError(f"{mode} quantisation found no Dense, EinsumDense or Embedding layer in the model; "
                                f"its weighted layers ({', '.join(left_float[:5]) or 'none'}) have no {mode} kernels")
    return QuantizedLayers(mode, tuple(quantized), tuple(left_float))
