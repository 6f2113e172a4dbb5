"""`preprocess:` tokenizer and sequence length. Tokenizers run inside the TF graph (see kbuild.data)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kbuild.spec.base import StrictModel
from kbuild.spec.chat import ChatSpec


class _TokenizerBase(StrictModel):
    lowercase: bool = True
    vocab_size: int = Field(default=20000, ge=8)
    """Upper bound on the vocabulary computed from the train split (special tokens included)."""


class WordPieceTokenizerSpec(_TokenizerBase):
    """Subword tokenizer; vocabulary learned from the train split (keras_hub / tf-text)."""

    type: Literal["wordpiece"] = "wordpiece"
    vocab_size: int = Field(default=8000, ge=8)
    min_frequency: int = Field(default=10, ge=1)
    """Pieces counted fewer times than this in train are not learned, so a small corpus may give
    fewer than `vocab_size` of them; 10 is keras_hub's (and tf-text's) fixed default."""


class WordTokenizerSpec(_TokenizerBase):
    """Whitespace-and-punctuation words; out-of-vocabulary words map to [UNK]."""

    type: Literal["word"] = "word"
    min_frequency: int = Field(default=1, ge=1)
    newlines: bool = False
    """Keep each line break as a token (`␤`) instead of treating it as a space (language models)."""


class CharTokenizerSpec(_TokenizerBase):
    """Unicode characters: the right default for Chinese and other unsegmented scripts."""

    type: Literal["char"] = "char"
    lowercase: bool = False
    vocab_size: int = Field(default=6000, ge=8)
    min_frequency: int = Field(default=1, ge=1)
    newlines: bool = False
    """Keep each line break as a token (`␤`) instead of treating it as a space (language models)."""


class WhitespaceTokenizerSpec(_TokenizerBase):
    """Whitespace-separated words only, one id per word: the tokenizer of the tagging task."""

    type: Literal["whitespace"] = "whitespace"
    min_frequency: int = Field(default=1, ge=1)


TokenizerSpec = Annotated[
    WordPieceTokenizerSpec | WordTokenizerSpec | CharTokenizerSpec | WhitespaceTokenizerSpec,
    Field(discriminator="type"),
]


class PreprocessSpec(StrictModel):
    tokenizer: TokenizerSpec = Field(default_factory=WordPieceTokenizerSpec)
    target_tokenizer: TokenizerSpec | None = None
    """seq2seq: the target side's own tokenizer and vocabulary (learned from the train targets);
    omitted, `tokenizer` serves both sides with one vocabulary learned from sources and targets
    (with `model.backbone`: the checkpoint's tokenizer and vocabulary, and the decoder's embedding
    starts from the checkpoint's token embeddings)."""
    max_length: int = Field(default=64, ge=2, le=8192)
    """Tokens per example after truncation (special tokens included)."""
    bucketing: bool = False
    """Batch examples of similar length together (pads each batch to its bucket, not max_length): the
    train batches, and the valid and test batches that the per-epoch and final scores read."""
    truncation: Literal["longest_first", "round_robin", "waterfall"] = "longest_first"
    """Examples of several texts (sentence pairs) share `max_length`; when they do not fit, this
    picks which text loses tokens: the longest first (BERT's pair packing), each in turn, or the
    last texts first."""
    doc_stride: int = Field(default=128, ge=1)
    """extractive_qa: tokens shared by consecutive windows of a long context (Hugging Face's
    `stride`); it must be smaller than the context's room in a window (`max_length` - 3 -
    `max_query_length`), checked when the spec loads."""
    max_query_length: int = Field(default=64, ge=1)
    """extractive_qa: the question's tokens are cut to this many; the rest of each window holds
    context."""
    tag_scheme: Literal["bio", "bioes", "bmes"] = "bio"
    """Tagging: the scheme trained on; IOB1, BIO, BIOES and BMES input tags are converted on load
    (`bmes` is BIOES with `M-` for `I-`, as Chinese NER corpora write it)."""
    chat: ChatSpec = Field(default_factory=ChatSpec)
    """`task: chat`: how conversations are read (`turns`) and formatted (`template`)."""
