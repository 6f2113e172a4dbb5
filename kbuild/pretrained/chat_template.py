"""A checkpoint's chat template rendered as transformers renders it.

A Hugging Face folder keeps its chat template (Jinja) in `tokenizer_config.json`. transformers renders
it in jinja2's immutable sandbox with `trim_blocks` and `lstrip_blocks`, the loop-controls extension,
a `raise_exception` global and the tokenizer's special tokens as variables; a template is data from a
download, so it never runs in a plain Jinja environment. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from kbuild.pretrained.checkpoint import HF_TOKENIZER_CONFIG, CheckpointError

SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")


class ChatTemplate:
    """A chat template and the special tokens it may name.

    Args:
        source: the Jinja text.
        special_tokens: `bos_token`, `eos_token`, ... as the template's variables.

    Examples:
        >>> template = ChatTemplate.from_folder(Path("pretrained/SmolLM2-135M-Instruct"))
        >>> template.render([{"role": "user", "content": "Hi"}])  # '<|im_start|>system\\n...<|im_start|>assistant\\n'
    """

    def __init__(self, source: str, special_tokens: Mapping[str, str] | None = None):
        self.source = source
        self.special_tokens = dict(special_tokens or {})
        self._template = _compile(source)

    @classmethod
    def from_folder(cls, folder: Path) -> ChatTemplate:
        """The template in `folder/tokenizer_config.json`; a CheckpointError names the file if it has none."""
        path = folder / HF_TOKENIZER_CONFIG
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CheckpointError(f"{path}: cannot read the chat template: {error}") from None
        source = config.get("chat_template") if isinstance(config, dict) else None
        if not isinstance(source, str):
            raise CheckpointError(f"{path} has no chat_template (a string); the checkpoint is not a chat model, "
                                  "or its template is stored elsewhere")
        return cls(source, {name: config[name] for name in SPECIAL_TOKENS if isinstance(config.get(name), str)})

    def render(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True) -> str:
        """The conversation as the model reads it; with `add_generation_prompt`, ending where the
        assistant's reply starts."""
        return self._template.render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                     **self.special_tokens)


def _raise(message: str) -> None:
    from jinja2.exceptions import TemplateError

    raise TemplateError(message)


@lru_cache(maxsize=8)
def _compile(source: str) -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=["jinja2.ext.loopcontrols"])
    environment.globals["raise_exception"] = _raise
    return environment.from_string(source)
