"""Convert a llama-family GGUF file (llama.cpp's format) into a Hugging Face llama folder.

keras_hub cannot read GGUF, but it converts a Hugging Face folder; so does transformers. This module
reads the file with ggml-org's `gguf` package, dequantises every tensor to float32 (F32, F16, BF16,
Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 and the k-quants, whatever `gguf.quants` dequantises), undoes the row
permutation llama.cpp's converter applies to `attn_q`/`attn_k` (it interleaves each head's rotary
halves for its own RoPE kernel; Hugging Face's llama rotates the two halves), renames the tensors to
Hugging Face's llama names and writes, into a new folder:

- `model.safetensors` (float32) and `config.json` (`model_type: llama`, from the `llama.*` keys);
- `tokenizer.json` and `tokenizer_config.json` (the chat template included; `gguf_tokenizer.py`);
- `conversion.json`: the source file's name and sha256 and the written weights' sha256, so a
  caller (`make pretrained`) can tell a finished, unmodified conversion from a partial one.

The folder is written under a `.partial` name and renamed when complete. Run it as
`python -m kbuild.pretrained.gguf FILE.gguf OUT_FOLDER`; `kbuild.pretrained.fetch` calls `convert`
for SmolLM2-135M-Instruct. It reads only; nothing here downloads.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kbuild.pretrained.gguf_tokenizer import ConversionError, Vocabulary, tokenizer_files

__all__ = ["ConversionError", "Conversion", "convert", "read", "unpermute", "main"]

PROVENANCE = "conversion.json"
WEIGHTS = "model.safetensors"
WRITTEN = (WEIGHTS, "config.json", "tokenizer.json", "tokenizer_config.json")
"""The Hugging Face files `convert` writes (PROVENANCE last, once they are all there)."""
ARCHITECTURE = "llama"

_LAYER = re.compile(r"^blk\.(\d+)\.(.+)$")
_TOP_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
              "output.weight": "lm_head.weight"}
_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
"""llama.cpp's llama tensor names -> Hugging Face's (its convert_hf_to_gguf.py maps them the other way)."""


@dataclass(frozen=True)
class Conversion:
    """What `convert` wrote: the folder, its Hugging Face config, parameter count and weights' sha256."""

    folder: Path
    config: dict[str, Any]
    parameters: int
    weights_sha256: str


def unpermute(weight: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's `permute` of an `attn_q` (query heads) or `attn_k` (key/value heads) matrix
    `[rows, cols]`: it stored each head's rows as (half, pair) and Hugging Face wants (pair, half)."""
    rows = weight.shape[0]
    if rows % (2 * heads):
        raise ValueError(f"Expected rows divisible by 2 x heads ({2 * heads}); received {rows} rows")
    return weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def read(path: Path) -> Any:
    """A `gguf.GGUFReader` over `path`, or a ConversionError that names the file."""
    from gguf import GGUFReader

    if not path.is_file():
        raise ConversionError(f"{path}: no such GGUF file")
    try:
        return GGUFReader(path)
    except Exception as error:  # noqa: BLE001 - a damaged file fails anywhere in the parser: name the file
        raise ConversionError(f"{path}: not a readable GGUF file ({type(error).__name__}: {error}); "
                              "a truncated download is the usual cause: fetch it again") from None


def _field(reader: Any, source: Path, key: str, default: Any = ...) -> Any:
    field = reader.fields.get(key)
    if field is None:
        if default is ...:
            raise ConversionError(f"{source}: no {key} key; is it a {ARCHITECTURE} model?")
        return default
    return field.contents()


def hugging_face_config(reader: Any, source: Path) -> dict[str, Any]:
    """The Hugging Face `config.json` of the file's `llama.*` keys (refusing what it cannot express)."""
    arch = _field(reader, source, "general.architecture")
    if arch != ARCHITECTURE:
        raise ConversionError(f"{source}: general.architecture is {arch!r}; only {ARCHITECTURE!r} files are converted "
                              "(llama 2/3, SmolLM, TinyLlama, ...)")

    def key(name: str, default: Any = ...) -> Any:
        return _field(reader, source, f"{ARCHITECTURE}.{name}", default)

    hidden, heads = int(key("embedding_length")), int(key("attention.head_count"))
    if hidden % heads:
        raise ConversionError(f"{source}: embedding_length {hidden} is not a multiple of head_count {heads}")
    head_dim = hidden // heads
    for name in ("rope.dimension_count", "attention.key_length", "attention.value_length"):
        value = key(name, head_dim)
        if int(value) != head_dim:
            raise ConversionError(f"{source}: {ARCHITECTURE}.{name} is {value}, not embedding_length / head_count "
                                  f"({head_dim}); Hugging Face's llama config cannot express it")
    scaling = key("rope.scaling.type", None)
    if scaling not in (None, "none"):
        raise ConversionError(f"{source}: {ARCHITECTURE}.rope.scaling.type {scaling!r} is not converted")
    names = {t.name for t in reader.tensors}
    vocab_size = int(key("vocab_size", len(_field(reader, source, "tokenizer.ggml.tokens"))))
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab_size,
        "hidden_size": hidden, "intermediate_size": int(key("feed_forward_length")),
        "num_hidden_layers": int(key("block_count")), "num_attention_heads": heads,
        "num_key_value_heads": int(key("attention.head_count_kv", heads)), "head_dim": head_dim,
        "max_position_embeddings": int(key("context_length")),
        "rms_norm_eps": _float32(key("attention.layer_norm_rms_epsilon")),
        "rope_theta": _float32(key("rope.freq_base", 10000.0)), "rope_scaling": None,
        "tie_word_embeddings": "output.weight" not in names, "hidden_act": "silu",
        "attention_bias": False, "mlp_bias": False, "torch_dtype": "float32",
        "bos_token_id": int(_field(reader, source, "tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(_field(reader, source, "tokenizer.ggml.eos_token_id")),
    }


def _float32(value: float) -> float:
    # GGUF stores float32: 1e-5 reads back as 9.99999974e-06; write the shortest decimal that is the
    # same float32, as the original config said.
    return float(str(np.float32(value)))


def hugging_face_name(name: str, source: Path) -> str:
    """The Hugging Face llama name of GGUF tensor `name`."""
    if name in _TOP_NAMES:
        return _TOP_NAMES[name]
    match = _LAYER.match(name)
    if match and match.group(2) in _LAYER_NAMES:
        return f"model.layers.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}"
    raise ConversionError(f"{source}: tensor {name!r} has no Hugging Face llama counterpart "
                          "(biases, rope_freqs and other llama variants are not converted)")


def dequantized(tensor: Any, source: Path) -> np.ndarray:
    """The tensor as float32 in numpy order (GGUF lists dimensions innermost first)."""
    from gguf.quants import dequantize

    try:
        values = dequantize(tensor.data, tensor.tensor_type)
    except NotImplementedError:
        raise ConversionError(f"{source}: tensor {tensor.name!r} is {tensor.tensor_type.name}, which the gguf package "
                              "cannot dequantise") from None
    shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))
    return np.ascontiguousarray(values.reshape(shape), dtype=np.float32)


def hugging_face_weights(reader: Any, config: dict[str, Any], source: Path,
                         report: Callable[[str], None]) -> dict[str, np.ndarray]:
    """Every tensor of the file, dequantised, renamed, `attn_q`/`attn_k` un-permuted."""
    heads = {"attn_q.weight": config["num_attention_heads"], "attn_k.weight": config["num_key_value_heads"]}
    weights: dict[str, np.ndarray] = {}
    last = time.monotonic()
    for count, tensor in enumerate(reader.tensors, 1):
        name = hugging_face_name(tensor.name, source)
        value = dequantized(tensor, source)
        suffix = tensor.name.split(".", 2)[-1]
        if tensor.name.startswith("blk.") and suffix in heads:
            value = unpermute(value, heads[suffix])
        weights[name] = value
        if time.monotonic() - last > 5 or count == len(reader.tensors):
            last = time.monotonic()
            report(f"dequantised {count}/{len(reader.tensors)} tensors")
    _check_complete(weights, config, source)
    return weights


def _check_complete(weights: dict[str, np.ndarray], config: dict[str, Any], source: Path) -> None:
    expected = {"model.embed_tokens.weight", "model.norm.weight"} | {
        f"model.layers.{i}.{name}" for i in range(config["num_hidden_layers"]) for name in _LAYER_NAMES.values()}
    missing = sorted(expected - set(weights))
    if missing:
        raise ConversionError(f"{source}: missing tensors for {config['num_hidden_layers']} layers: "
                              f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    rows = weights["model.embed_tokens.weight"].shape[0]
    if rows != config["vocab_size"]:
        raise ConversionError(f"{source}: token_embd has {rows} rows but the vocabulary has {config['vocab_size']}")


def vocabulary(reader: Any, source: Path, context_length: int) -> Vocabulary:
    """The file's `tokenizer.*` keys."""
    specials = {name: int(_field(reader, source, f"tokenizer.ggml.{name}_token_id"))
                for name in ("bos", "eos", "unknown", "padding")
                if f"tokenizer.ggml.{name}_token_id" in reader.fields}
    return Vocabulary(
        source=str(source), model=_field(reader, source, "tokenizer.ggml.model"),
        pre=_field(reader, source, "tokenizer.ggml.pre", "default"),
        tokens=_field(reader, source, "tokenizer.ggml.tokens"),
        token_types=_field(reader, source, "tokenizer.ggml.token_type"),
        merges=_field(reader, source, "tokenizer.ggml.merges", []),
        special_ids={{"unknown": "unk", "padding": "pad"}.get(k, k): v for k, v in specials.items()},
        add_bos=bool(_field(reader, source, "tokenizer.ggml.add_bos_token", False)),
        chat_template=_field(reader, source, "tokenizer.chat_template", None),
        context_length=context_length,
    )


def convert(source: Path, folder: Path, source_sha256: str | None = None,
            report: Callable[[str], None] = lambda line: None) -> Conversion:
    """Convert the GGUF file `source` into the Hugging Face folder `folder` (replaced when complete).

    Args:
        source: a llama-architecture GGUF file with a byte-level BPE vocabulary.
        folder: the folder to write; a `.partial` sibling is used until everything is written.
        source_sha256: the file's sha256 if the caller has it (else it is computed), for `conversion.json`.
        report: called with a line of progress now and then.

    Raises:
        ConversionError: naming the file and what is missing, damaged or unsupported.
    """
    from safetensors.numpy import save_file

    from kbuild.pretrained.fetch import sha256

    reader = read(source)
    config = hugging_face_config(reader, source)
    files = tokenizer_files(vocabulary(reader, source, config["max_position_embeddings"]))
    report(f"read {source.name}: {config['num_hidden_layers']} layers x {config['hidden_size']}, "
           f"{len(reader.tensors)} tensors")
    weights = hugging_face_weights(reader, config, source, report)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    report(f"writing {staging / WEIGHTS}")
    save_file(weights, str(staging / WEIGHTS), metadata={"format": "pt"})
    parameters = sum(int(w.size) for w in weights.values())
    del weights
    for name, content in {WRITTEN[1]: config, **files}.items():
        (staging / name).write_text(json.dumps(content, indent=2, ensure_ascii=False), encoding="utf-8")
    provenance = {"source": source.name, "source_sha256": source_sha256 or sha256(source),
                  "weights_sha256": sha256(staging / WEIGHTS), "converter": __name__}
    (staging / PROVENANCE).write_text(json.dumps(provenance, indent=2), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return Conversion(folder, config, parameters, provenance["weights_sha256"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a llama-architecture .gguf file")
    parser.add_argument("folder", type=Path, help="the Hugging Face folder to write (replaced)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        done = convert(args.source, args.folder, report=lambda line: print(line, file=sys.stderr, flush=True))
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"converted {args.source} -> {done.folder} ({done.parameters:,} parameters, "
          f"{time.monotonic() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
