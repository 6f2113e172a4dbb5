"""`model:` embedding, a stack of registered blocks, pooling and the task head."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field, field_validator

from kbuild.blocks import BlockSpec
from kbuild.blocks.decoders import DecoderSpec
from kbuild.blocks.pooling import POOLINGS
from kbuild.spec.backbone import BackboneSpec
from kbuild.spec.base import StrictModel, not_a_folder
from kbuild.spec.latent import LatentSpec

PoolingName = Literal[POOLINGS.names()]  # type: ignore[valid-type]


class CharFeaturesSpec(StrictModel):
    """Character-level word features (a char CNN per word, max-pooled, as in Ma & Hovy 2016),
    concatenated to each word's embedding: they let a tagger read unseen names by their shape.
    Needs the `whitespace` tokenizer (one word per token)."""

    dim: int = Field(default=30, ge=1)
    """Character embedding size."""
    filters: int = Field(default=50, ge=1)
    """Convolution filters = size of the feature each word gets."""
    kernel_size: int = Field(default=3, ge=1)
    max_chars: int = Field(default=16, ge=1, le=256)
    """Characters read per word (longer words are cut)."""
    buckets: int = Field(default=512, ge=2)
    """Character ids: code points are hashed into this many (ASCII and Latin-1 never collide)."""
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Dropout on the character embeddings."""


class BigramFeaturesSpec(StrictModel):
    """An embedding of each token with its right neighbour (hashed ids, no second vocabulary),
    concatenated to the token's embedding: the standard strong features of character-level Chinese
    NER, where a character pair stands in for word boundaries. Tagging only."""

    dim: int = Field(default=50, ge=1)
    """Bigram embedding size."""
    buckets: int = Field(default=100_000, ge=2)
    """Rows of the hashed bigram table; keep it well above the distinct bigrams in train (Resume
    NER: 18,788) so that few pairs share a row."""


class EmbeddingSpec(StrictModel):
    dim: int = Field(default=128, ge=1)
    position: Literal["learned", "sine", "none"] = "learned"
    """Position information added to token embeddings (`none` suits recurrent encoders)."""
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    chars: CharFeaturesSpec | None = None
    """Character-level word features; the embedding's size is then dim + chars.filters."""
    bigrams: BigramFeaturesSpec | None = None
    """Token-bigram features (tagging); the embedding's size grows by bigrams.dim."""
    pretrained: str | None = Field(default=None, min_length=1)
    """Word vectors to start from: word2vec/GloVe text (an optional `COUNT DIM` header line, then
    `WORD v1 ... vDIM` per line) or word2vec binary (`.bin`). Each must have `dim` values; words not
    in the file keep their random start (a lowercase match is tried second)."""
    trainable: bool = True
    """Whether the token embeddings keep training (false freezes them, pretrained or not)."""

    _pretrained_is_file = field_validator("pretrained")(lambda value: not_a_folder(value))

    @property
    def output_dim(self) -> int:
        return self.dim + (self.chars.filters if self.chars else 0) + (self.bigrams.dim if self.bigrams else 0)


class HeadSpec(StrictModel):
    """The task's output layer, after optional dense layers.

    One class serves both tasks rather than a union per task: `hidden`, `activation` and `dropout`
    mean the same everywhere and only the output layer differs, so every existing classification
    spec stays valid and each task rejects the `type` it cannot use (see `Task.spec_issues`).
    """

    type: Literal["softmax", "crf"] = "softmax"
    """`softmax` (per example, or per token for tagging) or `crf` (tagging: a linear-chain CRF
    learns tag transitions and decodes the best sequence with Viterbi)."""
    hidden: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)
    """Sizes of the dense layers between pooling and the output layer."""
    activation: Literal["relu", "gelu", "tanh"] = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    threshold: float | dict[str, float] = 0.5
    """multilabel: a label is predicted when its probability reaches this; one value, or label ->
    value (labels not named keep 0.5)."""


class RegularizationSpec(StrictModel):
    """L1/L2 penalties on every kernel (dense, attention, recurrent); embeddings and biases excluded."""

    l1: float = Field(default=0.0, ge=0.0)
    l2: float = Field(default=0.0, ge=0.0)


class ModelSpec(StrictModel):
    backbone: BackboneSpec | None = None
    """A pretrained encoder from a local folder (`from`, `trainable`, `freeze_layers`, `lora`): it
    replaces `embedding` and `blocks`, and its tokenizer replaces `preprocess.tokenizer`."""
    embedding: EmbeddingSpec = Field(default_factory=EmbeddingSpec)
    blocks: list[BlockSpec] = Field(default_factory=list)
    pooling: PoolingName = "mean"
    head: HeadSpec = Field(default_factory=HeadSpec)
    decoder: DecoderSpec | None = None
    """seq2seq: the target-side decoder (`transformer` with cross-attention, or `lstm`/`gru` with
    `luong` or `bahdanau` attention) and how it decodes (`search: greedy | beam`, `beams`)."""
    latent: LatentSpec | None = None
    """vae: the latent code (`dim`), the KL schedule (`kl_anneal_steps`, `free_bits`), decoder
    word dropout and the recurrent decoder (`decoder: {type: gru | lstm, units}`)."""
    regularization: RegularizationSpec = Field(default_factory=RegularizationSpec)

    def issues(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Cross-field problems (location inside `model`, message), e.g. heads not dividing dim."""
        dim = self.embedding.output_dim
        for i, block in enumerate(self.blocks):
            for loc, message in block.check(dim):
                yield ("blocks", i, *loc), message
            dim = block.output_dim(dim)
        # With a backbone the decoder works at the checkpoint's hidden size, which only the
        # checkpoint knows: the model's build checks it (kbuild.tasks.seq2seq_model).
        if self.decoder is not None and self.backbone is None:
            for loc, message in self.decoder.check(self.embedding.dim):
                yield ("decoder", *loc), message
