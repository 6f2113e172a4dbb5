"""TFLite int8 of a pretrained Transformer with mean pooling (a tiny random BertBackbone preset):
the export checks the converted model at every length, and the int8 graph keeps float the ops
whose int8 kernels break it (DIV on a token count, the masked attention softmax)."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("keras_hub")

import kbuild  # noqa: E402
from kbuild.errors import ExportError  # noqa: E402
from kbuild.exporter import quantize  # noqa: E402
from tests.pretrained_fixtures import write_keras_preset  # noqa: E402

pytestmark = pytest.mark.filterwarnings(r"ignore:\s*Warning. tf.lite.Interpreter is deprecated:UserWarning")

MAX_LENGTH = 8
"""Short enough that calibration texts are cut to it: the token count calibrates on [0, 8], and
a stored int8 0 is then the count 4, which the int8 DIV kernel refused."""


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tflite-bert")
    preset = write_keras_preset(folder / "tiny-bert")
    spec = folder / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: tiny-bert
        task: classification
        seed: 3
        data: {{builtin: sentiment, limit: 64}}
        preprocess: {{max_length: {MAX_LENGTH}}}
        model:
          backbone: {{from: {preset}}}
          pooling: mean
        train: {{epochs: 1, batch_size: 16, max_steps: 2}}
        """))
    return kbuild.train(kbuild.load_spec(spec), run_dir=folder / "run").path


def _ops(version):
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    names = {number: name for name, number in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = flatbuffer_utils.read_model(str(version / "model.tflite"))
    codes = [names[max(code.builtinCode, code.deprecatedBuiltinCode)] for code in model.operatorCodes]
    graph = model.subgraphs[0]
    return [(codes[op.opcodeIndex], graph.tensors[op.outputs[0]].type) for op in graph.operators]


def test_int8_bert_with_mean_pooling_predicts_every_length_at_batch_above_one(bert_run, tmp_path):
    version = kbuild.export(bert_run, tmp_path / "lite", fmt="tflite", quantize="int8")
    int8 = 9  # schema TensorType.INT8
    ops = _ops(version)
    assert {name for name, kind in ops if kind == int8} <= {"FULLY_CONNECTED", "GATHER", "QUANTIZE"}
    assert any(name == "FULLY_CONNECTED" and kind == int8 for name, kind in ops)  # the weights are int8
    verification = json.loads((version / "metadata.json").read_text())["verification"]
    assert verification["rows"] > MAX_LENGTH and verification["max_abs_difference"] < 0.05
    words = "the acting is brilliant and moving but the plot is dull".split()
    texts = [" ".join(words[:n]) for n in range(len(words) + 1)]  # every count of tokens, padding included
    rows = kbuild.predict(tmp_path / "lite", texts, batch_size=len(texts))
    reference = kbuild.predict(bert_run, texts, batch_size=len(texts))
    for row, expected in zip(rows, reference, strict=True):  # int8 inputs to the dense layers of a
        for label, probability in expected["probabilities"].items():  # 16-wide random BERT: 0.05 apart
            assert row["probabilities"][label] == pytest.approx(probability, abs=0.1)


def test_a_converted_model_that_fails_is_an_export_error_naming_the_op(bert_run, tmp_path, monkeypatch):
    """Every op with an int8 kernel quantised (the converter's default): int8 DIV refuses the
    mean pooling's count at half the calibrated maximum; the export says so instead of predict."""
    monkeypatch.setattr(quantize, "int8_float_ops", lambda names: [])
    with pytest.raises(ExportError, match=r"op DIV .*--quantize dynamic or float16"):
        kbuild.export(bert_run, tmp_path / "lite", fmt="tflite", quantize="int8")
    assert not (tmp_path / "lite" / "1").exists()


def test_int8_float_ops():
    assert quantize.int8_float_ops({"FULLY_CONNECTED", "DIV", "SUM", "LOGISTIC", "REVERSE_V2"}) == ["DIV", "SUM"]
    attention = {"FULLY_CONNECTED", "GATHER", "BATCH_MATMUL", "SOFTMAX", "SELECT_V2", "ADD"}
    assert quantize.int8_float_ops(attention) == ["ADD", "BATCH_MATMUL", "SELECT_V2", "SOFTMAX"]
    assert np.array_equal(sorted(quantize.ATTENTION_INT8_OPS), ["FULLY_CONNECTED", "GATHER"])
