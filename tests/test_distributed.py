"""Distribution, resume and accumulation: each compared with a plain single-device run.

The distributed runs are real: MirroredStrategy over two logical CPU devices and
MultiWorkerMirroredStrategy as two local processes (`kbuild launch`), each in a subprocess
because device layout and collectives are fixed when TensorFlow starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from kbuild.cli import cli
from kbuild.training.fit import FitCall, _epoch_plan
from tests.conftest import REPO

# Dropout off and op determinism on: replicas then differ from one device only by the order of
# floating-point sums. SGD, because Adam divides by the root of tiny squared gradients, which
# turns float noise in near-zero gradients into weight differences of about lr per step.
EXACT = ["--set", "train.deterministic=true", "--set", "train.optimizer={name: sgd, learning_rate: 0.1}", "--set", "train.max_steps=null", "--set", "train.epochs=2",
         "--set", "model.blocks=[{type: transformer_encoder, layers: 1, heads: 2, ff_dim: 32, dropout: 0}]"]
TOLERANCE = 1e-5


def _kbuild(*args, check=True, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "kbuild.cli", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, check=check, **kwargs)


def _losses(run) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _layer_weights(run) -> dict[str, np.ndarray]:
    weights = {}
    with h5py.File(run / "checkpoints" / "latest.weights.h5") as f:
        f["layers"].visititems(lambda name, obj: weights.setdefault(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return weights


def _assert_same_weights(a, b, atol):
    wa, wb = _layer_weights(a), _layer_weights(b)
    assert wa.keys() == wb.keys() and wa
    for name in wa:
        np.testing.assert_allclose(wa[name], wb[name], atol=atol, err_msg=name)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The reference: the tiny spec on one CPU device."""
    folder = tmp_path_factory.mktemp("single")
    spec = folder / "tiny.yaml"
    from tests.conftest import TINY_SPEC

    spec.write_text(TINY_SPEC)
    _kbuild("train", spec, "--run-dir", folder / "run", "--set", "train.strategy=cpu", *EXACT)
    return spec, folder / "run"


def test_epoch_plan_finishes_an_interrupted_epoch_then_keeps_boundaries():
    assert _epoch_plan(0, 30, 10) == [FitCall(0, 3, 10, 0)]
    assert _epoch_plan(13, 30, 10) == [FitCall(1, 2, 7, 13), FitCall(2, 3, 10, 20)]
    assert _epoch_plan(20, 30, 10) == [FitCall(2, 3, 10, 20)]
    assert _epoch_plan(25, 25, 10) == []  # already done: nothing to run


def test_mirrored_over_two_logical_cpus_matches_one_device(single, tmp_path):
    spec, reference = single
    proc = _kbuild("train", spec, "--run-dir", tmp_path / "run", "--set", "train.strategy=mirrored", *EXACT)
    assert "strategy mirrored (2 replica(s)" in proc.stderr
    np.testing.assert_allclose(_losses(tmp_path / "run"), _losses(reference), atol=TOLERANCE)
    _assert_same_weights(tmp_path / "run", reference, atol=TOLERANCE)


def test_launch_two_workers_matches_one_device_and_only_the_chief_writes(single, tmp_path):
    spec, reference = single
    proc = _kbuild("launch", "--workers", 2, spec, "--run-dir", tmp_path / "run", "--timeout", 240, *EXACT, timeout=300)
    assert "strategy multi_worker (2 replica(s)" in proc.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["strategy"] == "multi_worker" and results["replicas"] == 2
    # Close, not equal: TF's DATA auto-sharding composes each worker's half of a global batch
    # differently from the single-device batch, so the runs see the same epochs in other batches.
    np.testing.assert_allclose(_losses(tmp_path / "run"), _losses(reference), atol=1e-2)
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_sigkill_mid_epoch_then_resume_ends_with_the_uninterrupted_weights(tmp_path, write_spec):
    from tests.conftest import TINY_SPEC

    # 2,000 rows / batch 8 = 250 steps per epoch, a checkpoint every 10: slow enough to kill.
    spec = write_spec(TINY_SPEC)
    args = ["--set", "data.limit=2000", "--set", "train.batch_size=8", "--set", "train.max_steps=null",
            "--set", "train.epochs=2", "--set", "train.checkpoint_every=10", "--set", "train.deterministic=true"]
    _kbuild("train", spec, "--run-dir", tmp_path / "whole", *args)

    run = tmp_path / "killed"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, "-m", "kbuild.cli", "train", str(spec), "--run-dir", str(run), *args],
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run / "checkpoints" / "state.json"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if state.is_file() and json.loads(state.read_text() or "{}").get("step", 0) >= 30:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    killed_at = json.loads(state.read_text())["step"]
    assert 30 <= killed_at < 500, killed_at

    proc = _kbuild("train", spec, "--run-dir", run, "--resume", *args)
    assert f"resuming at step {killed_at}" in proc.stderr
    results = json.loads((run / "results.json").read_text())
    assert results["steps"] == 500 and results["resumed_at_step"] == killed_at
    _assert_same_weights(run, tmp_path / "whole", atol=1e-6)


def test_resume_in_mid_epoch_keeps_the_data_order_of_an_unbroken_run(tiny_spec_file, tmp_path):
    import kbuild

    common = ["data.limit=400", "train.batch_size=8", "train.epochs=2", "train.deterministic=true"]
    whole = kbuild.train(kbuild.load_spec(tiny_spec_file, [*common, "train.max_steps=null"]), run_dir=tmp_path / "whole")
    kbuild.train(kbuild.load_spec(tiny_spec_file, [*common, "train.max_steps=30"]), run_dir=tmp_path / "part")
    resumed = kbuild.train(kbuild.load_spec(tiny_spec_file, [*common, "train.max_steps=null"]),
                           run_dir=tmp_path / "part", resume=True)
    assert resumed.results["resumed_at_step"] == 30 and resumed.results["steps"] == 100
    # Epoch 2 is whole in both runs: same batches in the same order, same loss.
    last = [json.loads(f.read_text().splitlines()[-1])["loss"] for f in (whole.path / "metrics.jsonl", resumed.path / "metrics.jsonl")]
    assert last[0] == pytest.approx(last[1], abs=1e-6)
    _assert_same_weights(resumed.path, whole.path, atol=1e-6)


def test_gradient_accumulation_equals_the_larger_batch(tiny_spec_file, tmp_path):
    import kbuild

    common = ["train.deterministic=true", "train.max_steps=null", "train.epochs=1", "data.limit=128",
              "train.optimizer={name: sgd, learning_rate: 0.1}",
              "model.blocks=[{type: transformer_encoder, layers: 1, heads: 2, ff_dim: 32, dropout: 0}]",
              "model.embedding.dropout=0", "model.head={hidden: [8], dropout: 0}"]
    big = kbuild.train(kbuild.load_spec(tiny_spec_file, [*common, "train.batch_size=32"]), run_dir=tmp_path / "big")
    accumulated = kbuild.train(kbuild.load_spec(tiny_spec_file, [*common, "train.batch_size=16", "train.gradient_accumulation=2"]),
                               run_dir=tmp_path / "acc")
    assert big.results["steps"] == 4 and accumulated.results["steps"] == 8
    _assert_same_weights(big.path, accumulated.path, atol=1e-5)


@pytest.mark.parametrize(("strategy", "expected"), [
    ("multi_worker", "needs TF_CONFIG"),
    ("parameter_server", 'needs TF_CONFIG with "worker" and "ps"'),
])
def test_cluster_strategies_without_a_cluster_fail_clearly(tiny_spec_file, tmp_path, monkeypatch, strategy, expected):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["train", str(tiny_spec_file), "--run-dir", str(tmp_path / "r"),
                                      "--set", f"train.strategy={strategy}"])
    assert result.exit_code == 1
    assert expected in result.output and "Traceback" not in result.output
