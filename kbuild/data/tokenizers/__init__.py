"""Tokenizers, one module per `preprocess.tokenizer.type` (wordpiece, word, char).

`make_tokenizer` is the factory; every tokenizer fits a vocabulary in Python and encodes inside the
TensorFlow graph (see `base.Tokenizer`). Importing this package imports TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbuild.data.tokenizers import char, word, wordpiece  # noqa: F401  (registration side effect)
from kbuild.data.tokenizers.base import (
    CLS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    VOCABULARY_FILE,
    Tokenizer,
)
from kbuild.data.tokenizers.registry import TOKENIZERS

if TYPE_CHECKING:
    from kbuild.spec.preprocess import TokenizerSpec

__all__ = [
    "CLS_ID",
    "PAD_ID",
    "SPECIAL_TOKENS",
    "TOKENIZERS",
    "UNK_ID",
    "VOCABULARY_FILE",
    "Tokenizer",
    "make_tokenizer",
]


def make_tokenizer(spec: TokenizerSpec, max_length: int, start_token: bool = False) -> Tokenizer:
    """A tokenizer of `spec.type`, without a vocabulary yet: `fit()` or `load()` it next."""
    return TOKENIZERS.get(spec.type)(spec, max_length=max_length, start_token=start_token)
