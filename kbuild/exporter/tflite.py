"""TFLite export: the model (token ids -> the task's outputs) as `model.tflite`, quantised on
request, plus the tokenizer as a shipped pre-processing asset.

Why tokenisation is not inside the .tflite: the tokenizers' graph ops (string lower/regex/split,
hash-table lookup, tf-text's wordpiece) are not TFLite builtins. They convert as select TF ops
("Flex"), but TensorFlow 2.21's Python `tf.lite.Interpreter` ships without the Flex delegate
("Select TensorFlow op(s) ... not supported by this interpreter"), and on a device Flex adds
megabytes. So a TFLite version folder holds:

    model.tflite     signature serving_default: ids int32 [batch, max_length] -> task outputs
    tokenizer/       a SavedModel, signature serving_default: text tf.string [batch] -> ids;
                     the exact graph the SavedModel export runs (loads with TF + tensorflow_text)
    vocab.txt        the vocabulary (id = line number - 1), for tokenizers re-implemented on device
    metadata.json    format, quantisation, signatures, labels, metrics, spec (with the tokenizer
                     settings: type, lowercase, max_length, start token), and `verification`: how
                     far the converted model's outputs are from the Keras model's on a check batch

Before anything is written, the converted model runs in the interpreter on a check batch (a few
calibration texts, and rows of every length from 1 to max_length): a conversion whose kernels fail
at some input, or give non-finite outputs, is an `ExportError` at export instead of at predict.

`kbuild predict` on such a folder runs `tokenizer/` then the interpreter.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from kbuild.errors import ExportError
from kbuild.exporter.formats import ExportFormat, LoadedExport, register_format
from kbuild.exporter.layout import TFLITE_MODEL, publish_version
from kbuild.exporter.quantize import DEFAULT_DELEGATES, QUANTIZATIONS
from kbuild.exporter.savedmodel import metadata, write_metadata
from kbuild.exporter.serving import INPUT_NAME, Servable

IDS_NAME = "ids"
TOKENIZER_DIR = "tokenizer"
CALIBRATION_EXAMPLES = 200
CHECK_TEXTS = 8
"""Calibration texts in the check batch (beside one row of each length)."""


def write_tflite(servable: Servable, model_root: Path, quantize: str = "none") -> Path:
    """Convert `servable` (quantised as `quantize`) as the next version under `model_root`."""
    if servable.spec.task in TFLITE_GENERATORS:
        from kbuild.exporter.tflite_lm import write_tflite_lm

        return write_tflite_lm(servable, model_root, quantize)
    configure = QUANTIZATIONS.get(quantize)
    flatbuffer = convert(servable, lambda converter: configure(converter, _representative(servable)))
    verification = verify(servable, flatbuffer, quantize)

    def fill(staging: Path) -> None:
        (staging / TFLITE_MODEL).write_bytes(flatbuffer)
        save_tokenizer(servable, staging / TOKENIZER_DIR)
        shutil.copy(servable.folder.assets / "vocab.txt", staging / "vocab.txt")
        write_metadata(staging, metadata(
            servable, fmt="tflite", quantize=quantize,
            interpreter={"default_delegates": DEFAULT_DELEGATES[quantize]},
            preprocessing={"savedmodel": TOKENIZER_DIR, "vocabulary": "vocab.txt",
                           "input": f"{INPUT_NAME}: tf.string [batch]", "output": f"{IDS_NAME}: int32 [batch, max_length]",
                           "start_token": servable.tokenizer.start_token},
            tflite_signature={"inputs": {IDS_NAME: "int32 [batch, max_length]"}},
            verification=verification,
        ))

    return publish_version(model_root, fill)


def convert(servable: Servable, configure) -> bytes:
    """The model as a TFLite flatbuffer: ids -> the task's `serving_outputs`. `configure(converter)`
    may return a function of the converter's output that gives the model (see quantize.py)."""
    import tensorflow as tf

    from kbuild.tasks import TASKS

    task = TASKS.get(servable.spec.task)
    model, labels = servable.model, servable.labels
    # An RNN traces to a while loop over TensorLists, which TFLite can lower only with a static
    # batch and which int8 calibration crashes on; unrolled over the fixed max_length, it becomes
    # plain ops every quantisation mode handles. Same weights, same arithmetic, with one catch:
    # Keras 3.15's unrolled path zeroes masked outputs with the un-reversed mask when
    # go_backwards (the backward half of a BiLSTM), so zeroing is turned off; padded positions then
    # repeat the last real output, which every downstream block and pooling masks out anyway.
    for layer in model._flatten_layers():
        if hasattr(layer, "unroll"):
            layer.unroll = True
            layer.zero_output_for_mask = False

    @tf.function(input_signature=[tf.TensorSpec([None, servable.spec.preprocess.max_length], tf.int32, name=IDS_NAME)])
    def infer(ids):
        return task.serving_outputs(model(ids, training=False), labels)

    holder = tf.Module()
    holder.weights = [getattr(v, "value", v) for v in model.variables]  # tf.Variables behind Keras's
    staging = tempfile.mkdtemp(prefix="kbuild-tflite-")
    try:
        tf.saved_model.save(holder, staging, signatures={"serving_default": infer.get_concrete_function()})
        converter = tf.lite.TFLiteConverter.from_saved_model(staging)
        finish = configure(converter)
        flatbuffer = converter.convert()
        return tidy_flatbuffer(finish(flatbuffer) if finish else flatbuffer)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def tidy_flatbuffer(flatbuffer: bytes) -> bytes:
    """The converted model with two fixes applied to its flatbuffer (see each helper)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    requantize_copy_inputs(model)
    strip_tensor_names(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


COPYING_OPS = ("REVERSE_V2",)
"""Ops whose int8 kernel copies bytes, so their input must share their output's scale and zero point."""


def requantize_copy_inputs(model: Any) -> int:
    """Put a QUANTIZE (int8 -> int8 rescale) before each copying op whose input is quantised
    differently from its output; returns how many were inserted.

    TF 2.21's converter gives a REVERSE_V2 output (the backward half of a BiLSTM, flipped back into
    time order) the scale its consumer, a concatenation, needs, and its input another, without the
    rescale between them, while the int8 kernel only moves bytes: every value downstream was read
    on the wrong scale (SST-2 BiLSTM: an average error of 0.25 on a 0.9-wide range, 70 quantisation
    steps, and 1.3 points of accuracy). The inserted op is the rescale the converter left out.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    copying = {getattr(schema.BuiltinOperator, name) for name in COPYING_OPS}
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    inserted = 0
    for subgraph in model.subgraphs:
        for position in reversed(range(len(subgraph.operators))):
            op = subgraph.operators[position]
            if codes[op.opcodeIndex] not in copying:
                continue
            source, target = subgraph.tensors[op.inputs[0]], subgraph.tensors[op.outputs[0]]
            if not (_quantized(source) and _quantized(target)) or _same_quantization(source, target):
                continue
            rescaled = schema.TensorT()
            rescaled.shape, rescaled.shapeSignature, rescaled.type = source.shape, source.shapeSignature, source.type
            rescaled.buffer = 0  # the empty buffer: an activation, not a constant
            rescaled.quantization = schema.QuantizationParametersT()
            rescaled.quantization.scale = list(target.quantization.scale)
            rescaled.quantization.zeroPoint = list(target.quantization.zeroPoint)
            subgraph.tensors.append(rescaled)
            quantize = schema.OperatorT()
            quantize.opcodeIndex = _opcode(model, codes, schema.BuiltinOperator.QUANTIZE)
            quantize.inputs, quantize.outputs = [op.inputs[0]], [len(subgraph.tensors) - 1]
            op.inputs[0] = len(subgraph.tensors) - 1
            subgraph.operators.insert(position, quantize)
            inserted += 1
    return inserted


def _quantized(tensor: Any) -> bool:
    return tensor.quantization is not None and tensor.quantization.scale is not None and len(tensor.quantization.scale) > 0


def _same_quantization(a: Any, b: Any) -> bool:
    return list(a.quantization.scale) == list(b.quantization.scale) and list(a.quantization.zeroPoint) == list(b.quantization.zeroPoint)


def _opcode(model: Any, codes: list[int], builtin: int) -> int:
    """Index of `builtin` among the model's operator codes, added (and to `codes`) when missing."""
    from tensorflow.lite.python import schema_py_generated as schema

    if builtin not in codes:
        code = schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 2
        model.operatorCodes.append(code)
        codes.append(builtin)
    return codes.index(builtin)


def strip_tensor_names(model: Any) -> None:
    """Drop the internal tensor names (callers address tensors through the signature, which keeps
    its own input and output names). An unrolled int8 graph carries ~0.9 MB of them for SST-2."""
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.name = None


def save_tokenizer(servable: Servable, folder: Path) -> None:
    """The pre-processing asset: a SavedModel mapping raw strings to the model's ids."""
    import keras
    import tensorflow as tf

    tokenizer = servable.tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)])
    def tokenize(text):
        return {IDS_NAME: tokenizer.encode(text)}

    archive = keras.export.ExportArchive()
    for trackable in tokenizer.trackables():
        archive.track(trackable)
    archive.add_endpoint("serving_default", tokenize)
    archive.write_out(str(folder), verbose=False)


def _calibration_texts(servable: Servable) -> list[str]:
    """A seeded sample of train-split texts."""
    from kbuild.data.splits import read_splits

    texts = [e.text for e in read_splits(servable.spec.data, servable.spec.seed, ("train",))["train"].examples]
    return random.Random(servable.spec.seed).sample(texts, min(CALIBRATION_EXAMPLES, len(texts)))


def _representative(servable: Servable):
    """Calibration batches: the calibration texts one by one, tokenised as in serving."""
    import tensorflow as tf

    def batches():
        for text in _calibration_texts(servable):
            yield {IDS_NAME: servable.tokenizer.encode(tf.constant([text]))}

    return batches


def check_ids(servable: Servable) -> Any:
    """The check batch, int32 [CHECK_TEXTS + max_length, max_length]: the first calibration texts
    (the shortest and longest among them included), then one row of each length from 1 to
    max_length, cut from the calibration texts' tokens run together. A quantised kernel can fail or
    go wrong at one length only (int8 DIV did at 25 tokens of MiniLM's mean pooling)."""
    import numpy as np
    import tensorflow as tf

    texts = sorted(_calibration_texts(servable), key=len)
    chosen = texts[:1] + texts[-1:] + texts[1:CHECK_TEXTS - 1] if len(texts) > 2 else texts
    ids = servable.tokenizer.encode(tf.constant(chosen)).numpy().astype(np.int32)
    length = ids.shape[1]
    stream = np.concatenate([row[row != 0] for row in ids])
    stream = np.resize(stream, max(length, len(stream)))  # repeats itself when the texts are short
    prefixes = np.zeros((length, length), np.int32)
    for n in range(1, length + 1):
        prefixes[n - 1, :n] = stream[:n]
    return np.concatenate([ids, prefixes])


def verify(servable: Servable, flatbuffer: bytes, quantize: str) -> dict:
    """Run the converted model on the check batch; raise an ExportError where it fails or gives
    non-finite outputs, else return how far its float outputs are from the Keras model's."""
    import re

    import numpy as np
    import tensorflow as tf

    from kbuild.tasks import TASKS

    ids = check_ids(servable)
    try:
        runner = _interpreter(flatbuffer, DEFAULT_DELEGATES[quantize]).get_signature_runner("serving_default")
        outputs = runner(**{IDS_NAME: ids})
    except (RuntimeError, ValueError) as error:
        message = " ".join(str(error).split())
        op = re.search(r"Node number (\d+) \((\w+)\)", message)
        where = f"op {op.group(2)} (node {op.group(1)})" if op else "the interpreter"
        raise ExportError(
            f"the converted --quantize {quantize} TFLite model fails in {where} on a check batch of "
            f"{len(ids)} rows of 1 to {ids.shape[1]} tokens: {message}. Export with --quantize dynamic or "
            f"float16, or as a SavedModel (--format savedmodel --quantize int8)") from None
    reference = TASKS.get(servable.spec.task).serving_outputs(servable.model(ids, training=False), servable.labels)
    difference = 0.0
    for name, value in outputs.items():
        if value.dtype.kind != "f":
            continue
        if not np.isfinite(value).all():
            raise ExportError(f"the converted --quantize {quantize} TFLite model gives non-finite {name} on a check "
                              f"batch of {len(ids)} rows: export with --quantize dynamic or float16, or as a SavedModel")
        difference = max(difference, float(np.max(np.abs(value - np.asarray(tf.cast(reference[name], tf.float32))))))
    return {"rows": len(ids), "max_abs_difference": round(difference, 6)}


def _interpreter(flatbuffer: bytes | None, delegates: bool, model_path: str | None = None) -> Any:
    """A tf.lite.Interpreter, with TFLite's default delegates or its built-in kernels only."""
    import tensorflow as tf

    resolver = tf.lite.experimental.OpResolverType
    with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": it is what TF 2.21 ships
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(
            model_path=model_path, model_content=flatbuffer,
            experimental_op_resolver_type=resolver.AUTO if delegates else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )


def load_tflite(version: Path, metadata: dict) -> Any:
    """strings -> outputs for a TFLite version folder: the tokenizer SavedModel, then the interpreter."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (tf-text ops in the tokenizer graph)

    tokenize = tf.saved_model.load(str(version / TOKENIZER_DIR)).signatures["serving_default"]
    delegates = metadata.get("interpreter", {}).get("default_delegates", True)
    runner = _interpreter(None, delegates, str(version / TFLITE_MODEL)).get_signature_runner("serving_default")

    def run(texts):
        ids = tokenize(**texts)[IDS_NAME].numpy().astype(np.int32)
        return runner(**{IDS_NAME: ids})

    return run


TFLITE_TASKS = ("classification", "regression")
"""The tasks whose outputs are one model call from token ids (no decoding loop or in-graph
post-processing beyond it): what the converter can take."""
TFLITE_GENERATORS = ("chat",)
"""The tasks exported as a causal LM's cached steps, with the decoding loop outside the model
(kbuild.exporter.tflite_lm)."""


def _refuse(spec: Any) -> str | None:
    """A task that decodes in a loop has no single model call to convert; the .tflite takes one
    sequence of ids, so a model that reads several texts (their segment ids too) stays a SavedModel."""
    from kbuild.tasks import TASKS

    if spec.task in TFLITE_GENERATORS:
        return None
    if spec.task not in TFLITE_TASKS:
        return (f"--format tflite covers the tasks whose outputs are one model call ({', '.join(TFLITE_TASKS)}) "
                f"and chat models ({', '.join(TFLITE_GENERATORS)}); a {spec.task} model decodes in a loop: "
                "export it as a SavedModel")
    inputs = TASKS.get(spec.task).input_names(spec)
    if len(inputs) > 1:
        return (f"--format tflite takes one text's token ids; this model reads {', '.join(inputs)} "
                "(packed with segment ids): export it as a SavedModel")
    return None


def _detect(version: Path) -> bool:
    return (version / TFLITE_MODEL).is_file()


def _load(version: Path, metadata: dict) -> LoadedExport:
    from kbuild.exporter.tflite_generator import GENERATOR_KEY, TfliteChat

    if GENERATOR_KEY in metadata:
        return LoadedExport(TfliteChat(version).serve, metadata)
    return LoadedExport(load_tflite(version, metadata), metadata)


register_format("tflite", ExportFormat(write_tflite, QUANTIZATIONS.names(), _refuse, detect=_detect, load=_load))
