"""A chat run exported as TFLite (`kbuild export --format tflite [--quantize dynamic]`): the tiny llama
fine-tuned until it answers (tests/test_quantized_generation.py) gives the same greedy replies
through the converted prefill/decode steps as through the SavedModel's in-graph loop, in a batch
of prompts of different lengths and with a prompt longer than a prefill chunk, read back by
`kbuild predict` in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

pytest.importorskip("gguf")

from tests.test_chat import checkpoint  # noqa: E402, F401  (the tiny llama fixture)
from tests.test_quantized_generation import (  # noqa: E402, F401  (fixtures)
    QUESTIONS,
    answering_run,
    chatml,
    float_answers,
)


@pytest.fixture(scope="module")
def exports(answering_run, tmp_path_factory):  # noqa: F811
    import kbuild

    root = tmp_path_factory.mktemp("tflite-chat")
    return {mode: kbuild.export(answering_run, root / mode, fmt="tflite", quantize=mode) for mode in ("none", "dynamic")}


@pytest.mark.parametrize("mode", ["none", "dynamic"])
def test_a_tflite_chat_export_replies_as_the_savedmodel_does(exports, answering_run, mode):  # noqa: F811
    from kbuild.exporter.serving import load_servable
    from kbuild.exporter.tflite_generator import TfliteChat
    from kbuild.prediction import load_predictor

    expected = [row["reply"] for row in load_predictor(answering_run).predict(QUESTIONS)]
    # One batch of prompts of different lengths, as `kbuild predict` sends them.
    assert [row["reply"] for row in load_predictor(exports[mode]).predict(QUESTIONS)] == expected
    metadata = json.loads((exports[mode] / "metadata.json").read_text())
    assert metadata["format"] == "tflite" and metadata["quantize"] == mode
    check = metadata["generator"]["verification"]
    assert check["greedy_agreement"] == 1.0
    if mode == "none":
        assert check["max_abs_logit_difference"] < 1e-3 * check["logit_range"]
    # A raw prompt longer than a prefill chunk: the same continuation as the SavedModel's `generate`.
    import tensorflow as tf

    long_prompt = chatml(" ".join(["the cat is"] * 12))
    servable = load_servable(str(answering_run))
    reference = servable.functions["generate"](tf.constant([long_prompt, chatml("hi")]), tf.constant(10))
    chat = TfliteChat(exports[mode])
    assert len(chat._ids("prompt", [long_prompt])[0]) > 32
    assert chat.complete([long_prompt, chatml("hi")], 10) == list(reference["completion"].numpy())


def test_dynamic_range_stores_int8_weights(exports):
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    def int8_weights(version) -> int:
        model = flatbuffer_utils.read_model(str(version / "model.tflite"))
        return sum(1 for graph in model.subgraphs for tensor in graph.tensors
                   if tensor.type == schema.TensorType.INT8 and model.buffers[tensor.buffer].data is not None)

    assert int8_weights(exports["none"]) == 0
    # The embedding and every projection of both layers (shared by the signatures' subgraphs).
    assert int8_weights(exports["dynamic"]) >= 2 * 7 + 1


def test_kbuild_predict_reads_a_tflite_chat_export_in_a_fresh_process(exports, float_answers):  # noqa: F811
    answers, _ = float_answers
    # The export's model folder (its highest version), as a user points `kbuild predict` at it.
    result = subprocess.run([sys.executable, "-m", "kbuild.cli", "predict", str(exports["dynamic"].parent)],
                            input="".join(q + "\n" for q in QUESTIONS[:2]), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [json.loads(line)["reply"] for line in result.stdout.splitlines()] == answers[:2]


def test_calibrated_int8_is_refused_for_a_language_model(answering_run, tmp_path):  # noqa: F811
    from click.testing import CliRunner

    from kbuild.cli import cli

    result = CliRunner().invoke(cli, ["export", str(answering_run), "--format", "tflite", "--quantize", "int8",
                                      "--out", str(tmp_path / "t")])
    assert result.exit_code != 0
    assert "a language model exports as none, dynamic, float16" in result.output
    assert not (tmp_path / "t").exists()


def test_the_loop_stops_each_row_at_its_stop_token_and_budget():
    import numpy as np

    from kbuild.exporter.tflite_generator import TfliteCausalLm

    class Counting(TfliteCausalLm):
        """A fake model whose next token is the current one plus one (so the loop alone is tested)."""

        def __init__(self):
            self.layers, self.kv_heads, self.head_dim, self.vocab, self.sizes = 1, 1, 1, 50, (64, 128)
            self._lock = threading.Lock()

        def runner(self, kind, size):
            return self.step

        def step(self, tokens, index, **caches):
            rows, width = tokens.shape
            logits = np.zeros((rows, self.vocab), np.float32)
            logits[np.arange(rows), (tokens[:, -1] + 1) % self.vocab] = 1.0
            return {"logits": logits, "written_keys": np.zeros((rows, 1, width, 1), np.float32),
                    "written_values": np.zeros((rows, 1, 1, width), np.float32)}

    lm = Counting()
    prompts = [[1, 2, 3], [10] * 40, [20]]
    out = lm.continue_ids(prompts, max_new_tokens=5, stop_ids=[13], context=128)
    assert out == [[4, 5, 6, 7, 8], [11, 12], [21, 22, 23, 24, 25]]
    # A prompt longer than the context leaves the reply its room: its last tokens are kept.
    assert lm.continue_ids([list(range(30))], max_new_tokens=4, stop_ids=[], context=16) == [[30, 31, 32, 33]]


def test_kbuild_chat_talks_to_a_tflite_export(exports, float_answers):  # noqa: F811
    from click.testing import CliRunner

    from kbuild.cli import cli

    answers, _ = float_answers
    result = CliRunner().invoke(cli, ["chat", str(exports["dynamic"].parent), "--max-new-tokens", "8"], input="cat\n")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == answers[3]
    # A draw over the single most likely token is the greedy reply: the sampling path runs the same steps.
    result = CliRunner().invoke(cli, ["chat", str(exports["none"].parent), "--max-new-tokens", "8", "--sampler",
                                      "top_k", "--top-k", "1", "--seed", "3"], input="hi\n")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == answers[2]


def test_keras_hubs_own_layers_give_the_written_out_llama_steps_logits(answering_run, exports, tmp_path):  # noqa: F811
    """The llama attention written for TFLite (`_llama_layer`) against keras_hub's layers on its own
    cache layout (`_keras_hub_layer`, what other architectures convert with), step by step."""
    import numpy as np
    import tensorflow as tf

    from kbuild.exporter.serving import load_servable
    from kbuild.exporter.tflite_generator import TfliteCausalLm
    from kbuild.exporter.tflite_lm import cache_dims, convert_steps
    from kbuild.pretrained.causal_lm import causal_lm_of

    servable = load_servable(str(answering_run))
    model = causal_lm_of(servable.model)
    _, kv_heads, head_dim = cache_dims(model)
    (tmp_path / "generic.tflite").write_bytes(convert_steps(model, kv_heads, head_dim, (64,), "none", llama=False))
    ids = servable.tokenizer.token_ids(tf.constant([chatml("the cat is the cat")])).to_list()[0]
    generic = TfliteCausalLm(tmp_path / "generic.tflite").logits_along(ids)
    written = TfliteCausalLm(exports["none"] / "model.tflite").logits_along(ids)
    np.testing.assert_allclose(written, generic, atol=1e-4)


def test_kbuild_serve_batches_requests_to_a_tflite_chat_export(exports, float_answers):  # noqa: F811
    from concurrent.futures import ThreadPoolExecutor

    from starlette.testclient import TestClient

    from kbuild.serve import ServerSettings, create_app, load_repository

    answers, _ = float_answers
    repository = load_repository(exports["dynamic"].parent)
    served = repository.get("dynamic")
    rows_per_call = []
    reply = served.signatures["serving_default"].function
    served.signatures["serving_default"].function = lambda batch: rows_per_call.append(len(batch["text"])) or reply(batch)
    settings = ServerSettings(max_batch_size=8, max_wait_ms=1000)
    with TestClient(create_app(repository, settings)) as client:
        def ask(question: str) -> dict:
            return client.post("/v1/models/dynamic:predict", json={"instances": [question]}).json()

        with ThreadPoolExecutor(4) as pool:  # four users at once: the server merges them into fewer calls
            replies = list(pool.map(ask, QUESTIONS[:4]))
        assert [r["predictions"][0] for r in replies] == answers[:4]
        assert sum(rows_per_call) == 4 and max(rows_per_call) > 1
        # The SavedModel chat export's `generate`, with the budget as one value for the request.
        body = {"signature_name": "generate", "inputs": {"prompt": [chatml("cat")], "max_new_tokens": 12}}
        out = client.post("/v1/models/dynamic:predict", json=body).json()["outputs"]
        assert out["completion"] == [answers[3]] and out["text"] == [chatml("cat") + answers[3]]
        signatures = client.get("/v1/models/dynamic/metadata").json()["metadata"]["signature_def"]["signature_def"]
        assert set(signatures) == {"serving_default", "generate"}
        assert client.get("/v1/models/dynamic").json()["model_version_status"][0]["state"] == "AVAILABLE"


def test_dynamic_range_keeps_the_norm_scales_out_of_the_int8_weights(answering_run, tmp_path):  # noqa: F811
    """A llama's RMS norm scales the matmul's input, not its int8 weights: TFLite's converter folds a
    constant multiply feeding a matmul into its weights, which cost SmolLM2 +4 % perplexity
    (RESULTS.md, Session 32). With scales far from 1, every int8 weight matrix must still be one of
    the model's kernels, quantised per output channel."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from kbuild.exporter.serving import load_servable
    from kbuild.exporter.tflite_lm import cache_dims, convert_steps
    from kbuild.pretrained.causal_lm import causal_lm_of

    model = causal_lm_of(load_servable(str(answering_run)).model)
    backbone, rng = model.backbone, np.random.default_rng(0)
    for norm in [backbone.layer_norm, *(n for layer in backbone.transformer_layers
                                        for n in (layer._self_attention_layernorm, layer._feedforward_layernorm))]:
        norm.scale.assign(rng.uniform(0.05, 3.0, norm.scale.shape).astype("float32"))
    _, kv_heads, head_dim = cache_dims(model)
    (tmp_path / "m.tflite").write_bytes(convert_steps(model, kv_heads, head_dim, (64,), "dynamic"))
    # [inputs, outputs] as the matmul reads them: an einsum kernel's inputs lead (query) or its outputs trail (output).
    kernels = [np.asarray(w).reshape(split).T for w in backbone.weights if w.path.endswith("/kernel")
               for split in ((w.shape[0], -1), (-1, w.shape[-1]))]
    flat = flatbuffer_utils.read_model(str(tmp_path / "m.tflite"))
    checked = 0
    for tensor in flat.subgraphs[0].tensors:
        data = flat.buffers[tensor.buffer].data
        if tensor.type != schema.TensorType.INT8 or data is None or len(tensor.shape) != 2:
            continue
        scales = np.asarray(tensor.quantization.scale)[:, None]
        weights = np.frombuffer(bytes(data), np.int8).reshape(tensor.shape) * scales
        if len(scales) == 1 or weights.shape[0] == backbone.token_embedding.input_dim:
            continue  # the embedding's lookup and output copies
        error = min(np.max(np.abs(weights - k) / scales) for k in kernels if k.shape == weights.shape)
        assert error <= 0.51, f"{tensor.name}: not a kernel of the model quantised per channel ({error:.2f} steps off)"
        checked += 1
    # TFLite leaves a weight of fewer than 1,024 values float (the tiny llama's key and value projections).
    assert checked == sum(1 for w in backbone.weights if w.path.endswith("/kernel") and np.prod(w.shape) >= 1024) > 0
