"""A checkpoint's chat template rendered as transformers renders it.

A Hugging Face folder keeps its chat template (Jinja) in `tokenizer_config.json`. transformers renders
it in jinja2's immutable sandbox with `trim_blocks` and `lstrip_blocks`, the loop-controls extension,
a `raise_exception` global and the tokenizer's special tokens as variables; a template is data from a
download, so it never runs in a plain Jinja environment. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


Segment = tuple[str, bool]
"""A piece of a rendered conversation and whether it is the assistant's (a reply the model learns)."""


def conversation_segments(template: ChatTemplate, messages: Sequence[tuple[str, str]]) -> list[Segment]:
    """The conversation rendered by `template`, cut where the assistant's replies start and end:
    each reply is what rendering it adds after the generation prompt (its content and the role's
    end, e.g. `Hello.<|im_end|>\\n`), as transformers finds assistant tokens.

    Raises:
        CheckpointError: the template does not render a conversation as the one before it plus
            the new message (then no piece of text belongs to one message alone).
    """
    dicts = [{"role": role, "content": content} for role, content in messages]
    segments: list[Segment] = []
    done = ""
    for k, (role, _) in enumerate(messages):
        full = template.render(dicts[: k + 1], add_generation_prompt=False)
        if role == "assistant":
            context = template.render(dicts[:k], add_generation_prompt=True)
            _check_prefix(context, done, k)
            _check_prefix(full, context, k)
            segments += [(context[len(done):], False), (full[len(context):], True)]
        else:
            _check_prefix(full, done, k)
            segments.append((full[len(done):], False))
        done = full
    return [(text, trained) for text, trained in segments if text]


def _check_prefix(text: str, prefix: str, k: int) -> None:
    if not text.startswith(prefix):
        raise CheckpointError(f"the chat template renders message {k} by changing what it rendered before it; "
                              "kbuild cannot tell the replies apart: give preprocess.chat.template as role "
                              "prefixes and suffixes")


@dataclass(frozen=True)
class RoleFormats:
    """A chat template as text around each message: what the exported graph formats a
    conversation with (it holds no Jinja).

    Args:
        roles: role -> (prefix, suffix) around its content.
        head: text before a conversation that starts without a system message (a template's
            default system prompt), else empty.
    """

    roles: Mapping[str, tuple[str, str]]
    head: str = ""

    @property
    def generation_prompt(self) -> str:
        """Where the assistant's reply starts."""
        return self.roles["assistant"][0]

    @property
    def end(self) -> str:
        """What ends a reply (its first token stops generation)."""
        return self.roles["assistant"][1]

    def segments(self, messages: Sequence[tuple[str, str]]) -> list[Segment]:
        """Like `conversation_segments`: prefixes and prompts untrained, each reply and its suffix trained."""
        segments: list[Segment] = [] if messages and messages[0][0] == "system" else [(self.head, False)]
        for role, content in messages:
            prefix, suffix = self.roles[role]
            segments += [(prefix, False), (content + suffix, role == "assistant")] if role == "assistant" else [
                (prefix + content + suffix, False)]
        return [(text, trained) for text, trained in segments if text]

    def prompt(self, messages: Sequence[tuple[str, str]]) -> str:
        """The conversation rendered, ending where the assistant's reply starts."""
        return "".join(text for text, _ in self.segments(messages)) + self.generation_prompt


SYSTEM_PROBE, USER_PROBE, REPLY_PROBE = "\x01system\x01", "\x01user\x01", "\x01reply\x01"


def role_formats(template: ChatTemplate) -> RoleFormats:
    """Each role's prefix and suffix, and the default head, read off `template`'s renderings of
    probe conversations (a template that wraps roles in a fixed way, as ChatML does). The caller
    checks that they render conversations as the template does (`conversation_segments`)."""

    def render(*messages: tuple[str, str], generation: bool = False) -> str:
        return template.render([{"role": r, "content": c} for r, c in messages], add_generation_prompt=generation)

    def split(text: str, probe: str) -> tuple[str, str]:
        if text.count(probe) != 1:
            raise CheckpointError("the chat template does not write each message's content once, as given; "
                                  "give preprocess.chat.template as role prefixes and suffixes")
        before, after = text.split(probe)
        return before, after

    system = ("system", SYSTEM_PROBE)
    system_text = render(system)
    roles = {"system": split(system_text, SYSTEM_PROBE)}
    for role, probe in (("user", USER_PROBE), ("assistant", REPLY_PROBE)):
        text = render(system, (role, probe))
        _check_prefix(text, system_text, 1)
        roles[role] = split(text[len(system_text):], probe)
    user = render(("user", USER_PROBE))
    head = user[: user.index(USER_PROBE)].removesuffix(roles["user"][0])
    asked = render(("user", USER_PROBE), generation=True)
    generation = asked[len(user):]
    if generation != roles["assistant"][0]:
        raise CheckpointError(f"the chat template's generation prompt {generation!r} is not the assistant's prefix "
                              f"{roles['assistant'][0]!r}; give preprocess.chat.template as role prefixes and suffixes")
    return RoleFormats(roles, head)
