"""Tokenizers, one module per `preprocess.tokenizer.type` (wordpiece, word, char, whitespace).

`make_tokenizer` is the factory; every tokenizer fits a vocabulary in Python and encodes inside the
TensorFlow graph (see `base.Tokenizer`). Importing this package imports TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kbuild.data.tokenizers import char, whitespace, word, wordpiece  # noqa: F401  (registration side effect)
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


def make_tokenizer(spec: TokenizerSpec, max_length: int, start_token: bool = False, **options: Any) -> Tokenizer:
    """A tokenizer of `spec.type`, without a vocabulary yet: `fit()` or `load()` it next.

    `options` go to the tokenizer class (e.g. `char_length` for `whitespace`)."""
    return TOKENIZERS.get(spec.type)(spec, max_length=max_length, start_token=start_token, **options)
