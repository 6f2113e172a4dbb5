"""TFLite export: runs through tf.lite.Interpreter and agrees with the SavedModel, per quantisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from kbuild.cli import cli
from tests.conftest import TINY_SPEC

tf = pytest.importorskip("tensorflow")

import kbuild  # noqa: E402

# TF 2.21 warns that tf.lite.Interpreter moves to ai_edge_litert; it is still what TF ships.
pytestmark = pytest.mark.filterwarnings(r"ignore:\s*Warning. tf.lite.Interpreter is deprecated:UserWarning")

SENTENCES = ["a wonderful , moving film", "a dull and tedious mess", "not good at all", "great",
             "brilliant acting but an awful , awful plot that never ends", "fine"]


@pytest.fixture(scope="module")
def bilstm_run(tmp_path_factory):
    """A tiny BiLSTM: the recurrent path is the one TFLite conversion has to work hardest for."""
    folder = tmp_path_factory.mktemp("tflite")
    spec = folder / "spec.yaml"
    spec.write_text(TINY_SPEC)
    overrides = ["model.blocks=[{type: bilstm, units: 8}]", "model.pooling=max"]
    return kbuild.train(kbuild.load_spec(spec, overrides), run_dir=folder / "run").path


@pytest.fixture(scope="module")
def savedmodel_outputs(bilstm_run, tmp_path_factory):
    version = kbuild.export(bilstm_run, tmp_path_factory.mktemp("sm") / "m")
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    out = serve(text=tf.constant(SENTENCES))
    return {name: value.numpy() for name, value in out.items()}


def _run_tflite(version):
    """What a user does with the folder: the tokenizer asset, then the .tflite in the interpreter."""
    tokenize = tf.saved_model.load(str(version / "tokenizer")).signatures["serving_default"]
    ids = tokenize(text=tf.constant(SENTENCES))["ids"].numpy()
    metadata = json.loads((version / "metadata.json").read_text())
    resolver = tf.lite.experimental.OpResolverType
    interpreter = tf.lite.Interpreter(
        model_path=str(version / "model.tflite"),
        experimental_op_resolver_type=resolver.AUTO if metadata["interpreter"]["default_delegates"]
        else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return interpreter.get_signature_runner("serving_default")(ids=ids)


@pytest.mark.parametrize(("quantize", "tolerance"), [
    ("none", 1e-5),
    ("int8", 0.05),
    # dynamic-range and float16 quantise weights only and share the float path: slow suite.
    pytest.param("dynamic", 0.02, marks=pytest.mark.slow),
    pytest.param("float16", 0.01, marks=pytest.mark.slow),
])
def test_tflite_predictions_agree_with_the_savedmodel(bilstm_run, savedmodel_outputs, tmp_path, quantize, tolerance):
    result = CliRunner().invoke(cli, ["export", str(bilstm_run), "--format", "tflite", "--quantize", quantize,
                                      "--out", str(tmp_path / "lite")])
    assert result.exit_code == 0, result.output
    out = _run_tflite(tmp_path / "lite" / "1")
    np.testing.assert_allclose(out["probabilities"], savedmodel_outputs["probabilities"], atol=tolerance)
    if quantize != "int8":  # int8 output steps (1/256) can flip a near-tie of this untrained model
        assert out["label"].tolist() == savedmodel_outputs["label"].tolist()


def test_int8_bilstm_reads_its_reversed_half_on_the_scale_it_was_written_in(bilstm_run, tmp_path):
    """The int8 REVERSE_V2 kernel copies bytes: its input and output must be quantised alike (the
    converter left them apart, costing SST-2 1.3 points; the export inserts the rescale)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    version = kbuild.export(bilstm_run, tmp_path / "lite", fmt="tflite", quantize="int8")
    model = flatbuffer_utils.read_model(str(version / "model.tflite"))
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    reverses = 0
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if codes[op.opcodeIndex] == schema.BuiltinOperator.REVERSE_V2:
                source, target = (subgraph.tensors[i].quantization for i in (op.inputs[0], op.outputs[0]))
                assert list(source.scale) == list(target.scale) and list(source.zeroPoint) == list(target.zeroPoint)
                reverses += 1
    assert reverses == 1  # the BiLSTM's backward half, flipped back into time order
    out = _run_tflite(version)
    assert np.isfinite(out["probabilities"]).all()


def test_tflite_folder_ships_tokenizer_vocabulary_and_metadata(bilstm_run, tmp_path):
    version = kbuild.export(bilstm_run, tmp_path / "lite", fmt="tflite", quantize="dynamic")
    metadata = json.loads((version / "metadata.json").read_text())
    assert metadata["format"] == "tflite" and metadata["quantize"] == "dynamic"
    assert metadata["labels"] == ["negative", "positive"]
    assert (version / "vocab.txt").read_text() == (bilstm_run / "assets" / "vocab.txt").read_text()
    rows = kbuild.predict(tmp_path / "lite", SENTENCES)  # kbuild predict runs the same two steps
    assert [r["text"] for r in rows] == SENTENCES


def test_a_tflite_only_quantization_on_savedmodel_is_a_usage_error(bilstm_run, tmp_path):
    result = CliRunner().invoke(cli, ["export", str(bilstm_run), "--quantize", "float16", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "savedmodel (none, int8, int4)" in result.output
    assert not (tmp_path / "x").exists()
