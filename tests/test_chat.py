"""`task: chat` on the tiny llama checkpoint (tests/llama_fixtures.py): conversations rendered with the
checkpoint's chat template, the loss on the replies only, LoRA, and an export that generates inside
its graph in a fresh process with tensorflow and tensorflow_text alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gguf")

from kbuild.data.conversations import Message, eou_turns, json_turns  # noqa: E402
from kbuild.errors import DataError, SpecError  # noqa: E402
from kbuild.pretrained.chat_template import ChatTemplate, conversation_segments, role_formats  # noqa: E402
from tests.llama_fixtures import CHAT_TEMPLATE, converted_tiny_llama  # noqa: E402

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou "
    "are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")
CONVERSATION = [Message("user", "hi the cat"), Message("assistant", "the cat is"), Message("user", "the"),
                Message("assistant", "cat is the cat")]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return converted_tiny_llama(tmp_path_factory.mktemp("chat"))


def write_chat_spec(folder, checkpoint, conversations, extra: str = "", lora: str = "lora: {rank: 2}") -> str:
    """A chat spec over `conversations` (lists of messages), one JSON list per line of a text file."""
    data = folder / "train.txt"
    data.write_text("".join(json.dumps([m._asdict() for m in c]) + "\n" for c in conversations), encoding="utf-8")
    spec = folder / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: tinychat
        task: chat
        seed: 1
        data: {{train: {data}, format: text, columns: {{messages: 0}}}}
        preprocess: {{max_length: 128}}
        model: {{backbone: {{from: {checkpoint}, {lora}}}}}
        train: {{epochs: 1, batch_size: 4, max_steps: 2, jit_compile: false, steps_per_execution: 1}}
    """) + extra, encoding="utf-8")
    return str(spec)


# --- conversations and templates (no TensorFlow) ------------------------------------------------------


@pytest.mark.parametrize("source", [CHAT_TEMPLATE, SMOLLM2_TEMPLATE], ids=["chatml", "smollm2-default-system"])
def test_role_formats_render_multi_turn_conversations_as_the_template_does(source):
    template = ChatTemplate(source)
    formats = role_formats(template)
    for messages in (CONVERSATION, [Message("system", "Be brief."), *CONVERSATION], CONVERSATION[:1]):
        as_dicts = [m._asdict() for m in messages]
        assert formats.prompt(messages) == template.render(as_dicts, add_generation_prompt=True)
        rendered = conversation_segments(template, messages)
        assert "".join(t for t, _ in formats.segments(messages)) == template.render(as_dicts, add_generation_prompt=False)
        replies = [text for text, trained in rendered if trained]
        assert replies == [f"{m.content}<|im_end|>\n" for m in messages if m.role == "assistant"]
        assert [t for t, r in formats.segments(messages) if r] == replies


def test_dailydialog_lines_alternate_user_and_assistant_without_the_corpus_spacing():
    line = "Say , Jim , how about a beer ? __eou__ It ' s tempting , but no . __eou__ Why ? __eou__\n"
    assert eou_turns(line) == [Message("user", "Say, Jim, how about a beer?"),
                               Message("assistant", "It's tempting, but no."), Message("user", "Why?")]


def test_a_malformed_conversation_says_what_is_wrong():
    from kbuild.data.conversations import ConversationError

    with pytest.raises(ConversationError, match=r"messages\[1\]: unknown role 'bot'"):
        json_turns('[{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]')


def test_chat_spec_errors_are_located(write_spec, tmp_path):
    from kbuild import load_spec

    path = write_spec(f"""\
        name: c
        task: chat
        data: {{train: {tmp_path / "x.jsonl"}, columns: {{messages: m, prompt: p}}}}
        train: {{loss_on: responses}}
    """)
    with pytest.raises(SpecError) as error:
        load_spec(path)
    message = str(error.value)
    assert "spec.yaml:2:" in message and "set model.backbone.from" in message
    assert "spec.yaml:3:" in message and "give messages (conversations), or prompt and response, not both" in message
    other = write_spec("name: c\ntask: classification\ndata: {builtin: sentiment}\ntrain: {loss_on: all}\n", "other.yaml")
    with pytest.raises(SpecError, match=r"train.loss_on: only task chat reads this field"):
        load_spec(other)


# --- data and loss ---------------------------------------------------------------------------------


def _bundle_and_model(tmp_path, checkpoint, conversations, loss_on="responses"):
    import kbuild
    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import build

    folder = tmp_path / loss_on
    folder.mkdir()
    spec = kbuild.load_spec(write_chat_spec(folder, checkpoint, conversations), [f"train.loss_on={loss_on}"])
    bundle = build(spec, splits=("train",))
    return spec, bundle, TASKS.get("chat").build_model(spec, bundle)


def test_targets_are_weighted_on_the_replies_only(tmp_path, checkpoint):
    """A batch keeps only the targets that carry a loss (`loss_positions`): put back at their
    positions, they are the two replies, each with its end token."""
    _, bundle, _ = _bundle_and_model(tmp_path, checkpoint, [CONVERSATION])
    (x, kept, kept_weights), = bundle.datasets["train"].unbatch().as_numpy_iterator()
    targets, weights = np.zeros(x["token_ids"].shape, np.int32), np.zeros(x["token_ids"].shape, np.float32)
    targets[x["loss_positions"]], weights[x["loss_positions"]] = kept, kept_weights
    assert kept_weights.all() and len(kept) == 14
    runs, current = [], []
    for target, weight in zip(targets, weights, strict=True):
        if weight:
            current.append(target)
        elif current:
            runs, current = [*runs, current], []
    replies = [bundle.tokenizer.detokenize(np.asarray([run], np.int32)).numpy()[0] for run in runs + [current] if run]
    assert replies == [b"the cat is<|im_end|>\n", b"cat is the cat<|im_end|>\n"]


def test_a_token_outside_the_replies_cannot_change_the_loss(tmp_path, checkpoint):
    """The two conversations differ only in a user message after the last reply: the reply-only loss
    is the same for both; the loss on every token is not."""
    from kbuild.tasks import TASKS

    longer = [*CONVERSATION, Message("user", "cat cat the cat is")]
    losses = {}
    for loss_on in ("responses", "all"):
        spec, bundle, model = _bundle_and_model(tmp_path, checkpoint, [[*CONVERSATION, Message("user", "the")], longer],
                                                loss_on)
        loss = TASKS.get("chat").loss(spec)
        (x, y, w), = bundle.datasets["train"].as_numpy_iterator()
        losses[loss_on] = [float(loss(y[i:i + 1], model({k: v[i:i + 1] for k, v in x.items()}), w[i:i + 1]))
                           for i in range(2)]
    assert losses["responses"][0] == pytest.approx(losses["responses"][1], rel=1e-6)
    assert abs(losses["all"][0] - losses["all"][1]) > 1e-3


def test_the_output_layer_runs_at_the_reply_positions_only_and_gives_the_same_loss(tmp_path, checkpoint):
    """The training model gathers the backbone's features at the reply positions before the
    output layer: its logits are the `CausalLM`'s at those positions, so the loss is the same as
    over every position weighted; the saved model is the `CausalLM` itself."""
    import keras
    import keras_hub

    from kbuild.tasks import TASKS
    from kbuild.tasks.causal_lm import at_weighted_targets

    conversations = [CONVERSATION, [Message("user", "is"), Message("assistant", "the cat")]]
    spec, bundle, model = _bundle_and_model(tmp_path, checkpoint, conversations)
    assert model.gathers_features
    # One pass: the train split is reshuffled at every iteration.
    (x, y, w), = bundle.datasets["train"].as_numpy_iterator()
    full_x = {k: v for k, v in x.items() if k != "loss_positions"}  # the inputs are not cut, the targets are
    full_y, full_w = (t.numpy() for t in _put_back(x, y, w))
    assert y.shape == (2, 14) and full_y.shape == (2, 128)
    full_logits = model.causal_lm(full_x)
    kept_logits = model(x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kept_logits),
                               np.take_along_axis(keras.ops.convert_to_numpy(full_logits), x["loss_positions"][..., None], 1),
                               rtol=1e-4, atol=1e-4)
    loss = TASKS.get("chat").loss(spec)
    assert float(loss(y, kept_logits, w)) == pytest.approx(float(loss(full_y, full_logits, full_w)), rel=1e-5)
    again, kept, _ = at_weighted_targets(full_x, full_y, full_w)  # the batch put back is cut the same way
    np.testing.assert_array_equal(again["loss_positions"].numpy()[w > 0], x["loss_positions"][w > 0])
    np.testing.assert_array_equal(kept.numpy()[w > 0], y[w > 0])
    saved = tmp_path / "saved.keras"
    model.save(saved)
    assert isinstance(keras.saving.load_model(saved), keras_hub.models.CausalLM)


def _put_back(x, y, w):
    """Targets and weights `[batch, time]` from the kept ones and their positions (TF ops)."""
    import tensorflow as tf

    shape = tf.shape(x["token_ids"])
    rows = tf.broadcast_to(tf.range(shape[0])[:, None], tf.shape(x["loss_positions"]))
    index = tf.stack([rows, x["loss_positions"]], axis=-1)
    return tf.scatter_nd(index, y * tf.cast(w > 0, y.dtype), shape), tf.scatter_nd(index, w, shape)


def test_bucketed_batches_pad_to_their_bucket_and_score_the_same_tokens(tmp_path, checkpoint):
    """`preprocess.bucketing` groups exchanges by length and pads each batch to its bucket, not to
    max_length (128 here); the token-weighted loss over the split does not change."""
    import kbuild
    from kbuild.data.pipeline import bucket_lengths
    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import build

    short = [Message("user", "the"), Message("assistant", "cat")]
    conversations = [short, CONVERSATION, short, [*CONVERSATION, *CONVERSATION], short]
    task, scores = TASKS.get("chat"), {}
    model = None
    for bucketing in (False, True):
        folder = tmp_path / str(bucketing)
        folder.mkdir()
        spec = kbuild.load_spec(write_chat_spec(folder, checkpoint, conversations),
                                [f"preprocess.bucketing={str(bucketing).lower()}", "train.batch_size=2"])
        bundle = build(spec, splits=("train",))
        model = model or task.build_model(spec, bundle)
        widths = [x["token_ids"].shape[1] for x, _, _ in bundle.datasets["train"]]
        scores[bucketing] = task.evaluate(model, bundle, "train", spec), widths
        assert len(widths) == bundle.datasets["train"].cardinality().numpy()
    assert scores[False][1] == [128, 128, 128]
    assert set(scores[True][1]) <= set(bucket_lengths(128)) and min(scores[True][1]) < 32
    assert scores[True][0]["tokens"] == scores[False][0]["tokens"]
    assert scores[True][0]["loss"] == pytest.approx(scores[False][0]["loss"], rel=1e-5)


def test_conversations_without_a_reply_in_reach_are_an_error(tmp_path, checkpoint):
    with pytest.raises(DataError, match=r"data.train: no token to train on"):
        _bundle_and_model(tmp_path, checkpoint, [[Message("user", "the cat")], [Message("user", "is")]])


def _jsonl_chat_spec(folder, checkpoint, rows: list[str]):
    import kbuild

    data = folder / "train.jsonl"
    data.write_text("".join(row + "\n" for row in rows), encoding="utf-8")
    spec = folder / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: tinychat
        task: chat
        data: {{train: {data}}}
        preprocess: {{max_length: 128}}
        model: {{backbone: {{from: {checkpoint}}}}}
        train: {{batch_size: 4}}
    """), encoding="utf-8")
    return kbuild.load_spec(str(spec)), str(data)


def test_json_lines_with_a_list_of_messages_train_as_multi_turn_chat(tmp_path, checkpoint):
    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import build

    system = [Message("system", "Be brief."), *CONVERSATION]
    rows = [json.dumps({"id": 1, "messages": [m._asdict() for m in CONVERSATION]}),
            json.dumps({"id": 2, "messages": [m._asdict() for m in system]}, ensure_ascii=False)]
    spec, _ = _jsonl_chat_spec(tmp_path, checkpoint, rows)
    bundle = build(spec, splits=("train",))
    from kbuild.data.example import ReadResult

    assert TASKS.get("chat").conversations(ReadResult(bundle.examples["train"]), spec) == [CONVERSATION, system]
    (_, targets, weights), = bundle.datasets["train"].as_numpy_iterator()
    trained = [bundle.tokenizer.detokenize(np.asarray([row[w > 0]], np.int32)).numpy()[0] for row, w in
               zip(targets, weights, strict=True)]
    assert trained == [b"the cat is<|im_end|>\ncat is the cat<|im_end|>\n"] * 2


@pytest.mark.parametrize(("messages", "problem"), [
    ('"hi there"', r"messages: invalid JSON .*expected a JSON list of"),
    ('{"role": "user", "content": "hi"}', r"key 'messages' holds an object; expected a JSON list or a string"),
    ("[]", r"messages: expected a non-empty JSON list of \{role, content\}; received an empty list"),
    ('[{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]', r"messages\[1\]: unknown role 'bot'"),
    ('[{"role": "user"}]', r"messages\[0\]: no 'content' key; the object has keys: role"),
    ('[{"role": "user", "content": 3}]', r"messages\[0\].content: expected a string; received int"),
    ('["hi"]', r"messages\[0\]: expected an object"),
])
def test_a_malformed_messages_list_is_reported_at_its_file_and_line(tmp_path, checkpoint, messages, problem):
    from kbuild.tasks.bundle import build

    good = json.dumps({"messages": [m._asdict() for m in CONVERSATION]})
    spec, data = _jsonl_chat_spec(tmp_path, checkpoint, [good, f'{{"messages": {messages}}}'])
    with pytest.raises(DataError, match=rf"{data}:2: {problem}"):
        build(spec, splits=("train",))


# --- a LoRA run, its export and generation ------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory, checkpoint):
    import kbuild

    folder = tmp_path_factory.mktemp("chat-run")
    conversations = [[Message("user", f"the cat {i}"), *CONVERSATION[1:]] for i in range(12)]
    spec = kbuild.load_spec(write_chat_spec(folder, checkpoint, conversations, lora="lora: {rank: 2, alpha: 4}"))
    return kbuild.train(spec, run_dir=folder / "run")


@pytest.fixture(scope="module")
def chat_export(chat_run):
    import kbuild

    return chat_run, kbuild.export(chat_run.path, chat_run.path.parent / "export" / "tinychat")


def test_a_lora_chat_run_trains_the_adapters_and_reports_the_reply_tokens(chat_run):
    results = chat_run.results
    assert results["steps"] == 2 and results["trainable_parameters"] < results["parameters"] / 10
    assert results["metrics"]["train"]["tokens"] == 12 * 14  # two replies of 7 target tokens each
    assert results["metrics"]["train"]["perplexity"] == pytest.approx(np.exp(results["metrics"]["train"]["loss"]), rel=1e-4)


def test_valid_is_scored_once_the_saved_epochs_validation_is_the_final_score(tmp_path, checkpoint):
    """An LLM's second pass over valid after training cost minutes: the saved epoch's exact
    token-weighted validation stands for it, and equals a fresh `evaluate` of the saved model."""
    import kbuild

    conversations = [[Message("user", f"the cat {i}"), *CONVERSATION[1:]] for i in range(8)]
    path = write_chat_spec(tmp_path, checkpoint, conversations)
    text = Path(path).read_text(encoding="utf-8")
    train = str(tmp_path / "train.txt")
    Path(path).write_text(text.replace(f"train: {train},", f"train: {train}, valid: {train},")
                          .replace("epochs: 1, batch_size: 4, max_steps: 2", "epochs: 2, batch_size: 4"), encoding="utf-8")
    run = kbuild.train(kbuild.load_spec(path), run_dir=tmp_path / "run")
    valid = run.results["metrics"]["valid"]
    assert run.results["scored_rows"]["valid"] == {"rows": 8, "of": 8, "from_validation": True}
    fresh = kbuild.evaluate(run.path, split="valid")
    assert valid["tokens"] == fresh["tokens"] == 8 * 14
    assert valid["loss"] == pytest.approx(fresh["loss"], rel=1e-5)
    assert valid["perplexity"] == pytest.approx(fresh["perplexity"], rel=1e-5)
    logged = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert valid["loss"] in [pytest.approx(epoch["val_token_loss"], rel=1e-5) for epoch in logged]


@pytest.mark.slow  # an export with the tokenizer and the decoding loop in its graph: minutes on 2 busy cores
def test_the_export_generates_in_a_fresh_process_as_the_run_does(chat_export, checkpoint):
    from kbuild.prediction import load_predictor

    run, version = chat_export
    in_process = list(load_predictor(run.path).predict(["the cat", "is"]))
    prompt = ChatTemplate.from_folder(checkpoint).render([{"role": "user", "content": "the cat"}])
    script = textwrap.dedent(f"""
        import json, sys, tensorflow as tf, tensorflow_text
        loaded = tf.saved_model.load({str(version)!r})
        replies = loaded.signatures["serving_default"](text=tf.constant(["the cat", "is"]))["reply"].numpy()
        generated = loaded.signatures["generate"](prompt=tf.constant([{prompt!r}]), max_new_tokens=tf.constant(64))
        formats = {{k: v.numpy().decode() for k, v in loaded.signatures["chat_format"]().items()}}
        assert "keras_hub" not in sys.modules and "kbuild" not in sys.modules
        print(json.dumps({{"replies": [r.decode("utf-8", "replace") for r in replies],
                          "completion": generated["completion"].numpy()[0].decode("utf-8", "replace"),
                          "formats": formats}}))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    assert fresh["replies"] == [row["reply"] for row in in_process]
    # serving_default wraps the message as the checkpoint's template does: the same reply as `generate`
    # continuing the template's rendering, both cut at the end token.
    assert fresh["completion"] == fresh["replies"][0] and "<|im_end|>" not in fresh["completion"]
    assert fresh["formats"]["user_prefix"] == "<|im_start|>user\n" and fresh["formats"]["assistant_suffix"] == "<|im_end|>\n"


@pytest.mark.slow
def test_predict_and_serve_on_the_export_give_the_reply(chat_export):
    from click.testing import CliRunner

    from kbuild.cli import cli

    _, version = chat_export
    result = CliRunner().invoke(cli, ["predict", str(version.parent)], input='{"text": "the cat"}\n')
    assert result.exit_code == 0, result.output
    row = json.loads(result.output.strip().splitlines()[-1])
    assert row["text"] == "the cat" and isinstance(row["reply"], str)

    from starlette.testclient import TestClient

    from kbuild.serve import ServerSettings, create_app, load_repository

    with TestClient(create_app(load_repository(version.parent.parent), ServerSettings())) as client:
        answer = client.post("/v1/models/tinychat:predict", json={"instances": ["the cat"]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0] in (row["reply"], {"reply": row["reply"]})


# --- kbuild chat ---------------------------------------------------------------------------------------


def test_a_chat_session_keeps_the_conversation_as_the_template_renders_it(chat_run, checkpoint):
    from click.testing import CliRunner

    from kbuild.cli import cli
    from kbuild.generation.chat import open_chat

    session = open_chat(chat_run.path, max_new_tokens=4)
    first = session.reply("the cat")
    session.reply("is")
    history = [{"role": "user", "content": "the cat"}, {"role": "assistant", "content": first},
               {"role": "user", "content": "is"}, {"role": "assistant", "content": session.history[-1].content},
               {"role": "user", "content": "cat"}]
    assert session.prompt("cat") == ChatTemplate.from_folder(checkpoint).render(history)
    session.reset()
    assert session.prompt("cat") == ChatTemplate.from_folder(checkpoint).render(history[-1:])

    # A run streams: the pieces, as decoded one cached step at a time, join into the graph's reply,
    # and the conversation keeps it.
    streamed = open_chat(chat_run.path, max_new_tokens=4)
    pieces = list(streamed.reply_pieces("the cat"))
    assert "".join(pieces) == first and streamed.history[-1] == Message("assistant", first)
    assert len(pieces) >= 2 or len(first) <= 1
    # One cache-step function per model, kept across turns: prompts of three lengths trace it at
    # most twice (the second trace relaxes the cache's length), not once a turn.
    from kbuild.decoding.causal_lm import _cache_step
    from kbuild.generation.chat import load_chat_run, run_session

    servable = load_chat_run(chat_run.path)
    turns = run_session(servable, max_new_tokens=3)
    for message in ("is", "the cat is", "cat cat cat cat"):
        list(turns.reply_pieces(message))
    assert 1 <= _cache_step(servable.model).experimental_get_tracing_count() <= 2
    # Sampling on a run: top_k 1 is greedy; a seed repeats its draws.
    from kbuild.decoding.causal_lm import sampling_pick

    assert open_chat(chat_run.path, max_new_tokens=4, pick=sampling_pick(top_k=1)).reply("the cat") == first
    drawn = [open_chat(chat_run.path, max_new_tokens=4, pick=sampling_pick(2.0, top_p=0.95, seed=7)).reply("the cat")
             for _ in range(2)]
    assert drawn[0] == drawn[1]
    result = CliRunner().invoke(cli, ["chat", str(chat_run.path), "--sampler", "top_p", "--seed", "3",
                                      "--max-new-tokens", "3"], input="the cat\n")
    assert result.exit_code == 0, result.output

    result = CliRunner().invoke(cli, ["chat", str(chat_run.path), "--max-new-tokens", "3"],
                                input="the cat\n/reset\nis\n/exit\nnever answered\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("(conversation reset)") == 1 and len(result.output.splitlines()) >= 3

    # `kbuild generate --prompt` on a chat run answers one user message: the session's first reply.
    result = CliRunner().invoke(cli, ["generate", str(chat_run.path), "--prompt", "the cat", "--max-new-tokens", "4",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["completion"] == first
    result = CliRunner().invoke(cli, ["generate", str(chat_run.path), "--prompt", "the cat", "--sampler", "top_p"])
    assert result.exit_code == 2 and "decodes greedily inside its graph" in result.output and "drop --sampler" in result.output


def test_prompt_and_response_columns_and_a_spec_template_make_one_exchange(write_spec, tmp_path):
    from kbuild import load_spec
    from kbuild.data.example import Example, ReadResult
    from kbuild.tasks import TASKS
    from kbuild.tasks.chat import role_formats_for, segmenter

    path = write_spec(f"""\
        name: c
        task: chat
        data: {{train: {tmp_path / "x.jsonl"}, columns: {{prompt: email, response: subject}}}}
        preprocess:
          chat:
            system: Write a subject line.
            template:
              system: {{prefix: "S: ", suffix: "\\n"}}
              user: {{prefix: "Q: ", suffix: "\\n"}}
              assistant: {{prefix: "A: ", suffix: "</s>"}}
        model: {{backbone: {{from: ./ckpt}}}}
    """)
    spec = load_spec(path)
    examples = ReadResult([Example({"prompt": "Lunch at noon?", "response": "Lunch"}, None, 1)])
    (conversation,) = TASKS.get("chat").conversations(examples, spec)
    assert conversation == [Message("system", "Write a subject line."), Message("user", "Lunch at noon?"),
                            Message("assistant", "Lunch")]
    assert segmenter(spec, None)(conversation) == [("S: Write a subject line.\n", False), ("Q: Lunch at noon?\n", False),
                                                   ("A: ", False), ("Lunch</s>", True)]
    assert role_formats_for(spec, None).prompt(conversation[:2]) == "S: Write a subject line.\nQ: Lunch at noon?\nA: "


def test_prompt_template_must_hold_the_placeholder_once_and_wraps_instruction_data_only(write_spec, tmp_path):
    from kbuild import load_spec

    path = write_spec(f"""\
        name: c
        task: chat
        data: {{train: {tmp_path / "x.jsonl"}}}
        preprocess:
          chat: {{prompt_template: "Summarise this."}}
        model: {{backbone: {{from: ./ckpt}}}}
    """)
    with pytest.raises(SpecError) as error:
        load_spec(path)
    assert "spec.yaml:5:" in str(error.value) and "expected {prompt} exactly once" in str(error.value)
    with pytest.raises(SpecError, match=r"--set preprocess.chat.prompt_template=.*wraps the prompt column of instruction data"):
        load_spec(path, ["preprocess.chat.prompt_template=Summarise {prompt}"])


def test_a_prompt_template_wraps_the_prompt_in_training_in_serving_and_in_a_chat_session_and_batches_keep_the_cap(tmp_path, checkpoint):
    import tensorflow as tf

    import kbuild
    from kbuild.data.example import ReadResult
    from kbuild.generation.chat import ChatSession
    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import build
    from kbuild.tasks.causal_lm import SERVING_CONTEXT
    from kbuild.tasks.chat import role_formats_for, user_text_within

    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"email": "the cat", "subject": "is the cat"}) + "\n", encoding="utf-8")
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(f"""\
        name: subjects
        task: chat
        data: {{train: {data}, columns: {{prompt: email, response: subject}}}}
        preprocess:
          max_length: 64
          chat: {{prompt_template: "Subject {{{{for}}}}:\\n{{prompt}}", max_new_tokens: 6}}
        model: {{backbone: {{from: {checkpoint}}}}}
    """), encoding="utf-8")
    spec = kbuild.load_spec(str(tmp_path / "spec.yaml"))
    wrapped = "Subject {{for}}:\nthe cat"  # other braces are literal
    bundle = build(spec, splits=("train",))
    task = TASKS.get("chat")
    assert task.conversations(ReadResult(bundle.examples["train"]), spec) == [
        [Message("user", wrapped), Message("assistant", "is the cat")]]

    functions = task.serving_functions(task.build_model(spec, bundle), bundle, spec)
    formats = role_formats_for(spec, bundle.tokenizer)

    def completion(message):
        prompt = tf.constant([formats.prompt([Message("user", message)])])
        return functions["generate"](prompt, tf.constant(6))["completion"].numpy()[0]

    served = functions["serving_default"](tf.constant(["the cat"]))["reply"].numpy()[0]
    assert served == completion(wrapped) and served != completion("the cat")
    session = ChatSession(lambda prompt, n: "ok", formats, user_message=spec.preprocess.chat.user_message)
    assert session.prompt("the cat") == formats.prompt([Message("user", wrapped)])

    # A message longer than the export's cache loses its end, never the instruction and template
    # before it (a raw prompt's start would go: continue_in_graph keeps the end); a short one is
    # unchanged.
    before, after = formats.prompt([Message("user", spec.preprocess.chat.user_message("\x00"))]).split("\x00")
    long = " ".join(["the cat is"] * 900)
    kept, short = (t.decode() for t in user_text_within(bundle.tokenizer, tf.constant([long, "the cat"]), before, after,
                                                        SERVING_CONTEXT - 6).numpy())
    assert short == "the cat"
    assert long.startswith(kept) and 500 < len(kept) < len(long)
    prompt = formats.prompt([Message("user", spec.preprocess.chat.user_message(kept))])
    assert prompt.startswith(before) and len(bundle.tokenizer.token_ids(tf.constant([prompt])).to_list()[0]) <= SERVING_CONTEXT - 6
    # The serving graph runs on a message longer than its cache and answers the cut prompt.
    served_long = [functions["serving_default"](tf.constant([long + end]))["reply"].numpy()[0] for end in (" cat", " is the")]
    assert served_long == [completion(spec.preprocess.chat.user_message(kept))] * 2


    # Prompts of different lengths share one buffer: each reply is still at most max_new_tokens
    # tokens, and the one its prompt gets alone.
    prompts = [formats.prompt([Message("user", text)]) for text in ("the", "the cat is the cat is the cat is the cat")]
    together = functions["generate"](tf.constant(prompts), tf.constant(2))["completion"].numpy().tolist()
    alone = [functions["generate"](tf.constant([prompt]), tf.constant(2))["completion"].numpy()[0] for prompt in prompts]
    assert together == alone
    assert all(len(bundle.tokenizer.token_ids(tf.constant([reply])).to_list()[0]) <= 2 for reply in together)


def test_chat_starter_spec_validates_as_instruction_data(write_spec):
    from kbuild import load_spec
    from kbuild.spec.templates import starter_spec

    spec = load_spec(write_spec(starter_spec("chat")))
    assert spec.task == "chat" and set(spec.data.columns) == {"prompt", "response"}
    assert spec.preprocess.chat.user_message("Hi") == "Write a short subject line for this email:\n\nHi"
    assert spec.model.backbone.lora.rank == 8
