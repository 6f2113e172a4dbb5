"""Weight-only int8 / int4 generation (`--quantize`) on a tiny llama fine-tuned in the test until it
answers four questions: the quantised generation graph gives float32's greedy answers and a
perplexity within 2 % of float32's, on a run (`kbuild generate`, `kbuild chat`) and in an export
loaded with tensorflow and tensorflow_text alone; the decoding loop is one traced graph."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("gguf")

from kbuild.data.conversations import Message  # noqa: E402
from tests.test_chat import checkpoint, write_chat_spec  # noqa: E402, F401  (`checkpoint`: the tiny llama fixture)

EXCHANGES = [("the cat", "is the cat"), ("is", "the cat is"), ("hi", "hi the cat"), ("cat", "the cat")]
QUESTIONS = ["the cat", "is", "hi", "cat", "the"]
FIXED_TEXT = "".join(f"<|im_start|>user\n{u}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>\n" for u, a in EXCHANGES)


def chatml(message: str) -> str:
    return f"<|im_start|>user\n{message}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def answering_run(tmp_path_factory, checkpoint):  # noqa: F811
    """The whole tiny llama fine-tuned (60 steps) until it gives each exchange's reply greedily: a
    random model's logits are near ties, where any rounding changes the argmax."""
    import kbuild

    folder = tmp_path_factory.mktemp("quantized-chat")
    conversations = [[Message("user", u), Message("assistant", a)] for u, a in EXCHANGES] * 4
    spec = kbuild.load_spec(write_chat_spec(folder, checkpoint, conversations, lora="trainable: true"),
                            ["train.max_steps=60", "train.epochs=60", "train.optimizer.learning_rate=0.01",
                             "train.loss_on=all"])
    return kbuild.train(spec, run_dir=folder / "run").path


@pytest.fixture(scope="module")
def float_answers(answering_run):
    import tensorflow as tf

    from kbuild.decoding.causal_lm import perplexity
    from kbuild.exporter.serving import load_servable

    servable = load_servable(str(answering_run))
    completions = servable.functions["generate"](tf.constant([chatml(q) for q in QUESTIONS]), tf.constant(12))
    ids = servable.tokenizer.token_ids(tf.constant([FIXED_TEXT])).to_tensor().numpy()
    return [c.decode() for c in completions["completion"].numpy()], perplexity(servable.model, ids)


def test_the_fine_tuned_float_model_answers_each_question(float_answers):
    answers, _ = float_answers
    assert answers[:4] == [reply for _, reply in EXCHANGES]


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantised_generation_gives_float32s_greedy_answers_and_perplexity(answering_run, float_answers, mode):
    import tensorflow as tf

    from kbuild.decoding.causal_lm import perplexity
    from kbuild.exporter.serving import load_servable

    servable = load_servable(str(answering_run), quantize=mode)
    quantized = {layer.path for layer in servable.model._flatten_layers() if layer.quantization_mode == mode}
    # Every projection of the decoder and the tied embedding (input lookup and output logits).
    assert any("token_embedding" in path for path in quantized) and len(quantized) >= 2 * 7 + 1
    completions = servable.functions["generate"](tf.constant([chatml(q) for q in QUESTIONS]), tf.constant(12))
    answers, float_perplexity = float_answers
    assert [c.decode() for c in completions["completion"].numpy()] == answers
    ids = servable.tokenizer.token_ids(tf.constant([FIXED_TEXT])).to_tensor().numpy()
    assert perplexity(servable.model, ids) == pytest.approx(float_perplexity, rel=0.02)
    assert perplexity(servable.model, ids) != float_perplexity  # the kernels changed: not a float copy
    assert_one_graph_traced_once(servable.functions["generate"])


def assert_one_graph_traced_once(generate) -> None:
    """`generate` runs its token loop as a graph While op, traced once for every prompt length, batch
    size and max_new_tokens: no Python runs per token or per request."""
    import tensorflow as tf

    generate(tf.constant([chatml("hi")]), tf.constant(4))
    generate(tf.constant(["is"]), tf.constant(1))
    assert generate.experimental_get_tracing_count() == 1
    graph = generate.get_concrete_function().graph
    ops = {op.type for op in graph.get_operations()}
    ops |= {node.op for function in graph._functions.values() for node in function.definition.node_def}
    assert ops & {"While", "StatelessWhile"}


def test_generate_and_chat_on_a_run_take_quantize(answering_run, float_answers):
    from click.testing import CliRunner

    from kbuild.cli import cli

    answers, _ = float_answers
    # `generate --prompt` on a chat run answers the prompt as one user message.
    result = CliRunner().invoke(cli, ["generate", str(answering_run), "--prompt", "hi", "--max-new-tokens", "8",
                                      "--quantize", "int8", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["completion"] == answers[2]
    result = CliRunner().invoke(cli, ["chat", str(answering_run), "--quantize", "int4", "--max-new-tokens", "8"],
                                input="cat\n")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == answers[3]


def test_generate_on_a_chat_run_refuses_what_its_graph_cannot_do(answering_run):
    from click.testing import CliRunner

    from kbuild.cli import cli

    result = CliRunner().invoke(cli, ["generate", str(answering_run), "--prompt", "hi", "--sampler", "top_p"])
    assert result.exit_code == 2 and "decodes greedily" in result.output and "--sampler" in result.output
    result = CliRunner().invoke(cli, ["generate", str(answering_run), "--prompt", "hi", "--quantize", "int3"])
    assert result.exit_code == 2 and "int3" in result.output


def test_quantize_refuses_an_unknown_mode_and_an_export(answering_run, tmp_path):
    import kbuild
    from kbuild.errors import KbuildError
    from kbuild.generation.chat import open_chat
    from kbuild.layers.quantization import QuantizationError, check_mode

    with pytest.raises(QuantizationError, match=r"unknown quantisation 'int16'.*expected one of: none, int8, int4"):
        check_mode("int16")
    with pytest.raises(KbuildError, match=r"--format tflite does not take --quantize int4"):
        kbuild.export(answering_run, tmp_path / "tfl", fmt="tflite", quantize="int4")
    (tmp_path / "export" / "1").mkdir(parents=True)
    (tmp_path / "export" / "1" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "export" / "1" / "metadata.json").write_text(json.dumps({"task": "chat"}))
    with pytest.raises(KbuildError, match=r"an export's weights are fixed when it is written"):
        open_chat(tmp_path / "export", quantize="int8")


@pytest.mark.slow  # writes a SavedModel with the tokenizer and the decoding loop: minutes on 2 busy cores
@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_a_quantised_export_answers_as_float32_in_a_fresh_process(answering_run, float_answers, mode, tmp_path):
    from click.testing import CliRunner

    from kbuild.cli import cli

    result = CliRunner().invoke(cli, ["export", str(answering_run), "--quantize", mode, "--out", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    version = tmp_path / "q" / "1"
    metadata = json.loads((version / "metadata.json").read_text())
    assert metadata["quantize"] == mode and any("token_embedding" in p for p in metadata["quantized_layers"][mode])
    script = textwrap.dedent(f"""
        import json, sys, tensorflow as tf, tensorflow_text
        loaded = tf.saved_model.load({str(version)!r})
        out = loaded.signatures["generate"](prompt=tf.constant({[chatml(q) for q in QUESTIONS]!r}),
                                            max_new_tokens=tf.constant(12))
        # keras itself may be there: tensorflow_text 2.21 imports it; the export needs neither kbuild nor keras_hub
        assert "keras_hub" not in sys.modules and "kbuild" not in sys.modules
        print(json.dumps([c.decode() for c in out["completion"].numpy()]))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == float_answers[0]


def test_the_cli_offers_exactly_the_registered_quantisations():
    from kbuild.cli import chat, generate
    from kbuild.layers.quantization import NONE, WEIGHT_QUANTIZATIONS

    for command in (generate, chat):
        [option] = [param for param in command.params if param.name == "quantize"]
        assert tuple(option.type.choices) == (NONE, *WEIGHT_QUANTIZATIONS.names())
