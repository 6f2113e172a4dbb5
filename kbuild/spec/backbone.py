"""`model.backbone`: a pretrained encoder from a local folder, and the rules it sets for the spec.

Pure pydantic: `kbuild validate` checks these without TensorFlow. Whether the folder holds a
usable checkpoint is checked when training builds the data (`checkpoint.inspect`), not here: a
trained run is self-contained, so its spec must stay valid where the folder no longer exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydantic import ConfigDict, Field, field_validator, model_validator

from kbuild.spec.base import StrictModel

if TYPE_CHECKING:
    from kbuild.spec.root import Spec

BACKBONE_TASKS = frozenset({"classification", "regression", "multilabel", "tagging", "extractive_qa", "seq2seq", "chat",
                            "language_model"})
"""Tasks that take a pretrained checkpoint: those whose head reads per-token encoder features
(pooled, per word for tagging, per token for extractive_qa, or attended to by a seq2seq decoder),
and `chat` and `language_model`, which fine-tune (or continue pretraining) a causal language model."""

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class LoraSpec(StrictModel):
    """LoRA adapters (Hu et al. 2021) on the attention query and value projections of every
    layer (or the layers `targets` names); every other backbone weight is frozen, the task head
    still trains."""

    rank: int = Field(ge=1, le=1024)
    alpha: float | None = Field(default=None, gt=0)
    """Scale of the adapters' update is alpha / rank; omitted, alpha = rank (scale 1)."""
    targets: list[str] | None = Field(default=None, min_length=1)
    """keras_hub layer names to adapt in every transformer layer (llama: query, key, value,
    attention_output, feedforward_gate_dense, feedforward_intermediate_dense,
    feedforward_output_dense); omitted, keras_hub's defaults (query and value)."""


class BackboneSpec(StrictModel):
    """A pretrained encoder loaded through keras_hub from a local folder.

    Examples:
        >>> BackboneSpec.model_validate({"from": "./pretrained/all-MiniLM-L6-v2", "lora": {"rank": 8}})
    """

    model_config = ConfigDict(serialize_by_alias=True)

    from_: str = Field(alias="from")
    """A local folder: a Hugging Face checkpoint (config.json with `model_type`, model.safetensors,
    tokenizer files) or a keras-hub preset (`save_to_preset`). Write it as a path (`./name`,
    `../x/name`, `/abs/name`, `~/name`): relative paths are read from the working directory, and a
    bare name or a URL is refused, since keras_hub would resolve it to a download."""
    trainable: bool = True
    """false = feature extraction: the backbone is frozen and only the head trains."""
    freeze_layers: int = Field(default=0, ge=0)
    """Freeze the embeddings and the first N transformer layers (0 = fine-tune everything)."""
    lora: LoraSpec | None = None
    """`{rank: 8}`: train LoRA adapters instead of the backbone's weights."""
    learning_rate_scale: float = Field(default=1.0, gt=0, le=10)
    """The checkpoint's weights update at `train.optimizer.learning_rate` x this (schedule and
    decoupled weight decay alike); what kbuild adds on top (a head, a seq2seq decoder) at the full
    rate. Below 1 when the added part starts from random weights and needs a rate the pretrained
    weights would not survive: a fresh decoder over a warm-started encoder learns at 5e-4 while
    MiniLM wants about 5e-5 (discriminative fine-tuning, Howard and Ruder 2018)."""

    @field_validator("from_")
    @classmethod
    def _a_local_path(cls, value: str) -> str:
        if _SCHEME.match(value):
            raise ValueError(f"expected a local folder; received the URL {value!r}: kbuild never downloads at run "
                             "time (download the checkpoint first, then point `from` at its folder)")
        if not value.strip():
            raise ValueError("expected a local folder; received an empty string")
        if "/" not in value and "\\" not in value and not value.startswith("~"):
            raise ValueError(f"expected a path; received the bare name {value!r}, which keras_hub resolves to a "
                             f"preset download: write ./{value} for a folder in the working directory")
        return value

    @model_validator(mode="after")
    def _one_way_to_freeze(self) -> BackboneSpec:
        if self.lora is not None and (not self.trainable or self.freeze_layers):
            raise ValueError("lora freezes every backbone weight but the adapters itself: "
                             "remove trainable: false and freeze_layers, or remove lora")
        if not self.trainable and self.freeze_layers:
            raise ValueError("trainable: false already freezes every layer: remove freeze_layers")
        if self.learning_rate_scale != 1 and (self.lora is not None or not self.trainable):
            raise ValueError(f"learning_rate_scale ({self.learning_rate_scale}) scales the checkpoint's own weights, and "
                             + ("lora trains zero-initialised adapters instead, at the full rate" if self.lora is not None
                                else "trainable: false trains none of them")
                             + ": remove learning_rate_scale")
        return self


def backbone_issues(spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """What a backbone rules out elsewhere in the spec: its tokenizer replaces
    `preprocess.tokenizer`, and its embeddings and layers replace `model.embedding` and
    `model.blocks`. A run's resolved spec writes defaults back, so only a changed value counts."""
    if spec.model.backbone is None:
        return
    if spec.task not in BACKBONE_TASKS:
        yield ("model", "backbone"), (f"task {spec.task} cannot use a pretrained checkpoint; "
                                      f"backbones serve {', '.join(sorted(BACKBONE_TASKS))}")
    preprocess = type(spec.preprocess).model_fields
    if spec.preprocess.tokenizer != preprocess["tokenizer"].get_default(call_default_factory=True):
        yield ("preprocess", "tokenizer"), ("the backbone's checkpoint brings its own tokenizer: "
                                            "remove preprocess.tokenizer (or model.backbone)")
    model = type(spec.model).model_fields
    if spec.model.embedding != model["embedding"].get_default(call_default_factory=True):
        yield ("model", "embedding"), "the backbone brings its own embeddings: remove model.embedding"
    if spec.model.blocks:
        yield ("model", "blocks"), ("the backbone is the encoder: remove model.blocks "
                                    "(the task head, model.head, or the seq2seq model.decoder, goes on top of it)")
