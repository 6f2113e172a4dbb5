"""`preprocess.chat`: how `task: chat` reads conversations and formats them for the model.

Pure pydantic (no TensorFlow, no Jinja): `kbuild validate` checks it. The checkpoint's own chat
template (Jinja, in its `tokenizer_config.json`) is rendered by `kbuild.pretrained.chat_template`;
a spec may give a small template of its own instead: each role's prefix and suffix.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kbuild.spec.base import StrictModel


class RoleFormat(StrictModel):
    """The text around one message of a role: `prefix + content + suffix`."""

    prefix: str = ""
    suffix: str = ""


class ChatTemplateSpec(StrictModel):
    """A chat template as role prefixes and suffixes. ChatML, for example:

        user: {prefix: "<|im_start|>user\\n", suffix: "<|im_end|>\\n"}
        assistant: {prefix: "<|im_start|>assistant\\n", suffix: "<|im_end|>\\n"}

    The reply starts after `assistant.prefix`; generation stops at the first token of
    `assistant.suffix` (give the checkpoint's end token there)."""

    system: RoleFormat = Field(default_factory=RoleFormat)
    user: RoleFormat
    assistant: RoleFormat


class ChatSpec(StrictModel):
    """What `task: chat` reads and how it formats conversations."""

    template: Literal["checkpoint"] | ChatTemplateSpec = "checkpoint"
    """`checkpoint`: the chat template in the checkpoint's tokenizer_config.json (rendered as
    transformers renders it, in jinja2's sandbox), or role prefixes and suffixes."""
    turns: Literal["json", "eou"] = "json"
    """How the `messages` column holds a conversation: `json`, a JSON list of {role, content};
    `eou`, utterances each ending in ` __eou__` (DailyDialog), alternating user and assistant,
    user first, with the spaces DailyDialog puts around punctuation taken out."""
    system: str | None = None
    """A system message put first in every conversation that has none (and in every served one)."""
    max_new_tokens: int = Field(default=64, ge=1, le=4096)
    """Tokens the exported `serving_default` (and `kbuild chat`, by default) may add to a reply."""
