"""Issue 29, item 5: `kbuild serve` picks up versions exported while it runs, as TF Serving does
(polling, only complete versions, requests moving to the newest without an error), with
`--model-version-policy latest|all`. The models are tiny tf.Modules (string length plus a
per-version offset), so which version answered is visible in the answer."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from kbuild.exporter.layout import publish_version  # noqa: E402
from kbuild.serve import ServerSettings, create_app, load_repository  # noqa: E402
from kbuild.serve.versions import Refresher  # noqa: E402


def _save(path, offset: int) -> None:
    """A SavedModel answering len(text) + offset; the offset is a variable, so the model needs its
    variables/ folder to load."""
    import tensorflow as tf

    class Offset(tf.Module):
        def __init__(self):
            super().__init__()
            self.offset = tf.Variable(offset, dtype=tf.int32)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            return {"length": tf.strings.length(text) + self.offset}

    module = Offset()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Versions 1-3 saved once (offsets 0, 1000, 2000), copied into each test's export folder."""
    root = tmp_path_factory.mktemp("saved")
    for number in (1, 2, 3):
        _save(root / str(number), 1000 * (number - 1))
    return root


def _predict(client, path="/v1/models/m:predict"):
    return client.post(path, json={"instances": ["abc"]})


def test_policy_latest_serves_the_newest_and_all_serves_every_version(saved, tmp_path):
    for number in (1, 2):
        shutil.copytree(saved / str(number), tmp_path / "m" / str(number))
    assert sorted(load_repository(tmp_path / "m", "latest").models["m"]) == [2]
    assert sorted(load_repository(tmp_path / "m", "all").models["m"]) == [1, 2]
    assert sorted(load_repository(tmp_path / "m").models["m"]) == [1, 2]  # all, as before this flag


def test_only_a_complete_version_is_loaded_and_a_failed_one_is_retried_when_it_changes(saved, tmp_path):
    shutil.copytree(saved / "1", tmp_path / "m" / "1")
    repository = load_repository(tmp_path / "m", "latest")
    said: list[str] = []
    refresher = Refresher(repository, said.append)
    # A staging folder (how kbuild exports) is never a candidate.
    shutil.copytree(saved / "2", tmp_path / "m" / ".staging.host.1.x")
    assert refresher.poll() == [] and sorted(repository.models["m"]) == [1]
    # A version copied in file by file: saved_model.pb has arrived, its variables not yet.
    (tmp_path / "m" / "3").mkdir()
    shutil.copy(saved / "3" / "saved_model.pb", tmp_path / "m" / "3")
    assert refresher.poll() == [] and sorted(repository.models["m"]) == [1]
    assert "m version 3 not loaded; still serving the earlier version(s)" in said[-1]
    said.clear()
    assert refresher.poll() == [] and said == []  # unchanged files: not tried (nor reported) again
    shutil.copytree(saved / "3" / "variables", tmp_path / "m" / "3" / "variables")
    retired = refresher.poll()
    assert [(v.name, v.version) for v in retired] == [("m", 1)]
    assert sorted(repository.models["m"]) == [3]
    assert said == ["serving m version 3 (versions now 3)", "retired m version 1 (latest policy)"]


def test_a_served_version_whose_folder_vanishes_is_kept_until_a_new_one_loads(saved, tmp_path):
    shutil.copytree(saved / "1", tmp_path / "m" / "1")
    repository = load_repository(tmp_path / "m", "all")
    with TestClient(create_app(repository, ServerSettings(poll_s=0.05))) as client:
        shutil.rmtree(tmp_path / "m" / "1")  # nothing complete left to serve instead
        time.sleep(0.3)
        assert _predict(client).json() == {"predictions": [3]}


def _start_server(repository, settings, said):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(repository, settings, report=said.append), host="127.0.0.1",
                                           port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    return server, thread, server.servers[0].sockets[0].getsockname()[1]


def test_requests_under_load_move_to_a_version_exported_meanwhile_without_an_error(saved, tmp_path):
    shutil.copytree(saved / "1", tmp_path / "m" / "1")
    said: list[str] = []
    server, thread, port = _start_server(load_repository(tmp_path / "m", "latest"), ServerSettings(poll_s=0.1), said)
    url = f"http://127.0.0.1:{port}/v1/models/m:predict"
    body = json.dumps({"instances": ["abc"]}).encode()
    answers: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            request = urllib.request.Request(url, body, {"content-type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    answers.append(json.loads(response.read())["predictions"][0])
            except Exception as exc:  # noqa: BLE001  (any failure is what the test counts)
                errors.append(f"{type(exc).__name__}: {exc}")

    try:
        with ThreadPoolExecutor(6) as pool:
            for _ in range(6):
                pool.submit(client)
            deadline = time.time() + 60
            while len(answers) < 100 and time.time() < deadline:
                time.sleep(0.05)
            # Exported the way `kbuild export` does it: staged, then renamed to the next number.
            publish_version(tmp_path / "m", lambda staging: shutil.copytree(saved / "2", staging, dirs_exist_ok=True))
            deadline = time.time() + 60
            while answers.count(1003) < 100 and time.time() < deadline:
                time.sleep(0.05)
            stop.set()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as response:
            health = json.loads(response.read())
    finally:
        server.should_exit = True
        thread.join(30)
    assert errors == [] and len(answers) >= 200, (errors[:3], len(answers))
    assert set(answers) == {3, 1003}
    switched = answers.index(1003)
    assert 3 not in answers[switched + 6:]  # after the switch (6 clients in flight), only the new version answers
    assert health["models"] == {"m": [2]}
    assert "serving m version 2 (versions now 2)" in said and "retired m version 1 (latest policy)" in said


def test_the_cli_offers_every_registered_version_policy():
    from kbuild.cli import serve
    from kbuild.serve.versions import VERSION_POLICIES

    option = next(p for p in serve.params if p.name == "policy")
    assert sorted(option.type.choices) == sorted(VERSION_POLICIES.names())
