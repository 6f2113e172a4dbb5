"""`model.backbone.learning_rate_scale`: the checkpoint's weights update at a scaled rate, decay
included, everything else at the full rate; on one device and over two mirrored replicas; the
optimizer reloads from its config; the spec refuses the scale where it would mean nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kbuild.errors import SpecError
from kbuild.spec import Spec

# One Adam(W) step from zero moments moves each weight by the rate (m / sqrt(v) = sign of the
# gradient), whatever the gradient's size: so the scaled layer moves by exactly scale x the other.
STEP_CHECK = """
import numpy as np, keras
from kbuild.spec.train import TrainSpec
from kbuild.training.optimizers import build_optimizer

def one_step(decay, strategy=None):
    import contextlib
    scope = strategy.scope() if strategy else contextlib.nullcontext()
    keras.utils.set_random_seed(0)
    with scope:
        inputs = keras.Input((3,))
        model = keras.Model(inputs, keras.layers.Dense(1, name="head")(keras.layers.Dense(2, name="body")(inputs)))
        start = [w.numpy() for w in model.weights]
        body = model.get_layer("body").trainable_variables
        train = TrainSpec.model_validate({"optimizer": {"name": "adamw", "learning_rate": 0.01, "weight_decay": decay}})
        model.compile(optimizer=build_optimizer(train, 10, scaled_variables=body, rate_scale=0.1), loss="mse")
    model.fit(np.ones((4, 3), "float32"), np.full((4, 1), 5.0, "float32"), batch_size=4, epochs=1, verbose=0)
    # Signed: with decay, each kernel moves by a further -lr x wd x its start value.
    moved = {w.path: w.numpy() - s for w, s in zip(model.weights, start)}
    return moved, dict(zip([w.path for w in model.weights], start)), model
"""


def _moved(decay: float) -> tuple[dict, dict, object]:
    namespace: dict = {}
    exec(STEP_CHECK, namespace)  # noqa: S102  (the same code runs mirrored in a subprocess below)
    return namespace["one_step"](decay)


def test_scaled_variables_step_at_the_scaled_rate_and_the_rest_at_the_full_rate():
    moved, _, model = _moved(decay=0.0)
    # Bias and kernel alike: the first Adam step is lr x sign(gradient) (up to epsilon).
    np.testing.assert_allclose(np.abs(moved["head/kernel"]), 0.01, rtol=1e-3)
    np.testing.assert_allclose(np.abs(moved["body/kernel"]), 0.001, rtol=1e-3)
    np.testing.assert_allclose(np.abs(moved["body/bias"]), 0.001, rtol=1e-3)
    assert type(model.optimizer).__name__ == "ScaledAdamW"


def test_decoupled_weight_decay_follows_each_variables_rate():
    no_decay, start, _ = _moved(decay=0.0)
    decayed, _, _ = _moved(decay=10.0)
    # Decay moves a kernel by -lr x wd x its start value more (biases are exempt); the scaled layer's lr is 0.001.
    for path, rate in (("head/kernel", 0.01), ("body/kernel", 0.001)):
        np.testing.assert_allclose(decayed[path] - no_decay[path], -rate * 10.0 * start[path], rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(decayed["body/bias"], no_decay["body/bias"], atol=1e-7)


def test_the_scaled_optimizer_reloads_from_its_config_and_matches_its_variables_by_path():
    import keras

    from kbuild.layers.optimizers import ScaledAdamW

    _, _, model = _moved(decay=0.01)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(model.optimizer))
    assert isinstance(again, ScaledAdamW)
    assert again.rate_scale == 0.1 and again.scaled_paths == ("body/kernel", "body/bias")
    again.build(model.trainable_variables)
    assert [again._scaled(v) for v in model.trainable_variables] == [True, True, False, False]


def test_two_mirrored_replicas_scale_the_same_variables():
    code = STEP_CHECK + textwrap.dedent("""
        from kbuild.training.strategy import split_cpu
        split_cpu(2)
        import tensorflow as tf
        moved, _, _ = one_step(0.0, tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
        print(float(np.abs(moved["body/kernel"]).max()), float(np.abs(moved["head/kernel"]).max()))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    body, head = map(float, proc.stdout.split()[-2:])
    assert body == pytest.approx(0.001, rel=1e-3) and head == pytest.approx(0.01, rel=1e-3)


def _backbone_spec(**backbone) -> dict:
    return {"name": "x", "task": "classification", "data": {"builtin": "sentiment"},
            "model": {"backbone": {"from": "./ckpt", **backbone}}}


@pytest.mark.parametrize(("backbone", "message"), [
    ({"lora": {"rank": 4}, "learning_rate_scale": 0.1}, "lora trains zero-initialised adapters"),
    ({"trainable": False, "learning_rate_scale": 0.1}, "trainable: false trains none"),
])
def test_a_scale_with_nothing_to_scale_is_refused(backbone, message):
    with pytest.raises((SpecError, ValueError), match=message):
        Spec.model_validate(_backbone_spec(**backbone))


def test_the_scale_is_checked_by_validate_and_defaults_to_one():
    assert Spec.model_validate(_backbone_spec()).model.backbone.learning_rate_scale == 1
    with pytest.raises(ValueError, match="learning_rate_scale"):
        Spec.model_validate(_backbone_spec(learning_rate_scale=0))
