"""Chat: fine-tune a pretrained causal language model (`model.backbone.from` a decoder checkpoint)
on conversations, with the loss on the assistant's replies only (`train.loss_on: responses`, the
default) or on every token (`all`).

Each example is a conversation: a `messages` column (a JSON list of {role, content}, or DailyDialog
turns, `preprocess.chat.turns`) or `prompt` + `response` columns (one user message, one reply). It is
rendered with the checkpoint's chat template (Jinja, rendered as transformers renders it) or the
spec's role prefixes and suffixes, tokenized piece by piece, and every target token gets a weight:
1 where it belongs to a reply (its content and the role's end token), 0 elsewhere and on padding.
The loss is the weighted mean over tokens (`mean_with_sample_weight`), so prompt tokens carry none.

The export generates inside its graph (kbuild.decoding.causal_lm): `serving_default(text)` wraps one
user message in the template and returns the reply; `generate(prompt, max_new_tokens)` continues a
raw prompt; `chat_format()` gives the template's role prefixes and suffixes (what `kbuild chat` keeps
a conversation with). All three stop at the template's end token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from kbuild.data.conversations import TURNS, ConversationError, Message, with_system
from kbuild.errors import DataError
from kbuild.names import TEXT_INPUT
from kbuild.pretrained.checkpoint import CAUSAL_LM, CheckpointError
from kbuild.tasks.base import TASKS, SplitData, Task
from kbuild.tasks.causal_lm import (
    PADDING_MASK,
    TOKEN_IDS,
    TOKEN_LOSS,
    CausalLmTraining,
    serving_context,
    weighted_dataset,
)

if TYPE_CHECKING:
    from kbuild.data.example import ReadResult
    from kbuild.pretrained.chat_template import RoleFormats, Segment
    from kbuild.spec import Spec
    from kbuild.tasks.bundle import Assets, DataBundle

MESSAGES, PROMPT, RESPONSE = "messages", "prompt", "response"
FORMAT_KEYS = ("head", "system_prefix", "system_suffix", "user_prefix", "user_suffix", "assistant_prefix",
               "assistant_suffix")
"""The outputs of the export's `chat_format` signature."""


class ChatTask(CausalLmTraining, Task):
    name = "chat"
    inputs = ()
    optional_inputs = (MESSAGES, PROMPT, RESPONSE)
    structured_inputs = (MESSAGES,)
    uses_labels = False
    checkpoint_kind = CAUSAL_LM
    backbone_init = False
    logged_metrics = ("perplexity", TOKEN_LOSS)
    owned_fields = (("train", "loss_on"), ("preprocess", "chat"))

    def roles(self) -> tuple[str, ...]:
        return self.optional_inputs

    def default_columns(self) -> dict[str, str]:
        return {MESSAGES: MESSAGES}

    def serving_inputs(self, spec: Spec) -> tuple[str, ...]:
        return (TEXT_INPUT,)

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        if spec.model.backbone is None:
            yield ("task",), ("task chat fine-tunes a pretrained causal language model: set model.backbone.from "
                               "to its folder (e.g. ./pretrained/SmolLM2-135M-Instruct, from `make pretrained`)")
        columns = set(spec.data.columns)
        if MESSAGES in columns and columns & {PROMPT, RESPONSE}:
            yield ("data", "columns"), "give messages (conversations), or prompt and response, not both"
        elif MESSAGES not in columns and not {PROMPT, RESPONSE} <= columns:
            yield ("data", "columns"), ("no messages column given; task chat reads messages (a conversation), or "
                                        "prompt and response; e.g. columns: {messages: messages}")
        if spec.preprocess.chat.turns != "json" and MESSAGES not in columns:
            yield ("preprocess", "chat", "turns"), "turns says how the messages column is written; there is none"
        if spec.preprocess.chat.prompt_template is not None and MESSAGES in columns:
            yield ("preprocess", "chat", "prompt_template"), ("prompt_template wraps the prompt column of instruction "
                                                              "data; this spec reads messages (conversations)")

    # --- data ------------------------------------------------------------------------------------
    def texts(self, split: ReadResult) -> list[str]:
        return []  # the checkpoint's tokenizer learns nothing

    def label_vocabulary(self, train: ReadResult) -> list[str]:
        return []

    def conversations(self, split: ReadResult, spec: Spec) -> list[list[Message]]:
        """Each example's messages (a system message first when `preprocess.chat.system` says)."""
        chat = spec.preprocess.chat
        parse = TURNS[chat.turns]
        found = []
        for example in split.examples:
            if MESSAGES in example.inputs:
                try:
                    messages = parse(example[MESSAGES])
                except ConversationError as error:
                    raise DataError(str(error), split.source, example.line) from None
            else:
                messages = [Message("user", chat.user_message(example[PROMPT])), Message("assistant", example[RESPONSE])]
            found.append(with_system(messages, chat.system))
        return found

    def make_dataset(self, bundle: DataBundle, split: ReadResult, spec: Spec, key: str, train: bool) -> SplitData:
        """`({token_ids, padding_mask}, next ids, weights)` batches, `preprocess.max_length` tokens
        (a longer conversation loses its end); a train split with no token to learn is an error."""
        import functools

        segment = segmenter(spec, bundle.tokenizer)
        pieces = [segment(messages) for messages in self.conversations(split, spec)]
        features, targets, weights = encode_conversations(bundle.tokenizer, pieces, spec.preprocess.max_length,
                                                          spec.train.loss_on)
        if train and not weights.any():
            raise DataError(f"{key}: no token to train on in {split.source}: with train.loss_on: responses the loss "
                            "reads the assistant's replies only, and no conversation has one within "
                            f"preprocess.max_length ({spec.preprocess.max_length})")
        factory = functools.partial(weighted_dataset, features, targets, weights, spec.train.batch_size,
                                    shuffle=train, seed=spec.seed, pad_id=bundle.tokenizer.pad_id,
                                    bucketing=spec.preprocess.bucketing, at_weighted=spec.train.loss_on == "responses")
        return SplitData(factory, len(targets), features)

    # --- serving ---------------------------------------------------------------------------------
    def serving_functions(self, model: Any, assets: Assets, spec: Spec) -> dict[str, Any]:
        import keras_hub
        import tensorflow as tf

        from kbuild.decoding.causal_lm import continue_in_graph

        tokenizer = assets.tokenizer
        formats = role_formats_for(spec, tokenizer)
        stop_ids = stop_token_ids(tokenizer, formats)
        context = serving_context(spec)
        sampler = keras_hub.samplers.GreedySampler()
        prompt_of = reply_prompts(spec, tokenizer)

        def reply(prompts, max_new_tokens):
            return continue_in_graph(model, tokenizer, sampler, prompts, max_new_tokens, stop_ids, context)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=TEXT_INPUT)])
        def serve(text):
            return {"reply": reply(prompt_of(text), tf.constant(spec.preprocess.chat.max_new_tokens))}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompt"),
                                      tf.TensorSpec([], tf.int32, name="max_new_tokens")])
        def generate(prompt, max_new_tokens):
            completion = reply(prompt, max_new_tokens)
            return {"completion": completion, "text": tf.strings.join([prompt, completion])}

        values = format_values(formats)

        @tf.function(input_signature=[])
        def chat_format():
            return {name: tf.constant(value) for name, value in values.items()}

        return {"serving_default": serve, "generate": generate, "chat_format": chat_format}

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        return [{TEXT_INPUT: text, "reply": reply.decode("utf-8", errors="replace")}
                for text, reply in zip(texts, outputs["reply"], strict=True)]


TASKS.register("chat")(ChatTask())


# --- formatting and encoding (plain functions, so tests and `kbuild chat` call them directly) ---------
def reply_prompts(spec: Spec, tokenizer: Any) -> Callable[[Any], Any]:
    """user messages (strings `[batch]`, TF ops) -> the prompts `serving_default` continues: each
    message in the chat template (with the spec's system message), cut to leave the reply its room."""
    import tensorflow as tf

    chat, probe = spec.preprocess.chat, "\x00"
    formats = role_formats_for(spec, tokenizer)
    before, after = formats.prompt(with_system([Message("user", chat.user_message(probe))], chat.system)).split(probe)
    room = serving_context(spec) - chat.max_new_tokens

    def prompts(text: Any) -> Any:
        return tf.strings.join([before, user_text_within(tokenizer, text, before, after, room), after])

    return prompts


def user_text_within(tokenizer: Any, text: Any, before: str, after: str, room: int) -> Any:
    """Each user text (strings `[batch]`, TF ops) cut to its first tokens, so that `before + text +
    after` holds at most `room` tokens. `continue_in_graph` keeps a prompt's end, right for a
    raw continuation; for one message wrapped in the template that would cut the instruction and
    the system message off a long email, so the message's end goes instead, as training cuts an
    exchange (it keeps the beginning). A text that fits comes back unchanged (byte-level BPE
    decodes to the very bytes it read)."""
    import tensorflow as tf

    frame = tf.reduce_sum(tokenizer.token_ids(tf.constant([before, after])).row_lengths())
    keep = tf.maximum(tf.cast(room, tf.int64) - tf.cast(frame, tf.int64), 1)
    ids = tokenizer.token_ids(text)
    kept = tf.ragged.boolean_mask(ids, tf.ragged.range(ids.row_lengths()) < keep)
    return tf.where(ids.row_lengths() > keep, tokenizer.detokenize(kept), text)


def role_formats_for(spec: Spec, tokenizer: Any) -> RoleFormats:
    """The spec's template as role prefixes and suffixes, or those read off the checkpoint's."""
    from kbuild.pretrained.chat_template import RoleFormats, role_formats

    template = spec.preprocess.chat.template
    if template != "checkpoint":
        return RoleFormats({role: (getattr(template, role).prefix, getattr(template, role).suffix)
                            for role in ("system", "user", "assistant")})
    if tokenizer.chat_template is None:
        raise CheckpointError("preprocess.chat.template: the checkpoint has no chat template (no chat_template in "
                              "its tokenizer_config.json); give one as role prefixes and suffixes")
    return role_formats(tokenizer.chat_template)


def segmenter(spec: Spec, tokenizer: Any):
    """messages -> the rendered pieces and whether each is a reply: the checkpoint's Jinja template
    (checked once to agree with the role prefixes and suffixes the export formats with), or the
    spec's template."""
    from kbuild.pretrained.chat_template import conversation_segments

    formats = role_formats_for(spec, tokenizer)
    if spec.preprocess.chat.template != "checkpoint":
        return formats.segments
    template = tokenizer.chat_template
    probe = [Message("system", "s"), Message("user", "u"), Message("assistant", "a"), Message("user", "v"),
             Message("assistant", "b")]
    for messages in (probe, probe[1:]):
        if _characters(conversation_segments(template, messages)) != _characters(formats.segments(messages)):
            raise CheckpointError("preprocess.chat.template: the checkpoint's chat template is not role prefixes and "
                                  "suffixes around each message, so the export could not format conversations as "
                                  "training did; give the template as role prefixes and suffixes")
    return lambda messages: conversation_segments(template, messages)


def _characters(segments: Sequence[Segment]) -> list[tuple[str, bool]]:
    return [(char, trained) for text, trained in segments for char in text]


def encode_conversations(tokenizer: Any, conversations: Sequence[Sequence[Segment]], max_length: int,
                         loss_on: str) -> tuple[dict[str, Any], Any, Any]:
    """(inputs {token_ids, padding_mask} `[n, max_length]`, next-token targets, float weights): each
    piece tokenized on its own (the template's pieces meet at special tokens), weight 1 on a target
    token of a reply (every real token under `loss_on: all`)."""
    import numpy as np
    import tensorflow as tf

    texts = sorted({text for pieces in conversations for text, _ in pieces})
    ids_of: dict[str, list[int]] = {}
    for start in range(0, len(texts), 4096):
        chunk = texts[start:start + 4096]
        for text, ids in zip(chunk, tokenizer.token_ids(tf.constant(chunk)).to_list(), strict=True):
            ids_of[text] = ids
    count = len(conversations)
    token_ids = np.full((count, max_length), tokenizer.pad_id, np.int32)
    targets = np.zeros((count, max_length), np.int32)
    weights = np.zeros((count, max_length), np.float32)
    lengths = np.zeros((count, 1), np.int32)
    for row, pieces in enumerate(conversations):
        ids = [i for text, _ in pieces for i in ids_of[text]][: max_length + 1]
        trained = [loss_on == "all" or reply for text, reply in pieces for _ in ids_of[text]][: max_length + 1]
        length = lengths[row, 0] = max(len(ids) - 1, 0)
        token_ids[row, :length], targets[row, :length] = ids[:-1], ids[1:]
        weights[row, :length] = trained[1:]
    # int32, the backbone's declared input type: MirroredStrategy cannot split a bool tensor.
    padding_mask = (np.arange(max_length)[None, :] < lengths).astype(np.int32)
    return {TOKEN_IDS: token_ids, PADDING_MASK: padding_mask}, targets, weights


def stop_token_ids(tokenizer: Any, formats: RoleFormats) -> tuple[int, ...]:
    """Generation stops at the first token of the template's reply suffix (`<|im_end|>`), and at
    the checkpoint's end token."""
    import tensorflow as tf

    ids = set()
    if formats.end.strip():
        ids.add(int(tokenizer.token_ids(tf.constant([formats.end])).to_list()[0][0]))
    if tokenizer.end_id is not None:
        ids.add(int(tokenizer.end_id))
    return tuple(sorted(ids))


def format_values(formats: RoleFormats) -> dict[str, str]:
    """`chat_format`'s outputs: the head and each role's prefix and suffix."""
    values = {"head": formats.head}
    for role in ("system", "user", "assistant"):
        values[f"{role}_prefix"], values[f"{role}_suffix"] = formats.roles[role]
    return values
