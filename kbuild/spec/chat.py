"""`preprocess.chat`: how `task: chat` reads conversations and formats them for the model.

Pure pydantic (no TensorFlow, no Jinja): `kbuild validate` checks it. The checkpoint's own chat
template (Jinja, in its `tokenizer_config.json`) is rendered by `kbuild.pretrained.chat_template`;
a spec may give a small template of its own instead: each role's prefix and suffix.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from kbuild.spec.base import StrictModel

PROMPT_PLACEHOLDER = "{prompt}"


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
    prompt_template: str | None = None
    """Instruction data (`prompt` + `response` columns): the user message is this text with
    `{prompt}` replaced by the prompt column, e.g. `"Write a short subject line for this email:\n\n{prompt}"`.
    The export's `serving_default` (and `kbuild generate --prompt` on the run) wraps its text the
    same way, so a served request is phrased as training phrased it. Other braces are literal."""

    @field_validator("prompt_template")
    @classmethod
    def _one_placeholder(cls, value: str | None) -> str | None:
        if value is not None and value.count(PROMPT_PLACEHOLDER) != 1:
            raise ValueError(f"expected {PROMPT_PLACEHOLDER} exactly once (where the prompt goes); received "
                             f"{value.count(PROMPT_PLACEHOLDER)} in {value[:60]!r}")
        return value

    def prompt_parts(self) -> tuple[str, str]:
        """The text before and after the prompt in a user message (`("", "")` without a template)."""
        if self.prompt_template is None:
            return "", ""
        before, after = self.prompt_template.split(PROMPT_PLACEHOLDER)
        return before, after

    def user_message(self, prompt: str) -> str:
        """`prompt` as the user message `prompt_template` makes of it."""
        before, after = self.prompt_parts()
        return before + prompt + after
