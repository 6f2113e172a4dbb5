"""TFLite quantisation modes, by name (`kbuild export --format tflite --quantize NAME`).

Each mode configures a `tf.lite.TFLiteConverter`; `representative` yields calibration batches
(`{"ids": int32 [1, max_length]}`) from the train split and is used by `int8` only. TF-free at
import, so the CLI can list the names without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from kbuild.registry import Registry

Configure = Callable[[Any, Callable[[], Iterator[dict]]], None]
QUANTIZATIONS: Registry[Configure] = Registry("quantization")


@QUANTIZATIONS.register("none")
def _float32(converter: Any, representative: Callable[[], Iterator[dict]]) -> None:
    """Float32 weights and activations: the reference."""


@QUANTIZATIONS.register("dynamic")
def _dynamic_range(converter: Any, representative: Callable[[], Iterator[dict]]) -> None:
    """int8 weights, float activations (quantised on the fly); no calibration data."""
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]


@QUANTIZATIONS.register("float16")
def _float16(converter: Any, representative: Callable[[], Iterator[dict]]) -> None:
    """float16 weights, float32 compute: half the size, accuracy practically unchanged."""
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


@QUANTIZATIONS.register("int8")
def _int8(converter: Any, representative: Callable[[], Iterator[dict]]) -> None:
    """int8 weights and activations, ranges calibrated on train-split examples. Ops without an int8
    kernel stay float (the model's `ids` input is int32 already, and its outputs stay float32 and
    string, so callers see the same signature as the float model)."""
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative


# XNNPACK (TFLite's default CPU delegate) fails to prepare the int8 graph of an unrolled RNN
# ("failed to create XNNPACK runtime"); the built-in int8 kernels run it correctly.
DEFAULT_DELEGATES = {"none": True, "dynamic": True, "float16": True, "int8": False}
