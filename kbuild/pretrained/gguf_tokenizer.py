"""The tokenizer files of a Hugging Face folder, written from a GGUF file's vocabulary.

A llama-family GGUF with `tokenizer.ggml.model = gpt2` holds a byte-level BPE vocabulary: its tokens
in id order, their types (control tokens are the special ones), its merges and the name of the
pre-tokenizer llama.cpp splits text with (`tokenizer.ggml.pre`). `tokenizer_files` turns those into
the `tokenizer.json` (as Hugging Face `tokenizers` writes it for such a model) and the
`tokenizer_config.json` (bos/eos/unk/pad tokens and the chat template) that keras_hub's converters
and transformers read. Standard library only; `gguf.py` reads the file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kbuild.errors import KbuildError
from kbuild.registry import Registry

CONTROL, USER_DEFINED = 3, 4
"""llama.cpp's token types (gguf.TokenType) of added tokens: control tokens are special."""


class ConversionError(KbuildError):
    """A GGUF file cannot be converted: names the file and what is missing or unsupported."""


def _byte_level(use_regex: bool = True) -> dict[str, Any]:
    # `tokenizers` refuses a ByteLevel entry without all three keys.
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": use_regex}


PRE_TOKENIZERS: Registry[Callable[[], dict[str, Any]]] = Registry("GGUF pre-tokenizer (tokenizer.ggml.pre)")
"""llama.cpp's pre-tokenizer names -> the `tokenizers` pre-tokenizer that splits text the same way.
llama.cpp picks its split regexes by this name (llama-vocab.cpp); one entry per name whose regexes
`tokenizers` has as a built-in: GPT-2's regex, and SmolLM's (each digit alone, then GPT-2's)."""
PRE_TOKENIZERS.register("default")(_byte_level)
PRE_TOKENIZERS.register("gpt-2")(_byte_level)
PRE_TOKENIZERS.register("smollm")(lambda: {"type": "Sequence", "pretokenizers": [
    {"type": "Digits", "individual_digits": True}, _byte_level()]})


@dataclass(frozen=True)
class Vocabulary:
    """What a GGUF file says about its tokenizer (the `tokenizer.*` keys).

    Args:
        source: the file, for error messages.
        model: `tokenizer.ggml.model` (only `gpt2`, byte-level BPE, is converted).
        pre: `tokenizer.ggml.pre`, the pre-tokenizer's name (absent in older files: `default`).
        tokens / token_types / merges: the vocabulary in id order, each token's type, the merges.
        special_ids: bos, eos, unk and pad ids where the file gives them (`bos_token_id`, ...).
        add_bos: `tokenizer.ggml.add_bos_token`: whether the model expects bos before each text.
        chat_template: `tokenizer.chat_template` (Jinja, as transformers renders it), if any.
        context_length: the model's context, written as `model_max_length`.
    """

    source: str
    model: str
    pre: str
    tokens: Sequence[str]
    token_types: Sequence[int]
    merges: Sequence[str]
    special_ids: dict[str, int]
    add_bos: bool
    chat_template: str | None
    context_length: int


def tokenizer_files(vocabulary: Vocabulary) -> dict[str, dict[str, Any]]:
    """`{"tokenizer.json": ..., "tokenizer_config.json": ...}` for `vocabulary`.

    Raises:
        ConversionError: a vocabulary that is not byte-level BPE, an unknown pre-tokenizer, a token
            listed twice, a special id outside the vocabulary, or no bos/eos token.
    """
    if vocabulary.model != "gpt2":
        raise ConversionError(f"{vocabulary.source}: tokenizer.ggml.model is {vocabulary.model!r}; only byte-level BPE "
                              "vocabularies ('gpt2', as llama 3, SmolLM, Qwen and GPT-2 files use) are converted")
    if vocabulary.pre not in PRE_TOKENIZERS:
        raise ConversionError(f"{vocabulary.source}: tokenizer.ggml.pre {vocabulary.pre!r} has no matching "
                              f"`tokenizers` pre-tokenizer here; known: {', '.join(PRE_TOKENIZERS.names())}")
    ids = _ids(vocabulary)
    for name in ("bos", "eos"):
        if name not in vocabulary.special_ids:
            raise ConversionError(f"{vocabulary.source}: no tokenizer.ggml.{name}_token_id")
    return {"tokenizer.json": _tokenizer_json(vocabulary, ids), "tokenizer_config.json": _tokenizer_config(vocabulary)}


def _ids(vocabulary: Vocabulary) -> dict[str, int]:
    ids: dict[str, int] = {}
    for index, token in enumerate(vocabulary.tokens):
        if token in ids:
            raise ConversionError(f"{vocabulary.source}: token {token!r} is listed twice (ids {ids[token]} and {index}); "
                                  "a tokenizer.json vocabulary maps each token to one id")
        ids[token] = index
    for name, index in vocabulary.special_ids.items():
        if not 0 <= index < len(vocabulary.tokens):
            raise ConversionError(f"{vocabulary.source}: tokenizer.ggml.{name}_token_id {index} is outside the "
                                  f"{len(vocabulary.tokens)} tokens")
    return ids


def _tokenizer_json(vocabulary: Vocabulary, ids: dict[str, int]) -> dict[str, Any]:
    added = [{"id": index, "content": token, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": kind == CONTROL}
             for index, (token, kind) in enumerate(zip(vocabulary.tokens, vocabulary.token_types, strict=True))
             if kind in (CONTROL, USER_DEFINED)]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": PRE_TOKENIZERS.get(vocabulary.pre)(),
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": ids, "merges": list(vocabulary.merges)},
    }


def _tokenizer_config(vocabulary: Vocabulary) -> dict[str, Any]:
    config: dict[str, Any] = {f"{name}_token": vocabulary.tokens[index] for name, index in vocabulary.special_ids.items()}
    config.update({"add_bos_token": vocabulary.add_bos, "add_prefix_space": False, "clean_up_tokenization_spaces": False,
                   "model_max_length": vocabulary.context_length, "tokenizer_class": "GPT2Tokenizer"})
    if vocabulary.chat_template is not None:
        config["chat_template"] = vocabulary.chat_template
    return config
