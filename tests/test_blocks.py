"""Blocks, layers and the model builder: each block builds, trains a step, respects padding, saves."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from kbuild.blocks import BLOCKS  # noqa: E402
from kbuild.layers import (  # noqa: E402
    MaskedPooling,
    SparseMacroF1,
    WarmupSchedule,  # noqa: E402
)
from kbuild.spec import Spec  # noqa: E402
from kbuild.tasks import TASKS  # noqa: E402
from kbuild.tasks.compose import build_model  # noqa: E402

LABELS = ["neg", "pos", "neutral"]
IDS = np.array([[5, 6, 7, 0, 0], [3, 4, 0, 0, 0], [9, 8, 7, 6, 5]], dtype="int32")


def _spec(blocks, pooling="mean", position="learned", **model) -> Spec:
    return Spec.model_validate({
        "name": "t", "task": "classification", "seed": 3, "data": {"builtin": "sentiment"},
        "preprocess": {"max_length": 12},
        "model": {"embedding": {"dim": 16, "position": position}, "blocks": blocks, "pooling": pooling,
                  "head": {"hidden": [8], "dropout": 0.1}, **model},
    })


BLOCK_CASES = {
    "transformer_encoder": {"type": "transformer_encoder", "layers": 2, "heads": 4, "ff_dim": 32},
    "transformer_decoder": {"type": "transformer_decoder", "layers": 2, "heads": 4, "ff_dim": 32},
    "lstm": {"type": "lstm", "units": 8, "layers": 2},
    "bilstm": {"type": "bilstm", "units": 8},
    "gru": {"type": "gru", "units": 8, "bidirectional": True, "merge": "sum"},
    "cnn": {"type": "cnn", "widths": [2, 3], "filters": 6},
}


def test_every_registered_block_has_a_case():
    assert set(BLOCK_CASES) == set(BLOCKS.names())


@pytest.mark.parametrize("name", sorted(BLOCK_CASES))
def test_block_builds_trains_a_step_and_ignores_padding(name):
    model = build_model(_spec([BLOCK_CASES[name]]), 20, LABELS)
    task = TASKS.get("classification")
    model.compile("adam", task.loss(None), metrics=task.metrics(None, LABELS))
    logs = model.train_on_batch(IDS, np.array([0, 1, 2]), return_dict=True)
    assert np.isfinite(logs["loss"])
    padded = np.concatenate([IDS, np.zeros((3, 4), "int32")], axis=1)
    np.testing.assert_allclose(model(IDS), model(padded), atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "max", "sum", "last", "cls", "attention"])
@pytest.mark.parametrize("position", ["learned", "sine", "none"])
def test_pooling_and_positions_ignore_padding(pooling, position):
    blocks = [BLOCK_CASES["lstm" if pooling == "last" else "transformer_encoder"]]
    model = build_model(_spec(blocks, pooling, position), 20, LABELS)
    out = model(IDS)
    assert out.shape == (3, 3)
    np.testing.assert_allclose(np.sum(out, axis=-1), 1.0, atol=1e-5)
    padded = np.concatenate([IDS, np.zeros((3, 2), "int32")], axis=1)
    np.testing.assert_allclose(out, model(padded), atol=1e-5)


def test_masked_pooling_values():
    x = np.arange(12, dtype="float32").reshape(1, 4, 3)
    mask = np.array([[True, True, False, False]])
    expect = {"mean": [1.5, 2.5, 3.5], "max": [3, 4, 5], "sum": [3, 5, 7], "last": [3, 4, 5], "cls": [0, 1, 2]}
    for mode, value in expect.items():
        np.testing.assert_allclose(MaskedPooling(mode)(x, mask=mask)[0], value)


def test_pre_norm_transformer_and_head_dim_build():
    block = {"type": "transformer_encoder", "layers": 1, "heads": 3, "head_dim": 8, "norm": "pre", "activation": "gelu"}
    model = build_model(_spec([block]), 20, LABELS)
    assert model.get_layer("block0_layer0").attention.key_dim == 8
    assert model.get_layer("block0_final_norm") is not None


def test_l2_regularization_adds_a_penalty_to_the_loss():
    spec = _spec([BLOCK_CASES["gru"]], regularization={"l2": 0.1})
    model = build_model(spec, 20, LABELS)
    assert len(model.losses) > 0 and float(sum(model.losses)) > 0
    plain = build_model(_spec([BLOCK_CASES["gru"]]), 20, LABELS)
    assert len(plain.losses) == 0


def test_same_seed_builds_identical_weights():
    a = build_model(_spec([BLOCK_CASES["transformer_encoder"]]), 20, LABELS)
    b = build_model(_spec([BLOCK_CASES["transformer_encoder"]]), 20, LABELS)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_model_saves_and_reloads_in_safe_mode(tmp_path):
    model = build_model(_spec([BLOCK_CASES["transformer_encoder"], BLOCK_CASES["bilstm"]], "attention"), 20, LABELS)
    task = TASKS.get("classification")
    model.compile("adam", task.loss(None), metrics=task.metrics(None, LABELS))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(model(IDS), loaded(IDS), atol=1e-6)


def test_macro_f1_matches_a_hand_count():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.eye(3)[[0, 1, 1, 1, 0, 2]]
    metric = SparseMacroF1(3)
    metric.update_state(y_true, y_pred)
    # per class F1: c0 2*1/(2+2)=0.5, c1 2*2/(2+3)=0.8, c2 2*1/(2+1)=0.667
    assert float(metric.result()) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3, abs=1e-6)
    positive = SparseMacroF1(3, name="f1", positive=1)
    positive.update_state(y_true, y_pred)
    assert float(positive.result()) == pytest.approx(0.8, abs=1e-6)
    assert SparseMacroF1.from_config(positive.get_config()).positive == 1


def test_warmup_cosine_schedule_shape():
    schedule = WarmupSchedule(1.0, total_steps=110, warmup_steps=10, decay="cosine", min_ratio=0.1)
    values = [float(schedule(step)) for step in (0, 9, 10, 60, 110, 500)]
    assert values[0] == pytest.approx(0.1) and values[1] == pytest.approx(1.0)
    assert values[2] == pytest.approx(1.0) and values[3] == pytest.approx(0.55)
    assert values[4] == pytest.approx(0.1) and values[5] == pytest.approx(0.1)


def test_first_subtoken_gathers_each_words_first_piece_and_masks_missing_words():
    from kbuild.layers import FirstSubtoken

    x = keras.ops.reshape(keras.ops.arange(24.0), (2, 6, 2))
    starts = keras.ops.convert_to_tensor([[1, 4, 0], [1, 2, 3]])
    layer = FirstSubtoken()
    words = keras.ops.convert_to_numpy(layer([x, starts]))
    assert words[0].tolist() == [[2.0, 3.0], [8.0, 9.0], [0.0, 1.0]]
    assert words[1].tolist() == [[14.0, 15.0], [16.0, 17.0], [18.0, 19.0]]
    mask = keras.ops.convert_to_numpy(layer.compute_mask([x, starts]))
    assert mask.tolist() == [[True, True, False], [True, True, True]]


def test_char_features_keep_the_padding_mask():
    """[word embedding; char-CNN features] stays masked at padding: a tagger's scores at real
    words do not change when padding is added (Concatenate ORs masks; a missing one unmasks)."""
    import numpy as np

    from kbuild.tasks.compose import build_model

    spec = Spec.model_validate({
        "name": "chars", "task": "tagging", "seed": 1, "data": {"builtin": "sentiment"},
        "preprocess": {"tokenizer": {"type": "whitespace"}, "max_length": 8},
        "model": {"embedding": {"dim": 8, "position": "none", "chars": {"dim": 4, "filters": 6, "max_chars": 5}},
                  "blocks": [{"type": "bilstm", "units": 8}]},
    })
    model = build_model(spec, 30, ["O", "B-PER", "I-PER"])
    ids = np.array([[5, 6, 7, 0]], "int32")
    chars = np.array([[[3, 4, 0, 0, 0], [5, 0, 0, 0, 0], [6, 7, 8, 0, 0], [0] * 5]], "int32")
    padded_ids = np.concatenate([ids, np.zeros((1, 4), "int32")], axis=1)
    padded_chars = np.concatenate([chars, np.zeros((1, 4, 5), "int32")], axis=1)
    scores = keras.ops.convert_to_numpy(model({"token_ids": ids, "char_ids": chars}))
    padded = keras.ops.convert_to_numpy(model({"token_ids": padded_ids, "char_ids": padded_chars}))
    np.testing.assert_allclose(scores[0, :3], padded[0, :3], atol=1e-5)
