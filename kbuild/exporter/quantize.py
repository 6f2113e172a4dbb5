"""TFLite quantisation modes, by name (`kbuild export --format tflite --quantize NAME`).

Each mode configures a `tf.lite.TFLiteConverter`; `representative` yields calibration batches
(`{"ids": int32 [1, max_length]}`) from the train split and is used by `int8` only. A mode may
return a function applied to what `converter.convert()` gives (int8 converts in two steps: the
converter calibrates, then `quantize_calibrated` quantises with some ops kept float). TF-free at
import, so the CLI can list the names without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from kbuild.registry import Registry

Finish = Callable[[bytes], bytes]
Configure = Callable[[Any, Callable[[], Iterator[dict]]], "Finish | None"]
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
def _int8(converter: Any, representative: Callable[[], Iterator[dict]]) -> Finish:
    """int8 weights and activations, ranges calibrated on train-split examples. Ops without an int8
    kernel, and those `float_ops` names, stay float (the model's `ids` input is int32 already, and
    its outputs stay float32 and string, so callers see the same signature as the float model)."""
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter._experimental_calibrate_only = True  # calibrate here, quantise in quantize_calibrated
    return quantize_calibrated


INT8_FLOAT_OPS = ("DIV", "SUM", "MAXIMUM")
"""Ops every int8 graph keeps float: masked mean pooling, `sum(x * mask) / max(sum(mask), 1)`.
TF 2.21's int8 DIV kernel refuses a denominator whose stored int8 byte is 0 (`div.cc: data[i] != 0`),
but a stored 0 is the value `-zero_point * scale`: a token count calibrated on [0, 50] has zero
point -128, so every row of exactly 25 tokens failed (and counts above the calibrated 50 were
clipped to 50). Float, the count and the sum are exact; they are one reduction per example."""

ATTENTION_INT8_OPS = ("FULLY_CONNECTED", "GATHER")
"""The only ops quantised in a graph with attention (BATCH_MATMUL): the dense layers and embedding
lookups, which hold nearly all the weights. The rest of a Transformer stays float because int8
activations wreck it: the attention mask fills scores with -1e9 (SELECT_V2), giving the softmax
input a scale of 4e6 under which every real score rounds to the same value (uniform attention),
and the residual stream's outlier features leave the other activations a few int8 steps. The
fine-tuned MiniLM on SST-2: 0.60 dev accuracy with everything int8 that has a kernel, 0.75 with
the attention matmuls int8 too, 0.88 with these two only (float: 0.88), at the same 23 MB."""


def int8_float_ops(op_names: set[str]) -> list[str]:
    """Of the ops in a calibrated graph, those to keep float in its int8 model."""
    if "BATCH_MATMUL" in op_names:
        return sorted(op_names - set(ATTENTION_INT8_OPS))
    return sorted(op_names & set(INT8_FLOAT_OPS))


def quantize_calibrated(calibrated: bytes) -> bytes:
    """The int8 model of a calibrated flatbuffer, with `int8_float_ops` kept float (float32 in and out)."""
    from tensorflow.lite.python import convert
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(calibrated))
    names = {number: name for name, number in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    present = {names[max(code.builtinCode, code.deprecatedBuiltinCode)] for code in model.operatorCodes}
    return convert.mlir_quantize(calibrated, denylisted_ops=int8_float_ops(present))


# XNNPACK (TFLite's default CPU delegate) fails to prepare the int8 graph of an unrolled RNN
# ("failed to create XNNPACK runtime"); the built-in int8 kernels run it correctly.
DEFAULT_DELEGATES = {"none": True, "dynamic": True, "float16": True, "int8": False}
