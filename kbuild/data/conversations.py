"""Conversations read from a text column: a JSON list of {role, content}, or DailyDialog's
utterances ending in ` __eou__` (alternating user and assistant). Plain Python, no TensorFlow.

A conversation is a list of `Message`s; `task: chat` renders it with a chat template and trains on
the assistant's messages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import NamedTuple

ROLES = ("system", "user", "assistant")
END_OF_UTTERANCE = "__eou__"


class Message(NamedTuple):
    role: str
    content: str


class ConversationError(ValueError):
    """A text that is not a conversation; the message says why (the caller adds file and line)."""


def json_turns(text: str) -> list[Message]:
    """`[{"role": "user", "content": "Hi"}, ...]` (roles: system, user, assistant)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConversationError(f"messages: invalid JSON ({error.msg} at column {error.colno}); expected a JSON "
                                "list of {\"role\": ..., \"content\": ...}") from None
    if not isinstance(value, list) or not value:
        raise ConversationError(f"messages: expected a non-empty JSON list of {{role, content}}; received "
                                f"{'an empty list' if value == [] else type(value).__name__}")
    return [_message(i, item) for i, item in enumerate(value)]


def _message(index: int, item: object) -> Message:
    """One `{"role": ..., "content": ...}` of a JSON conversation, or what is wrong with it."""
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise ConversationError(f"{where}: expected an object {{\"role\": ..., \"content\": ...}}; received "
                                f"{type(item).__name__}")
    for key in ("role", "content"):
        if key not in item:
            raise ConversationError(f"{where}: no {key!r} key; the object has keys: {', '.join(map(str, item)) or 'none'}")
        if not isinstance(item[key], str):
            raise ConversationError(f"{where}.{key}: expected a string; received {type(item[key]).__name__}")
    if item["role"] not in ROLES:
        raise ConversationError(f"{where}: unknown role {item['role']!r}; expected one of: {', '.join(ROLES)}")
    return Message(item["role"], item["content"])


_SPACE_BEFORE = re.compile(r"\s+([,.!?;:%)\]’”])")
_SPACE_AFTER = re.compile(r"([(\[$‘“])\s+")
_APOSTROPHE = re.compile(r"(\w) ?['’] ?(s|t|ll|re|ve|d|m)\b")


def eou_turns(text: str) -> list[Message]:
    """DailyDialog: `utterance __eou__ utterance __eou__ ...`, user first, then turn about; the
    corpus's spaces around punctuation (`Say , Jim ?`, `it ' s`) are taken out."""
    utterances = [part.strip() for part in text.split(END_OF_UTTERANCE)]
    utterances = [_untokenize(part) for part in utterances if part]
    if not utterances:
        raise ConversationError(f"messages: no utterance (each ends with {END_OF_UTTERANCE})")
    return [Message(ROLES[1 + i % 2], utterance) for i, utterance in enumerate(utterances)]


def _untokenize(text: str) -> str:
    text = _APOSTROPHE.sub(r"\1'\2", text)
    return _SPACE_AFTER.sub(r"\1", _SPACE_BEFORE.sub(r"\1", text))


TURNS: dict[str, Callable[[str], list[Message]]] = {"json": json_turns, "eou": eou_turns}
"""`preprocess.chat.turns` -> the parser of one `messages` text."""


def with_system(messages: list[Message], system: str | None) -> list[Message]:
    """`messages` with a system message first, when `system` is given and they have none."""
    if system is None or (messages and messages[0].role == "system"):
        return messages
    return [Message("system", system), *messages]
