"""Check a `model.backbone.from` folder before anything heavy is loaded.

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
from typing import TYPE_CHECKING

from kbuild.errors import KbuildError
from kbuild.registry import Registry

if TYPE_CHECKING:
    from kbuild.spec.root import Spec

CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"
HF_SHARDED_WEIGHTS = "model.safetensors.index.json"
TORCH_WEIGHTS = "pytorch_model.bin"
HF_TOKENIZER_CONFIG = "tokenizer_config.json"
KERAS_WEIGHTS = "model.weights.h5"
KERAS_TOKENIZER = "tokenizer.json"


class CheckpointError(KbuildError):
    """`model.backbone.from` (or a setting it bounds) cannot be used; a usage error (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Architecture:
    """What kbuild needs to know of one encoder family beyond what keras_hub knows.

    Args:
        model_type: Hugging Face `config.json` `model_type`.
        backbone_class: keras_hub's registered name of its backbone (in a preset's `config.json`).
        tokenizer_files: files keras_hub's converter reads from a Hugging Face folder.
        layers_key / positions_key: the Hugging Face config keys of depth and position count.
    """

    model_type: str
    backbone_class: str
    tokenizer_files: tuple[str, ...]
    layers_key: str
    positions_key: str = "max_position_embeddings"


ARCHITECTURES: Registry[Architecture] = Registry("model_type")
"""Encoders kbuild fine-tunes: keras_hub converts many more families, but kbuild's pipeline pads
with id 0 and reads `[CLS]`/`[SEP]` WordPiece packing; these are the families that match. Adding
one whose tokenizer pads with 0 is one entry here."""
for _arch in (
    Architecture("bert", "keras_hub>BertBackbone", ("vocab.txt", HF_TOKENIZER_CONFIG), "num_hidden_layers"),
    Architecture("distilbert", "keras_hub>DistilBertBackbone", ("vocab.txt", HF_TOKENIZER_CONFIG), "n_layers"),
):
    ARCHITECTURES.register(_arch.model_type)(_arch)


@dataclass(frozen=True)
class Checkpoint:
    """A checked folder: what the backbone and tokenizer loaders and the spec's bounds need.

    Args:
        path: the folder, absolute (keras_hub takes a relative name for a preset to download).
        architecture: its registered family.
        layers: transformer layers in the encoder.
        positions: the most tokens it has position embeddings for.
    """

    path: Path
    architecture: Architecture
    layers: int
    positions: int


KEY = "model.backbone.from"


def inspect(spec: Spec) -> Checkpoint:
    """The checked checkpoint of `spec.model.backbone`, with `preprocess.max_length` and
    `model.backbone.freeze_layers` checked against it.

    Raises:
        CheckpointError: naming the spec key, what is wrong and what to do.
    """
    backbone = spec.model.backbone
    if backbone is None:
        raise ValueError("spec.model.backbone is not set")
    checkpoint = read_folder(backbone.from_)
    if spec.preprocess.max_length > checkpoint.positions:
        raise CheckpointError(f"preprocess.max_length: {spec.preprocess.max_length} is above the {checkpoint.positions} "
                              f"positions of the checkpoint in {checkpoint.path}: lower it")
    if backbone.freeze_layers > checkpoint.layers:
        raise CheckpointError(f"model.backbone.freeze_layers: {backbone.freeze_layers} is more than the checkpoint's "
                              f"{checkpoint.layers} layers (use trainable: false to freeze them all)")
    return checkpoint


def read_folder(value: str) -> Checkpoint:
    """`value` (a `model.backbone.from` path) checked as a Hugging Face or keras-hub folder."""
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise CheckpointError(f"{KEY}: no folder {path} (from {value!r}); for the examples' checkpoint run "
                              "`make pretrained`, which puts all-MiniLM-L6-v2 in ./pretrained/")
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


def _hugging_face(path: Path, config: dict) -> Checkpoint:
    model_type = config["model_type"]
    if model_type not in ARCHITECTURES:
        raise CheckpointError(f"{KEY}: model_type {model_type!r} in {path / CONFIG} is not supported; "
                              f"supported model types: {', '.join(ARCHITECTURES.names())}")
    architecture = ARCHITECTURES.get(model_type)
    if not (path / HF_WEIGHTS).is_file() and not (path / HF_SHARDED_WEIGHTS).is_file():
        if (path / TORCH_WEIGHTS).is_file():
            raise CheckpointError(
                f"{KEY}: {path} has its weights only as {TORCH_WEIGHTS}, which keras_hub does not read; convert them "
                f"to {HF_WEIGHTS} once, where torch is installed: python -c \"import torch, safetensors.torch as st; "
                f"st.save_file(torch.load('{TORCH_WEIGHTS}', map_location='cpu'), '{HF_WEIGHTS}')\" (run in that folder)")
        raise CheckpointError(f"{KEY}: {path} has no {HF_WEIGHTS}")
    for name in architecture.tokenizer_files:
        if not (path / name).is_file():
            hint = (" (write it from tokenizer.json's model.vocab, one token per line in id order)"
                    if name == "vocab.txt" and (path / "tokenizer.json").is_file() else "")
            raise CheckpointError(f"{KEY}: {path} has no {name}, which the {model_type} tokenizer needs{hint}")
    tokenizer_config = _json(path / HF_TOKENIZER_CONFIG)
    if "do_lower_case" not in tokenizer_config:
        raise CheckpointError(f"{KEY}: {path / HF_TOKENIZER_CONFIG} has no do_lower_case; add "
                              "\"do_lower_case\": true for an uncased checkpoint, false for a cased one")
    return Checkpoint(path, architecture, _int(config, architecture.layers_key, path),
                      _int(config, architecture.positions_key, path))


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
    return Checkpoint(path, architecture, _int(args, "num_layers", path), _int(args, "max_sequence_length", path))


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
