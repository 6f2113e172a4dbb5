"""Keras-native int8 SavedModel export: model.quantize("int8") on a copy of the run's model,
outputs within a tolerance of the float export, loadable in a process without kbuild."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from kbuild.cli import cli
from tests.conftest import TINY_SPEC

tf = pytest.importorskip("tensorflow")

import kbuild  # noqa: E402

SENTENCES = ["a wonderful , moving film", "a dull and tedious mess", "not good at all", "great",
             "brilliant acting but an awful , awful plot that never ends", "fine"]

FRESH_PROCESS = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (only tf and tf-text: no kbuild code)
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = serve(text=tf.constant(json.loads(sys.argv[2])))
print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(),
                  "modules": sorted(m for m in sys.modules if m.split(".")[0] == "kbuild")}))
"""


@pytest.fixture(scope="module", params=["transformer", pytest.param("bilstm", marks=pytest.mark.slow)])
def run(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"int8-{request.param}")
    spec = folder / "spec.yaml"
    spec.write_text(TINY_SPEC)
    overrides = ["model.blocks=[{type: bilstm, units: 8}]", "model.pooling=max"] if request.param == "bilstm" else []
    return kbuild.train(kbuild.load_spec(spec, overrides), run_dir=folder / "run").path


def _fresh_process(version) -> list[list[float]]:
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(version), json.dumps(SENTENCES)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["modules"] == []
    return got["probabilities"]


def test_int8_savedmodel_matches_float_in_a_fresh_process(run, tmp_path):
    float_version = kbuild.export(run, tmp_path / "float")
    result = CliRunner().invoke(cli, ["export", str(run), "--quantize", "int8", "--out", str(tmp_path / "int8")])
    assert result.exit_code == 0, result.output
    int8_version = tmp_path / "int8" / "1"
    reference = np.array(_fresh_process(float_version))
    quantized = np.array(_fresh_process(int8_version))
    assert quantized.shape == reference.shape
    assert np.abs(quantized - reference).max() < 0.05
    # The quantisation did something: int8 weights, not a float copy under another name.
    assert not np.array_equal(quantized, reference)
    metadata = json.loads((int8_version / "metadata.json").read_text())
    assert metadata["quantize"] == "int8" and metadata["quantized_layers"]["int8"]
    # The servable the CLI loaded stays float: a second float export is identical to the first.
    assert np.array_equal(np.array(_fresh_process(kbuild.export(run, tmp_path / "float"))), reference)


def test_int8_leaves_recurrent_layers_float_and_says_so(run, tmp_path):
    metadata = json.loads((kbuild.export(run, tmp_path / "q", quantize="int8") / "metadata.json").read_text())
    layers = metadata["quantized_layers"]
    assert any("embedding" in path for path in layers["int8"])
    recurrent = [path for path in layers["float"] if "lstm" in path]
    assert bool(recurrent) == ("bilstm" in str(run.parent))

