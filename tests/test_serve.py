"""`kbuild serve`: TF Serving's REST API, its error paths, batching, and a TF-only server process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

import kbuild  # noqa: E402
from kbuild.prediction import load_predictor  # noqa: E402
from kbuild.serve import ServerSettings, create_app, load_repository  # noqa: E402
from tests.conftest import REPO  # noqa: E402

SENTENCES = ["a wonderful , moving film", "a dull and tedious mess", "not good at all"]


def _save_fragile_model(path):
    """A plain TF SavedModel (no metadata.json) that raises on an empty string."""
    import tensorflow as tf

    class Fragile(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            lengths = tf.strings.length(text)
            tf.debugging.assert_positive(lengths, message="empty text")
            return {"length": lengths}

    module = Fragile()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


@pytest.fixture(scope="module")
def export_root(tiny_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    kbuild.export(tiny_run, root / "tiny")
    kbuild.export(tiny_run, root / "tiny")
    _save_fragile_model(root / "fragile" / "1")
    return root


@pytest.fixture(scope="module")
def client(export_root):
    settings = ServerSettings(max_batch_size=8, max_body_bytes=4096)
    with TestClient(create_app(load_repository(export_root), settings)) as test_client:
        yield test_client


def _predict(client, body, path="/v1/models/tiny:predict"):
    content = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(path, content=content, headers={"content-type": "application/json"})


def test_healthz_lists_every_model_and_version(client):
    assert client.get("/healthz").json() == {"status": "ok", "models": {"fragile": [1], "tiny": [1, 2]}}


def test_model_status_reports_every_version_available(client):
    body = client.get("/v1/models/tiny").json()
    assert [(s["version"], s["state"]) for s in body["model_version_status"]] == [("2", "AVAILABLE"), ("1", "AVAILABLE")]
    assert client.get("/v1/models/tiny/versions/1").json()["model_version_status"][0]["version"] == "1"


def test_metadata_describes_the_signature_and_the_labels(client):
    body = client.get("/v1/models/tiny/metadata").json()
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["text"]["dtype"] == "DT_STRING"
    assert signature["inputs"]["text"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert set(signature["outputs"]) == {"label", "probabilities"}
    assert body["model_spec"] == {"name": "tiny", "signature_name": "", "version": "2"}
    assert body["kbuild"]["labels"] == ["negative", "positive"] and body["kbuild"]["task"] == "classification"


def test_row_format_predictions_equal_kbuild_predict(client, tiny_run):
    response = _predict(client, {"instances": SENTENCES})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = list(load_predictor(tiny_run).predict(SENTENCES))
    assert [p["label"] for p in predictions] == [e["label"] for e in expected]
    for got, want in zip(predictions, expected, strict=True):
        assert got["probabilities"] == pytest.approx(list(want["probabilities"].values()), abs=1e-5)


def test_columnar_and_named_row_formats_answer_alike(client):
    rows = _predict(client, {"instances": [{"text": s} for s in SENTENCES]}).json()["predictions"]
    columns = _predict(client, {"inputs": {"text": SENTENCES}}).json()["outputs"]
    bare = _predict(client, {"inputs": SENTENCES}).json()["outputs"]
    assert columns == bare
    assert columns["label"] == [r["label"] for r in rows]


def test_a_version_can_be_named_and_an_unknown_one_is_404(client):
    assert _predict(client, {"instances": SENTENCES[:1]}, "/v1/models/tiny/versions/1:predict").status_code == 200
    response = _predict(client, {"instances": SENTENCES[:1]}, "/v1/models/tiny/versions/7:predict")
    assert response.status_code == 404 and "no version 7" in response.json()["error"]
    assert client.get("/v1/models/tiny/versions/7").status_code == 404


def test_unknown_model_or_signature_is_404(client):
    response = _predict(client, {"instances": ["x"]}, "/v1/models/nope:predict")
    assert response.status_code == 404 and "'nope' not found" in response.json()["error"]
    response = _predict(client, {"instances": ["x"], "signature_name": "other"})
    assert response.status_code == 404 and "no signature 'other'" in response.json()["error"]


@pytest.mark.parametrize(("body", "message"), [
    (b'{"instances": ["a film"', "malformed JSON"),
    (b"[1, 2]", "expected a JSON object"),
    ({"instances": [1, 2]}, "expected string values"),
    ({"instances": [["a", "b"]]}, "expected shape [batch]"),
    ({"inputs": {"txt": ["a"]}}, "exactly the keys ['text']"),
    ({"instances": []}, "empty batch"),
    ({"instances": ["a"], "inputs": ["a"]}, "exactly one of"),
    ({"instances": ["x"] * 9}, "exceeds the limit of 8"),
])
def test_bad_requests_are_400_with_a_message(client, body, message):
    response = _predict(client, body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_a_body_over_the_limit_is_413(client):
    response = _predict(client, {"instances": ["x" * 5000]})
    assert response.status_code == 413 and "limit of 4096 bytes" in response.json()["error"]


def test_a_model_that_raises_is_500_and_the_server_keeps_serving(client):
    response = _predict(client, {"instances": ["ok", ""]}, "/v1/models/fragile:predict")
    assert response.status_code == 500 and "empty text" in response.json()["error"]
    assert _predict(client, {"instances": ["four"]}, "/v1/models/fragile:predict").json() == {"predictions": [4]}
    assert _predict(client, {"instances": SENTENCES}).status_code == 200


def test_wrong_method_is_405(client):
    assert client.get("/v1/models/tiny:predict").status_code == 405
    assert client.post("/v1/models/tiny/metadata").status_code == 405


def test_the_server_loads_exports_with_tensorflow_only_no_model_code(export_root):
    code = textwrap.dedent(f"""
        import json, sys
        from starlette.testclient import TestClient
        from kbuild.serve import create_app, load_repository
        with TestClient(create_app(load_repository({str(export_root)!r}))) as client:
            body = client.post("/v1/models/tiny:predict", json={{"instances": ["a fine film"]}}).json()
        # `import tensorflow` itself imports keras in TF 2.21, so the check is on model code: none of
        # kbuild's model, block, layer, task, training or data modules, and no keras_hub.
        keras_code = sorted(m for m in sys.modules if m.split(".")[0] == "keras_hub" or m.startswith((
            "kbuild.model", "kbuild.blocks", "kbuild.layers", "kbuild.training", "kbuild.tasks", "kbuild.data",
            "kbuild.spec", "kbuild.exporter.serving")))
        print(json.dumps({{"label": body["predictions"][0]["label"], "keras": keras_code}}))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["label"] in ("negative", "positive") and result["keras"] == []


def test_kbuild_serve_answers_on_localhost_over_http(export_root):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    server = subprocess.Popen([sys.executable, "-m", "kbuild.cli", "serve", str(export_root), "--port", str(port)],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()
                time.sleep(0.1)
        request = urllib.request.Request(f"{url}/v1/models/tiny:predict", data=b'{"instances": ["a gorgeous film"]}')
        body = json.loads(urllib.request.urlopen(request, timeout=30).read())
        assert body["predictions"][0]["label"] in ("negative", "positive")
    finally:
        server.terminate()
        server.wait(timeout=30)
