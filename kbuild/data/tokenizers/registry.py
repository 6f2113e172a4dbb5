"""`TOKENIZERS`: spec `preprocess.tokenizer.type` -> Tokenizer class (filled by each module)."""

from __future__ import annotations

from kbuild.registry import Registry

TOKENIZERS: Registry[type] = Registry("tokenizer")
