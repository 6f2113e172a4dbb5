"""Check a `model.backbone.from` folder before anything heavy is loaded.

A folder holds one of two kinds of checkpoint: an encoder (BERT-like; the task's head reads its
per-token features) or a causal language model (llama, gpt2, qwen2, mistral, gemma; it continues
text). `read_folder` says which, from the registered architecture, and `inspect` refuses the wrong
kind for the spec's task before anything loads.

keras_hub reads two on-disk formats from a local folder: a Hugging Face checkpoint (`config.json`
with a `model_type`, `model.safetensors`, the tokenizer's files) through its converters, and its own
presets (`save_to_preset`: `config.json` with a `registered_name`, `model.weights.h5`, `tokenizer.json`
and its assets). Its failures on a bad folder are deep tracebacks (a KeyError on `do_lower_case`, a
missing file inside a converter), and a value it does not find as a folder it takes for a preset name
to download. `inspect` turns each of those into one message naming the spec key and what to do, and
hands keras_hub only absolute paths. Standard library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kbuild.errors import KbuildError
from kbuild.registry import Registry

if TYPE_CHECKING:
    from kbuild.spec.root import Spec

CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"
HF_SHARDED_WEIGHTS = "model.safetensors.index.json"
TORCH_WEIGHTS = "pytorch_model.bin"
HF_TOKENIZER_CONFIG = "tokenizer_config.json"
HF_TOKENIZER = "tokenizer.json"
KERAS_WEIGHTS = "model.weights.h5"
KERAS_TOKENIZER = "tokenizer.json"


class CheckpointError(KbuildError):
    """`model.backbone.from` (or a setting it bounds) cannot be used; a usage error (exit 2)."""

    exit_code = 2


Kind = Literal["encoder", "causal_lm"]
ENCODER: Kind = "encoder"
CAUSAL_LM: Kind = "causal_lm"
KIND_NAMES = {ENCODER: "an encoder", CAUSAL_LM: "a causal language model"}


@dataclass(frozen=True)
class Architecture:
    """What kbuild needs to know of one model family beyond what keras_hub knows.

    Args:
        model_type: Hugging Face `config.json` `model_type`.
        backbone_class: keras_hub's registered name of its backbone (in a preset's `config.json`).
        tokenizer_files: files keras_hub's converter reads from a Hugging Face folder.
        layers_key / positions_key: the Hugging Face config keys of depth and position count
            (positions_key None: rotary positions, no table to run out of).
        kind: `encoder` (per-token features for a task head) or `causal_lm` (continues text).
        config_keys: Hugging Face config keys keras_hub's converter indexes (a KeyError otherwise).
        tokenizer_config_keys: `tokenizer_config.json` keys the converter indexes.
        backbone_overrides: (Hugging Face config key, keras_hub backbone argument) pairs the converter
            does not pass on, to give `Backbone.from_preset` (llama's `rms_norm_eps`).
        preset_positions_key: the position count's key in a keras-hub preset's backbone config.
    """

    model_type: str
    backbone_class: str
    tokenizer_files: tuple[str, ...]
    layers_key: str
    positions_key: str | None = "max_position_embeddings"
    kind: Kind = ENCODER
    config_keys: tuple[str, ...] = ()
    tokenizer_config_keys: tuple[str, ...] = ()
    backbone_overrides: tuple[tuple[str, str], ...] = ()
    preset_positions_key: str | None = "max_sequence_length"


ARCHITECTURES: Registry[Architecture] = Registry("model_type")
"""Families kbuild reads. Encoders: keras_hub converts many more, but kbuild's pipeline pads with
id 0 and reads `[CLS]`/`[SEP]` WordPiece packing; these are the families that match. Adding one whose
tokenizer pads with 0 is one entry here. Causal LMs: the decoder families keras_hub converts from a
Hugging Face folder with their tokenizer (the converters in keras_hub/src/utils/transformers)."""
_ROTARY = {"positions_key": None, "preset_positions_key": None, "kind": CAUSAL_LM}
_DECODER_CONFIG = ("vocab_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                   "hidden_size", "intermediate_size")
for _arch in (
    Architecture("bert", "keras_hub>BertBackbone", ("vocab.txt", HF_TOKENIZER_CONFIG), "num_hidden_layers",
                 tokenizer_config_keys=("do_lower_case",)),
    Architecture("distilbert", "keras_hub>DistilBertBackbone", ("vocab.txt", HF_TOKENIZER_CONFIG), "n_layers",
                 tokenizer_config_keys=("do_lower_case",)),
    Architecture("llama", "keras_hub>Llama3Backbone", (HF_TOKENIZER, HF_TOKENIZER_CONFIG), "num_hidden_layers",
                 config_keys=(*_DECODER_CONFIG, "tie_word_embeddings"), tokenizer_config_keys=("bos_token", "eos_token"),
                 backbone_overrides=(("rms_norm_eps", "layer_norm_epsilon"),), **_ROTARY),
    Architecture("qwen2", "keras_hub>QwenBackbone", (HF_TOKENIZER,), "num_hidden_layers",
                 config_keys=(*_DECODER_CONFIG, "rms_norm_eps", "tie_word_embeddings", "use_sliding_window",
                              "sliding_window"), **_ROTARY),
    Architecture("mistral", "keras_hub>MistralBackbone", ("tokenizer.model",), "num_hidden_layers",
                 config_keys=(*_DECODER_CONFIG, "rms_norm_eps", "sliding_window"), **_ROTARY),
    Architecture("gemma", "keras_hub>GemmaBackbone", ("tokenizer.model",), "num_hidden_layers",
                 config_keys=(*_DECODER_CONFIG, "head_dim"), **_ROTARY),
    Architecture("gpt2", "keras_hub>GPT2Backbone", ("vocab.json", "merges.txt"), "n_layer", positions_key="n_positions",
                 kind=CAUSAL_LM, config_keys=("vocab_size", "n_layer", "n_head", "n_embd", "resid_pdrop")),
):
    ARCHITECTURES.register(_arch.model_type)(_arch)


@dataclass(frozen=True)
class Checkpoint:
    """A checked folder: what the backbone and tokenizer loaders and the spec's bounds need.

    Args:
        path: the folder, absolute (keras_hub takes a relative name for a preset to download).
        architecture: its registered family (its `kind`: encoder or causal LM).
        layers: transformer layers in the network.
        positions: the most tokens it has position embeddings for (None: rotary, no table).
        backbone_arguments: what to give `Backbone.from_preset` beyond the folder (the
            architecture's `backbone_overrides`, read from this folder's config).
    """

    path: Path
    architecture: Architecture
    layers: int
    positions: int | None
    backbone_arguments: tuple[tuple[str, object], ...] = ()

    @property
    def kind(self) -> Kind:
        return self.architecture.kind


KEY = "model.backbone.from"
_TOKENIZER_CONFIG_HINTS = {
    "do_lower_case": "; add \"do_lower_case\": true for an uncased checkpoint, false for a cased one",
}


def inspect(spec: Spec, kind: Kind = ENCODER) -> Checkpoint:
    """The checked checkpoint of `spec.model.backbone`, of the `kind` the task reads, with
    `preprocess.max_length` and `model.backbone.freeze_layers` checked against it.

    Raises:
        CheckpointError: naming the spec key, what is wrong and what to do.
    """
    backbone = spec.model.backbone
    if backbone is None:
        raise ValueError("spec.model.backbone is not set")
    checkpoint = read_folder(backbone.from_)
    if checkpoint.kind != kind:
        wanted = ", ".join(name for name, a in ARCHITECTURES.items() if a.kind == kind)
        raise CheckpointError(f"{KEY}: {checkpoint.path} is {KIND_NAMES[checkpoint.kind]} "
                              f"({checkpoint.architecture.model_type}); task {spec.task} needs {KIND_NAMES[kind]} "
                              f"({wanted})")
    if checkpoint.positions is not None and spec.preprocess.max_length > checkpoint.positions:
        raise CheckpointError(f"preprocess.max_length: {spec.preprocess.max_length} is above the {checkpoint.positions} "
                              f"positions of the checkpoint in {checkpoint.path}: lower it")
    if backbone.freeze_layers > checkpoint.layers:
        raise CheckpointError(f"model.backbone.freeze_layers: {backbone.freeze_layers} is more than the checkpoint's "
                              f"{checkpoint.layers} layers (use trainable: false to freeze them all)")
    return checkpoint


def read_folder(value: str | Path) -> Checkpoint:
    """`value` (a `model.backbone.from` path) checked as a Hugging Face or keras-hub folder."""
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise CheckpointError(f"{KEY}: no folder {path} (from {str(value)!r}); for the examples' checkpoints run "
                              "`make pretrained`, which puts all-MiniLM-L6-v2 and SmolLM2-135M-Instruct in ./pretrained/")
    config_path = path / CONFIG
    if not config_path.is_file():
        raise CheckpointError(f"{KEY}: {path} has no {CONFIG}; expected a Hugging Face checkpoint folder "
                              "(config.json, model.safetensors, tokenizer files) or a keras-hub preset (save_to_preset)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{KEY}: {config_path} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{KEY}: {config_path}: expected a JSON object")
    if "registered_name" in config:
        return _keras_preset(path, config)
    if "model_type" in config:
        return _hugging_face(path, config)
    raise CheckpointError(f"{KEY}: {config_path} has neither `model_type` (a Hugging Face checkpoint) nor "
                          "`registered_name` (a keras-hub preset)")


def _supported() -> str:
    return "; ".join(f"{', '.join(name for name, a in ARCHITECTURES.items() if a.kind == kind)} ({label}s)"
                     for kind, label in ((ENCODER, "encoder"), (CAUSAL_LM, "causal LM")))


def _hugging_face(path: Path, config: dict) -> Checkpoint:
    model_type = config["model_type"]
    if model_type not in ARCHITECTURES:
        raise CheckpointError(f"{KEY}: model_type {model_type!r} in {path / CONFIG} is not supported; "
                              f"supported model types: {_supported()}")
    architecture = ARCHITECTURES.get(model_type)
    _check_weights(path)
    missing = [key for key in architecture.config_keys if config.get(key) is None]
    if missing:
        raise CheckpointError(f"{KEY}: {path / CONFIG} has no {', '.join(missing)}, which keras_hub's {model_type} "
                              "converter reads")
    for name in architecture.tokenizer_files:
        if not (path / name).is_file():
            hint = (" (write it from tokenizer.json's model.vocab, one token per line in id order)"
                    if name == "vocab.txt" and (path / HF_TOKENIZER).is_file() else "")
            raise CheckpointError(f"{KEY}: {path} has no {name}, which the {model_type} tokenizer needs{hint}")
    tokenizer_config = _json(path / HF_TOKENIZER_CONFIG) if architecture.tokenizer_config_keys else {}
    for key in architecture.tokenizer_config_keys:
        if key not in tokenizer_config or isinstance(tokenizer_config[key], (dict, list)):
            raise CheckpointError(f"{KEY}: {path / HF_TOKENIZER_CONFIG} has no {key}"
                                  f"{' as a plain value' if key in tokenizer_config else ''}, which the {model_type} "
                                  f"tokenizer needs{_TOKENIZER_CONFIG_HINTS.get(key, '')}")
    positions = None if architecture.positions_key is None else _int(config, architecture.positions_key, path)
    arguments = tuple((argument, config[key]) for key, argument in architecture.backbone_overrides if key in config)
    return Checkpoint(path, architecture, _int(config, architecture.layers_key, path), positions, arguments)


def _check_weights(path: Path) -> None:
    if (path / HF_WEIGHTS).is_file() or (path / HF_SHARDED_WEIGHTS).is_file():
        return
    if (path / TORCH_WEIGHTS).is_file():
        raise CheckpointError(
            f"{KEY}: {path} has its weights only as {TORCH_WEIGHTS}, which keras_hub does not read; convert them "
            f"to {HF_WEIGHTS} once, where torch is installed: python -c \"import torch, safetensors.torch as st; "
            f"st.save_file(torch.load('{TORCH_WEIGHTS}', map_location='cpu'), '{HF_WEIGHTS}')\" (run in that folder)")
    raise CheckpointError(f"{KEY}: {path} has no {HF_WEIGHTS}")


def _keras_preset(path: Path, config: dict) -> Checkpoint:
    name = config["registered_name"]
    architecture = next((a for _, a in ARCHITECTURES.items() if a.backbone_class == name), None)
    if architecture is None:
        supported = ", ".join(a.backbone_class.split(">")[-1] for _, a in ARCHITECTURES.items())
        raise CheckpointError(f"{KEY}: {path / CONFIG} is a keras-hub preset of {name}, which kbuild does not "
                              f"fine-tune; supported backbones: {supported}")
    for needed in (KERAS_WEIGHTS, KERAS_TOKENIZER):
        if not (path / needed).is_file():
            raise CheckpointError(f"{KEY}: the keras-hub preset {path} has no {needed} "
                                  f"(save it with backbone.save_to_preset and tokenizer.save_to_preset)")
    args = config.get("config", {})
    key = architecture.preset_positions_key
    return Checkpoint(path, architecture, _int(args, "num_layers", path), None if key is None else _int(args, key, path))


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{KEY}: {path} is not valid JSON: {error}") from None
    return value if isinstance(value, dict) else {}


def _int(config: dict, key: str, path: Path) -> int:
    value = config.get(key)
    if not isinstance(value, int):
        raise CheckpointError(f"{KEY}: {path / CONFIG} has no integer {key!r}")
    return value
