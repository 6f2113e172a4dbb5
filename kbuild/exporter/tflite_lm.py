"""TFLite export of a chat run's causal LM: `model.tflite` with `prefill_N` and `decode_N` steps for
a few cache lengths N over one copy of the weights, the tokenizer graphs beside it, and
metadata.json's `generator` section (see kbuild.exporter.tflite_generator, which documents the
signatures, reads them back and runs the loop).

A llama's layers (SmolLM2's) are written out for TFLite (`_llama_layer`): each layer's keys and
values are inputs read in place. Any other keras_hub architecture runs its own layers on keras_hub's
cache assembled from those inputs (`_keras_hub_layer`), as `call_with_cache` calls them (embedding,
the layers, final norm, the embedding read in reverse). An architecture whose cached step does more
than that (scaled embeddings, soft-capped logits) would convert to wrong logits, so before anything
is written the converted steps run a check prompt beside the Keras model: at float32 their logits
must agree and give the same greedy tokens, or the export is an ExportError; quantised, the
difference and the agreement are recorded in metadata.json.

`--quantize dynamic` stores the weights int8 and quantises activations on the fly (XNNPACK's
int8 kernels: about a quarter of the bytes a token reads); `float16` halves the file and computes
in float32; `int8` (calibrated activations) is refused: a Transformer's int8 activations wreck its
attention (kbuild.exporter.quantize, ATTENTION_INT8_OPS).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kbuild.errors import ExportError
from kbuild.exporter.layout import TFLITE_MODEL, publish_version
from kbuild.exporter.quantize import QUANTIZATIONS
from kbuild.exporter.savedmodel import metadata, write_metadata
from kbuild.exporter.serving import Servable
from kbuild.exporter.tflite_generator import (
    GENERATOR_KEY,
    PREFILL,
    TOKENIZER_DIR,
    TfliteCausalLm,
    cache_sizes,
)

LM_QUANTIZATIONS = ("none", "dynamic", "float16")
CHECK_TEXT = ("The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named "
              "after the engineer Gustave Eiffel, whose company designed and built the tower.")
"""The check prompt (any text: the check compares the converted steps with the model on it)."""
CHECK_STEPS = 8
FLOAT_TOLERANCE = 1e-3
"""Largest |logit difference| allowed at float32, relative to the logits' range."""


def write_tflite_lm(servable: Servable, model_root: Path, quantize: str = "none") -> Path:
    """Convert the chat run's causal LM (quantised as `quantize`) as the next version under `model_root`."""
    from kbuild.pretrained.causal_lm import causal_lm_of

    check_quantize(quantize)

    def describe(settings: dict) -> dict:
        return metadata(servable, fmt="tflite", quantize=quantize, **{GENERATOR_KEY: settings})

    return publish_version(model_root, lambda staging: write_generator(
        staging, causal_lm_of(servable.model), servable.tokenizer, servable.spec, quantize, describe))


def write_generator(folder: Path, model: Any, tokenizer: Any, spec: Any, quantize: str,
                    describe: Callable[[dict], dict] = lambda settings: {GENERATOR_KEY: settings}) -> dict:
    """Write `model.tflite`, `tokenizer/` and metadata.json (`describe(settings)`) for a keras_hub
    `CausalLM` under a chat spec into `folder`; returns the generator settings."""
    from kbuild.tasks.causal_lm import serving_context
    from kbuild.tasks.chat import format_values, role_formats_for, stop_token_ids

    check_quantize(quantize)
    layers, kv_heads, head_dim = cache_dims(model)
    context = serving_context(spec)
    sizes = cache_sizes(context)
    formats = role_formats_for(spec, tokenizer)
    (folder / TFLITE_MODEL).write_bytes(convert_steps(model, kv_heads, head_dim, sizes, quantize))
    settings = {
        "layers": layers, "kv_heads": kv_heads, "head_dim": head_dim, "context": context, "prefill": PREFILL,
        "cache_sizes": list(sizes),
        "stop_ids": list(stop_token_ids(tokenizer, formats)), "chat_format": format_values(formats),
        "pad_id": int(tokenizer.pad_id), "max_new_tokens": spec.preprocess.chat.max_new_tokens,
        "verification": verify_steps(model, tokenizer, folder / TFLITE_MODEL, quantize),
    }
    save_chat_tokenizer(spec, tokenizer, folder / TOKENIZER_DIR)
    write_metadata(folder, describe(settings))
    return settings


def check_quantize(quantize: str) -> None:
    if quantize not in LM_QUANTIZATIONS:
        raise ExportError(f"--format tflite --quantize {quantize}: a language model exports as "
                          f"{', '.join(LM_QUANTIZATIONS)} (calibrated int8 activations wreck a Transformer's attention)")


def cache_dims(model: Any) -> tuple[int, int, int]:
    """(layers, key/value heads, head width) of keras_hub's cache for `model`, read off
    `_build_cache`'s traced output ([batch, layers, 2, length, heads, width]); nothing runs."""
    import tensorflow as tf

    traced = tf.function(lambda ids: model._build_cache(ids)[1]).get_concrete_function(tf.TensorSpec([1, 8], tf.int32))
    shape = traced.structured_outputs.shape.as_list()
    if len(shape) != 6 or not hasattr(model.backbone, "transformer_layers"):
        raise ExportError(f"--format tflite: {type(model).__name__}'s cache is not keras_hub's per-layer key/value "
                          "cache; export it as a SavedModel")
    return shape[1], shape[4], shape[5]


def step_function(model: Any, width: int, size: int, kv_heads: int, head_dim: int, llama: bool = True) -> Any:
    """The `width`-token step over caches of `size` positions as a tf.function: (tokens, index,
    keys, values) -> {logits, written_keys, written_values}; per layer, keys [rows, kv_heads, size,
    head_dim] and values [rows, kv_heads, head_dim, size] (see kbuild.exporter.tflite_generator).
    A llama's attention is written out here (`_llama_layer`); other architectures call their own
    layers on keras_hub's cache assembled from them (`_keras_hub_layer`: correct, with copies)."""
    import tensorflow as tf

    backbone = model.backbone
    layers = backbone.transformer_layers
    run_layer = _llama_layer if llama and all(_is_llama(layer) for layer in layers) else _keras_hub_layer
    specs = [tf.TensorSpec([None, width], tf.int32, name="tokens"), tf.TensorSpec([], tf.int32, name="index"),
             [tf.TensorSpec([None, kv_heads, size, head_dim], tf.float32, name=f"keys_{i}") for i in range(len(layers))],
             [tf.TensorSpec([None, kv_heads, head_dim, size], tf.float32, name=f"values_{i}") for i in range(len(layers))]]

    @tf.function(input_signature=specs)
    def step(tokens, index, keys, values):
        x = backbone.token_embedding(tokens)
        written_keys, written_values = [], []
        for layer, layer_keys, layer_values in zip(layers, keys, values, strict=True):
            x, new_keys, new_values = run_layer(layer, x, index, layer_keys, layer_values)
            written_keys.append(new_keys)
            written_values.append(new_values)
        x = _scaled_first_rms_norm(backbone.layer_norm, x[:, -1:]) if run_layer is _llama_layer \
            else backbone.layer_norm(x[:, -1:])
        return {"logits": backbone.token_embedding(x, reverse=True)[:, 0],
                "written_keys": tf.concat(written_keys, 0), "written_values": tf.concat(written_values, 0)}

    return step


def _is_llama(layer: Any) -> bool:
    import keras_hub

    attention = getattr(layer, "_self_attention_layer", None)
    return isinstance(layer, keras_hub.src.models.llama.llama_decoder.LlamaTransformerDecoder) and \
        type(attention).__name__ == "LlamaAttention"


def _llama_layer(layer: Any, x: Any, index: Any, keys: Any, values: Any) -> tuple[Any, Any, Any]:
    """keras_hub's llama decoder layer with its key/value cache, written for TFLite: the cache is
    read where it lies (no update-slice, stack or per-head repeat of it: keras_hub's code copies
    each layer's cache about ten times a step, which made the step's time grow with the cache), the
    query heads of a key/value head grouped instead of the keys repeated, and the step's own keys
    and values attended beside the cache. Returns (output, the step's keys, its values)."""
    import tensorflow as tf

    attention = layer._self_attention_layer
    rows, width = tf.shape(x)[0], tf.shape(x)[1]
    kv_heads, head_dim = keys.shape[1], keys.shape[3]
    groups = attention.num_query_heads // kv_heads
    size = keys.shape[2]

    h = _scaled_first_rms_norm(layer._self_attention_layernorm, x)
    query = attention.rotary_embedding_layer(attention._query_dense(h), start_index=index)  # [rows, width, heads, dim]
    key = attention.rotary_embedding_layer(attention._key_dense(h), start_index=index)      # [rows, width, kv, dim]
    value = attention._value_dense(h)
    # [rows, kv, groups * width, dim]: the query heads that share a key/value head, one after another.
    query = tf.reshape(tf.transpose(tf.reshape(query, [rows, width, kv_heads, groups, head_dim]), [0, 2, 3, 1, 4]),
                       [rows, kv_heads, groups * width, head_dim])
    new_keys = tf.transpose(key, [0, 2, 1, 3])      # [rows, kv, width, dim]
    new_values = tf.transpose(value, [0, 2, 3, 1])  # [rows, kv, dim, width]
    scale = tf.constant(attention._inv_norm_factor, tf.float32)
    cached = tf.matmul(query, keys, transpose_b=True) * scale        # [rows, kv, groups * width, size]
    own = tf.matmul(query, new_keys, transpose_b=True) * scale       # [rows, kv, groups * width, width]
    # The cache holds positions < index; among its own tokens, the step is causal.
    cached = tf.where(tf.range(size)[None, None, None, :] < index, cached, NEGATIVE)
    position = tf.range(groups * width) % width
    own = tf.where(tf.range(width)[None, :] <= position[:, None], own, NEGATIVE)
    weights = tf.nn.softmax(tf.concat([cached, own], -1), axis=-1)
    mixed = (tf.matmul(weights[..., :size], values, transpose_b=True)
             + tf.matmul(weights[..., size:], new_values, transpose_b=True))  # [rows, kv, groups * width, dim]
    mixed = tf.reshape(tf.transpose(tf.reshape(mixed, [rows, kv_heads, groups, width, head_dim]), [0, 3, 1, 2, 4]),
                       [rows, width, kv_heads * groups, head_dim])
    x = x + attention._output_dense(mixed)
    h = _scaled_first_rms_norm(layer._feedforward_layernorm, x)
    gate = layer.activation(layer._feedforward_gate_dense(h))
    x = x + layer._feedforward_output_dense(layer._feedforward_intermediate_dense(h) * gate)
    return x, new_keys, new_values


def _scaled_first_rms_norm(norm: Any, x: Any) -> Any:
    """keras_hub's LlamaLayerNorm with its scale applied before the normalising factor, the same
    values. Applied last, as keras_hub does, the scale is a constant multiply feeding the next
    matmuls, and TFLite's converter folds it into their weights. Quantised, that moves the
    scale's range (within one of SmolLM2's norms: 0.0003 to 0.6) into the int8 weights' rows, and
    leaves the activations' outlier channels, which the small scales tame, to the on-the-fly int8
    of the matmul's input: SmolLM2's int8 perplexity was +4.0 % over float32's folded, +0.99 % unfolded
    (RESULTS.md, Session 32)."""
    import tensorflow as tf

    x = tf.cast(x, tf.float32)
    factor = tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + norm.epsilon)
    return (x * tf.convert_to_tensor(norm.scale)) * factor


NEGATIVE = -1e9
"""The score of a position a query may not see (keras_hub's masked softmax uses the same)."""


def _keras_hub_layer(layer: Any, x: Any, index: Any, keys: Any, values: Any) -> tuple[Any, Any, Any]:
    """Any keras_hub decoder layer, on its own cache layout ([rows, 2, size, kv, dim]) assembled from ours."""
    import tensorflow as tf

    width = tf.shape(x)[1]
    cache = tf.stack([tf.transpose(keys, [0, 2, 1, 3]), tf.transpose(values, [0, 3, 1, 2])], axis=1)
    x, cache = layer(x, self_attention_cache=cache, self_attention_cache_update_index=index)
    written = cache[:, :, index:index + width]  # [rows, 2, width, kv, dim]
    return x, tf.transpose(written[:, 0], [0, 2, 1, 3]), tf.transpose(written[:, 1], [0, 2, 3, 1])


def convert_steps(model: Any, kv_heads: int, head_dim: int, sizes: tuple[int, ...], quantize: str,
                  llama: bool = True) -> bytes:
    """The flatbuffer holding `prefill_N` and `decode_N` for each cache length N in `sizes`, over one
    copy of the weights (`llama=False`: keras_hub's own layers even for a llama)."""
    import tensorflow as tf

    holder = tf.Module()
    holder.weights = [getattr(v, "value", v) for v in model.backbone.variables]  # tf.Variables behind Keras's
    signatures = {f"{kind}_{size}": step_function(model, width, size, kv_heads, head_dim, llama).get_concrete_function()
                  for size in sizes for kind, width in (("decode", 1), ("prefill", PREFILL))}
    staging = tempfile.mkdtemp(prefix="kbuild-tflite-lm-")
    try:
        tf.saved_model.save(holder, staging, signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(staging, signature_keys=list(signatures))
        QUANTIZATIONS.get(quantize)(converter, lambda: iter(()))
        return converter.convert()
    except Exception as error:  # the converter's errors are long MLIR dumps: keep the first line
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"--format tflite: the language model did not convert ({first}); export it as a "
                          "SavedModel") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def verify_steps(model: Any, tokenizer: Any, path: Path, quantize: str) -> dict:
    """Prefill the check prompt and decode CHECK_STEPS tokens greedily with the converted steps and
    with the Keras model; raise an ExportError at float32 if they disagree, else return how far apart they are."""
    import numpy as np
    import tensorflow as tf

    ids = tokenizer.token_ids(tf.constant([CHECK_TEXT])).to_list()[0]
    lm = TfliteCausalLm(path)
    tokens = lm.continue_ids([ids], CHECK_STEPS, (), len(ids) + CHECK_STEPS)[0]
    # The Keras model on the prompt and the converted steps' own tokens: its logits at each step.
    sequence = np.array([ids + tokens], np.int32)
    logits = model({"token_ids": sequence, "padding_mask": np.ones_like(sequence, bool)}, training=False)
    logits = np.asarray(logits)[0, len(ids) - 1:-1]
    keras_tokens = logits.argmax(-1).tolist()
    converted = lm.logits_along(ids + tokens[:-1], len(ids) - 1)
    difference = float(np.max(np.abs(converted - logits)))
    scale = float(np.max(logits) - np.min(logits)) or 1.0
    agreement = float(np.mean(np.array(keras_tokens) == np.array(tokens)))
    if not np.isfinite(converted).all():
        raise ExportError(f"the converted --quantize {quantize} language model gives non-finite logits on a check prompt")
    if quantize == "none" and (difference > FLOAT_TOLERANCE * scale or agreement < 1.0):
        raise ExportError(f"--format tflite: the converted steps of {type(model).__name__} disagree with the model "
                          f"(largest logit difference {difference:.3g} of a {scale:.3g} range; "
                          f"{agreement:.0%} of {CHECK_STEPS} greedy tokens agree): its cached step is not the "
                          "embedding, layers and norm kbuild converts; export it as a SavedModel")
    return {"prompt_tokens": len(ids), "steps": CHECK_STEPS, "max_abs_logit_difference": round(difference, 6),
            "logit_range": round(scale, 3), "greedy_agreement": agreement}


def save_chat_tokenizer(spec: Any, tokenizer: Any, folder: Path) -> None:
    """The tokenizer graphs as a SavedModel: `reply_prompt` (a user message in the chat template,
    as `serving_default` wraps it), `prompt` (raw text) and `detokenize`; ids come back dense with
    their lengths (a signature cannot return ragged tensors)."""
    import keras
    import tensorflow as tf

    from kbuild.tasks.chat import reply_prompts

    prompt_of = reply_prompts(spec, tokenizer)

    def dense(ids: Any) -> dict[str, Any]:
        ids = tf.cast(ids, tf.int32)
        return {"ids": ids.to_tensor(default_value=tokenizer.pad_id), "lengths": tf.cast(ids.row_lengths(), tf.int32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def reply_prompt(text):
        return dense(tokenizer.token_ids(prompt_of(text)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def prompt(text):
        return dense(tokenizer.token_ids(text))

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="ids"),
                                  tf.TensorSpec([None], tf.int32, name="lengths")])
    def detokenize(ids, lengths):
        return {"text": tokenizer.detokenize(tf.RaggedTensor.from_tensor(ids, lengths=lengths))}

    archive = keras.export.ExportArchive()
    for trackable in tokenizer.trackables():
        archive.track(trackable)
    for name, function in (("reply_prompt", reply_prompt), ("prompt", prompt), ("detokenize", detokenize)):
        archive.add_endpoint(name, function)
    archive.write_out(str(folder), verbose=False)
