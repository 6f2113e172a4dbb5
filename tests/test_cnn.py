"""The `cnn` block (Kim 2014): padding never changes its output, it validates its pooling, and a
tiny CNN classifier trains, reloads and exports like every classifier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kbuild import load_spec
from kbuild.errors import SpecError
from tests.conftest import TINY_SPEC

keras = pytest.importorskip("keras")

from kbuild.layers.text_cnn import TextCNN  # noqa: E402

CNN_SPEC = TINY_SPEC.replace(
    "    - {type: transformer_encoder, layers: 1, heads: 2, ff_dim: 32}\n  pooling: mean",
    "    - {type: cnn, widths: [2, 3], filters: 8, dropout: 0.1}\n  pooling: max",
)


def test_padding_cannot_change_the_features_of_real_positions():
    rng = np.random.default_rng(0)
    layer = TextCNN(5, (2, 3, 4))
    x = rng.normal(size=(2, 6, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], bool)
    # Whatever sits at the padded positions (here: huge values) must not reach a real position.
    garbage = np.where(mask[..., None], x, 1e3).astype("float32")
    clean = np.where(mask[..., None], x, 0.0).astype("float32")
    out_garbage = keras.ops.convert_to_numpy(layer(garbage, mask=mask))
    out_clean = keras.ops.convert_to_numpy(layer(clean, mask=mask))
    np.testing.assert_allclose(out_garbage[mask], out_clean[mask], atol=1e-5)
    # A shorter padded copy gives the same features as the unpadded sentence.
    short = keras.ops.convert_to_numpy(layer(x[:1, :3]))
    np.testing.assert_allclose(out_garbage[0, :3], short[0], atol=1e-5)
    assert layer.compute_mask(x, mask) is mask


def test_cnn_classifier_max_pools_over_real_positions_only(write_spec):
    from kbuild.tasks.compose import build_model

    spec = load_spec(write_spec(CNN_SPEC))
    model = build_model(spec, 30, ["neg", "pos"])
    ids = np.array([[5, 6, 7, 0, 0], [3, 4, 0, 0, 0], [9, 8, 7, 6, 5]], "int32")
    padded = np.concatenate([ids, np.zeros((3, 7), "int32")], axis=1)
    np.testing.assert_allclose(model(ids), model(padded), atol=1e-5)
    assert model.get_layer("block0_cnn").compute_output_shape((None, None, 16)) == (None, None, 16)


def test_a_final_cnn_block_requires_max_pooling(write_spec):
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(CNN_SPEC.replace("pooling: max", "pooling: mean")))
    (issue,) = info.value.issues
    assert issue.key == "model.pooling" and "set model.pooling: max" in issue.message
    # Followed by another block, the cnn's features are not what gets pooled: any pooling fits.
    stacked = CNN_SPEC.replace("  pooling: max", "    - {type: bilstm, units: 8}\n  pooling: mean")
    assert load_spec(write_spec(stacked)).model.blocks[0].type == "cnn"


def test_cnn_widths_must_be_distinct_and_a_language_model_refuses_it(write_spec):
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(CNN_SPEC.replace("widths: [2, 3]", "widths: [3, 3]")))
    assert info.value.issues[0].key == "model.blocks.0.widths"
    lm = CNN_SPEC.replace("task: classification", "task: language_model").replace("  pooling: max\n", "")
    lm = lm.replace("  head: {hidden: [8]}\n", "")
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(lm))
    assert any("centred" in issue.message for issue in info.value.issues)


def test_the_shipped_cnn_spec_validates():
    spec = load_spec("specs/sst2_cnn.yaml")
    assert spec.model.blocks[0].widths == [3, 4, 5] and spec.model.pooling == "max"


@pytest.mark.slow
def test_cnn_classifier_trains_reloads_and_exports_raw_strings_in_a_fresh_process(write_spec, tmp_path):
    import kbuild
    from kbuild.prediction import load_predictor

    run = kbuild.train(load_spec(write_spec(CNN_SPEC)), run_dir=tmp_path / "run")
    assert run.results["metrics"]["valid"]["accuracy"] >= 0.0
    reloaded = keras.saving.load_model(run.path / "model.keras", safe_mode=True)
    assert any(isinstance(layer, TextCNN) for layer in reloaded.layers)

    sentences = ["a wonderful , moving film", "a dull and tedious mess", ""]
    export = kbuild.export(run.path, tmp_path / "export")
    in_process = list(load_predictor(run.path).predict(sentences))
    code = textwrap.dedent(f"""
        import json
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (tf-text ops)
        serve = tf.saved_model.load({str(export)!r}).signatures["serving_default"]
        out = serve(text=tf.constant({sentences!r}))
        print(json.dumps(out["probabilities"].numpy().tolist()))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = [[row["probabilities"][label] for label in ("negative", "positive")] for row in in_process]
    np.testing.assert_allclose(fresh, expected, atol=1e-5)
