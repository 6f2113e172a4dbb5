"""`kbuild chat`: a conversation with a chat run or export, kept turn by turn.

Both a run and its export answer through the same graph functions (`kbuild.tasks.chat`): the
template's role prefixes and suffixes come from `chat_format`, the reply from `generate` continuing
the whole conversation rendered with them, cut at the template's end token. On a run, `kbuild chat`
shows the reply as it is decoded (`ChatSession.reply_pieces`: the same greedy tokens, one compiled
cache step per token); an export's reply comes whole, since its decoding is one graph call.

    session = open_chat("runs/dailydialog-smollm2/<stamp>", system="Be brief.")
    session.reply("Hi! How are you?")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kbuild.data.conversations import Message, with_system
from kbuild.errors import KbuildError
from kbuild.generation.generator import Generation
from kbuild.generation.options import GenerationError, GenerationOptions
from kbuild.pretrained.chat_template import RoleFormats
from kbuild.spec.chat import ChatSpec

EXIT, RESET = "/exit", "/reset"


@dataclass
class ChatSession:
    """Args:
        generate: (prompt, max_new_tokens) -> the continuation, stopped at the end token.
        formats: the template's role prefixes and suffixes.
        system: a system message put first in the conversation (None: the template's default).
        max_new_tokens: the most tokens of one reply.
        user_message: what a typed message becomes before the template wraps it.
    """

    generate: Callable[[str, int], str]
    formats: RoleFormats
    system: str | None = None
    max_new_tokens: int = 64
    user_message: Callable[[str], str] = str
    """A typed message -> the user message the model reads (the spec's `preprocess.chat.prompt_template`)."""
    history: list[Message] = field(default_factory=list)
    stream: Callable[[str, int], Iterator[str]] | None = None
    """(prompt, max_new_tokens) -> the continuation in pieces as decoded; None: `generate`'s whole."""

    def prompt(self, message: str) -> str:
        """The conversation so far and `message`, rendered up to where the reply starts."""
        return self.formats.prompt(with_system([*self.history, Message("user", self.user_message(message))],
                                               self.system))

    def reply(self, message: str) -> str:
        """The model's answer to `message`, which joins the conversation with it."""
        answer = self.generate(self.prompt(message), self.max_new_tokens)
        self.history += [Message("user", self.user_message(message)), Message("assistant", answer)]
        return answer

    def reply_pieces(self, message: str) -> Iterator[str]:
        """`reply` in pieces as they are decoded (one piece where the session cannot stream); the
        conversation keeps the whole answer once the last piece is out."""
        prompt = self.prompt(message)
        pieces = self.stream(prompt, self.max_new_tokens) if self.stream else iter([self.generate(prompt, self.max_new_tokens)])
        answer = ""
        for piece in pieces:
            answer += piece
            yield piece
        self.history += [Message("user", self.user_message(message)), Message("assistant", answer)]

    def reset(self) -> None:
        self.history.clear()


def open_chat(path: str | os.PathLike, system: str | None = None, max_new_tokens: int | None = None,
              quantize: str = "none", pick: Callable[[Any], int] | None = None) -> ChatSession:
    """A session with the chat run folder (has spec.yaml) or export (a model folder or version) at
    `path`; `system` and `max_new_tokens` default to the spec's `preprocess.chat`. `quantize`
    (int8, int4) quantises a run's weights as `kbuild export --quantize` does; an export's are
    fixed when it is written. `pick` (a run only: `kbuild.decoding.causal_lm.sampling_pick`)
    draws each next token instead of taking the most likely."""
    import tensorflow as tf

    path = Path(path)
    if (path / "spec.yaml").is_file():
        return run_session(load_chat_run(path, quantize), system, max_new_tokens, pick)
    import tensorflow_text  # noqa: F401  (registers the tf-text ops the graph may use)

    from kbuild.exporter.layout import NotAnExport, resolve_version
    from kbuild.exporter.savedmodel import read_metadata
    from kbuild.exporter.tflite_generator import GENERATOR_KEY

    try:
        version = resolve_version(path)
    except NotAnExport:
        raise KbuildError(f"{path}: neither a run folder (no spec.yaml) nor an export") from None
    if quantize != "none":
        raise GenerationError(f"{version}: an export's weights are fixed when it is written; --quantize applies "
                              f"to a run folder (or export the run with `kbuild export RUN --quantize {quantize}`)")
    metadata = read_metadata(version)
    if metadata.get("task") != "chat":
        raise KbuildError(f"{version}: kbuild chat talks to a chat model; this export is of task {metadata.get('task')}")
    chat = ChatSpec.model_validate(metadata["spec"]["preprocess"]["chat"])
    if GENERATOR_KEY in metadata:
        return tflite_session(version, metadata, chat, system, max_new_tokens, pick)
    if pick is not None:
        raise GenerationError(f"{path}: a SavedModel export decodes greedily inside its graph; sampling (--sampler) "
                              "needs the run folder or a TFLite export")
    loaded = tf.saved_model.load(str(version))
    return _session(loaded.signatures, chat, system, max_new_tokens)


def tflite_session(version: Path, metadata: dict, chat: ChatSpec, system: str | None, max_new_tokens: int | None,
                   pick: Callable[[Any], int] | None = None) -> ChatSession:
    """A session with a TFLite chat export (kbuild.exporter.tflite_generator): its steps continue
    the rendered conversation, greedily or drawing each token with `pick`."""
    import numpy as np

    from kbuild.exporter.tflite_generator import GENERATOR_KEY, TfliteChat, greedy

    model = TfliteChat(version)
    choose = greedy if pick is None else (lambda logits: np.array([pick(row) for row in logits], np.int32))

    def generate(prompt: str, new_tokens: int) -> str:
        return model.complete([prompt], new_tokens, pick=choose)[0].decode("utf-8", errors="replace")

    return _formatted_session(generate, metadata[GENERATOR_KEY]["chat_format"], chat, system, max_new_tokens)


def load_chat_run(path: str | os.PathLike, quantize: str = "none") -> Any:
    """The chat run's `Servable` (its model, its weights quantised as `quantize`, and in-graph
    `generate` and `chat_format` functions)."""
    from kbuild.exporter.serving import load_servable

    return load_servable(str(path), _refuse_other_tasks, quantize)


def run_session(servable: Any, system: str | None = None, max_new_tokens: int | None = None,
                pick: Callable[[Any], int] | None = None) -> ChatSession:
    """A session with a loaded chat run (`load_chat_run`); it streams (`reply_pieces`), and with
    `pick` it samples (then `reply` joins the streamed pieces too)."""
    from kbuild.decoding.causal_lm import decoded_pieces, greedy_pick
    from kbuild.tasks.causal_lm import serving_context
    from kbuild.tasks.chat import stop_token_ids

    session = _session(servable.functions, servable.spec.preprocess.chat, system, max_new_tokens)
    tokenizer = servable.assets.tokenizer
    stops = stop_token_ids(tokenizer, session.formats)
    context = serving_context(servable.spec)
    session.stream = lambda prompt, new: decoded_pieces(servable.model, tokenizer, prompt, new, stops, context,
                                                        pick or greedy_pick)
    if pick is not None:
        session.generate = lambda prompt, new: "".join(session.stream(prompt, new))
    return session


def _session(functions: Any, chat: ChatSpec, system: str | None, max_new_tokens: int | None) -> ChatSession:
    import tensorflow as tf

    call_generate, call_format = functions["generate"], functions["chat_format"]

    def generate(prompt: str, new_tokens: int) -> str:
        out = call_generate(prompt=tf.constant([prompt]), max_new_tokens=tf.constant(new_tokens, tf.int32))
        return out["completion"].numpy()[0].decode("utf-8", errors="replace")

    values = {name: value.numpy().decode("utf-8") for name, value in call_format().items()}
    return _formatted_session(generate, values, chat, system, max_new_tokens)


def _formatted_session(generate: Callable[[str, int], str], values: dict[str, str], chat: ChatSpec,
                       system: str | None, max_new_tokens: int | None) -> ChatSession:
    """A session over `generate` with the template `values` (`chat_format`'s head and role
    prefixes and suffixes) and the spec's chat defaults."""
    formats = RoleFormats({role: (values[f"{role}_prefix"], values[f"{role}_suffix"])
                           for role in ("system", "user", "assistant")}, values["head"])
    return ChatSession(generate, formats, system if system is not None else chat.system,
                       max_new_tokens or chat.max_new_tokens, chat.user_message)


def chat_generation(run: str | os.PathLike, prompt: str, options: GenerationOptions,
                    quantize: str = "none") -> Generation:
    """`kbuild generate --prompt` on a chat run: `prompt` is one user message (wrapped by the spec's
    `preprocess.chat.prompt_template`, as the export's `serving_default` wraps it), answered by the
    run's in-graph greedy decoding (its weights quantised as `quantize`), stopped at the template's
    end token."""
    import tensorflow as tf

    refused = [name for name, given, default in (("--sampler", options.sampler, "greedy"), ("--stop", options.stop, ()))
               if given != default]
    if refused:
        raise GenerationError(f"a chat run decodes greedily inside its graph (as its export does) and stops at the "
                              f"template's end token; drop {' and '.join(refused)}")
    if not prompt.strip():
        raise GenerationError("the prompt is empty; give the user message to answer (e.g. --prompt \"Hi!\")")
    servable = load_chat_run(run, quantize)
    reply = run_session(servable, max_new_tokens=options.max_new_tokens).reply(prompt)
    tokens = int(servable.tokenizer.token_ids(tf.constant([reply])).row_lengths()[0])
    return Generation(prompt, reply, tokens)


def _refuse_other_tasks(spec) -> None:
    if spec.task != "chat":
        raise KbuildError(f"kbuild chat talks to a chat model; this run is of task {spec.task}")


def converse(session: ChatSession, lines: Iterable[str], write: Callable[[str], None],
             write_piece: Callable[[str], None] | None = None) -> int:
    """Answer each line of `lines` in turn (`/reset` forgets the conversation, `/exit` ends it);
    returns the number of replies. With `write_piece`, a reply goes out piece by piece as it is
    decoded, then a newline."""
    replies = 0
    for line in lines:
        message = line.strip()
        if not message:
            continue
        if message == EXIT:
            break
        if message == RESET:
            session.reset()
            write("(conversation reset)")
            continue
        if write_piece is None:
            write(session.reply(message))
        else:
            for piece in session.reply_pieces(message):
                write_piece(piece)
            write_piece("\n")
        replies += 1
    return replies
