"""`train.head_learning_rate`: the head's variables step at their own peak rate on the same
schedule, the backbone's at `optimizer.learning_rate`; the optimizer saves and reloads with
model.keras; a pretrained backbone's variables all count as backbone."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kbuild
from kbuild.layers.optimizers import HeadRateAdam, HeadRateAdamW
from kbuild.model import backbone_layers, head_variable_paths
from kbuild.runs import RunFolder, load_trained_model
from tests.conftest import TINY_SPEC


def _two_layers():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="body"), keras.layers.Dense(2, name="head")])


@pytest.mark.parametrize("cls", [HeadRateAdam, HeadRateAdamW])
def test_the_head_steps_at_its_factor_of_the_rate(cls):
    import tensorflow as tf

    model = _two_layers()
    head = [v.path for v in model.get_layer("head").trainable_variables]
    optimizer = cls(1e-3, head_paths=head, head_factor=10.0)
    before = [v.numpy().copy() for v in model.trainable_variables]
    x, y = np.random.default_rng(0).normal(size=(8, 4)), np.zeros((8, 2))
    with tf.GradientTape() as tape:
        loss = keras.ops.mean((model(x) - y) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    # Adam's first step moves every weight by about lr (its update is m / sqrt(v) = sign(g)).
    for variable, old in zip(model.trainable_variables, before):
        step = np.abs(variable.numpy() - old)
        expected = 1e-2 if variable.path in head else 1e-3
        moved = step[step > 1e-6]
        assert moved.size and np.allclose(moved, expected, rtol=0.02, atol=2e-4), (variable.path, moved)


def test_the_optimizer_round_trips_through_its_config():
    optimizer = HeadRateAdamW(2e-4, head_paths=["head/kernel"], head_factor=5.0, weight_decay=0.01)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(again) is HeadRateAdamW
    assert again.head_paths == ["head/kernel"] and again.head_factor == 5.0 and again.weight_decay == 0.01


def _spec(write_spec, extra: str = ""):
    return kbuild.load_spec(write_spec(TINY_SPEC + extra))


def test_a_run_with_head_learning_rate_reloads_and_equal_rates_change_nothing(write_spec, tmp_path):
    """The head is what is outside the embedding and blocks; model.keras reloads the optimizer;
    a head rate equal to the learning rate trains exactly the plain run's weights."""
    plain_spec = _spec(write_spec)
    rate = plain_spec.train.optimizer.learning_rate
    plain = kbuild.train(plain_spec, run_dir=tmp_path / "plain")
    same_spec = _spec(write_spec, f"  head_learning_rate: {rate}\n")
    same = kbuild.train(same_spec, run_dir=tmp_path / "same")
    model = load_trained_model(RunFolder(same.path))
    assert type(model.optimizer) in (HeadRateAdam, HeadRateAdamW) and model.optimizer.head_factor == 1.0
    head = set(head_variable_paths(model, same_spec))
    assert head and set(model.optimizer.head_paths) == head
    body = {v.path for layer in backbone_layers(model, same_spec) for v in layer.weights}
    assert body and not head & body and head | body >= {v.path for v in model.trainable_variables}
    reference = load_trained_model(RunFolder(plain.path))
    for mine, theirs in zip(model.weights, reference.weights):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6, err_msg=mine.path)


def test_pretrained_backbone_variables_are_all_backbone(tmp_path):
    pytest.importorskip("keras_hub")
    from tests.pretrained_fixtures import write_hugging_face

    folder = tmp_path / "tiny-bert"
    write_hugging_face(folder)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(f"""\
name: tiny-head-rate
task: classification
seed: 3
data: {{builtin: sentiment, limit: 64}}
preprocess: {{max_length: 16}}
model:
  backbone: {{from: {folder}}}
  pooling: mean
  head: {{hidden: [4]}}
train: {{epochs: 1, batch_size: 16, max_steps: 2, head_learning_rate: 1.0e-3,
         optimizer: {{name: adamw, learning_rate: 1.0e-4}}}}
""")
    spec = kbuild.load_spec(spec_file)
    run = kbuild.train(spec, run_dir=tmp_path / "run")
    model = load_trained_model(RunFolder(run.path))
    head = head_variable_paths(model, spec)
    assert head and all(not path.startswith(("bert_backbone", "token_embedding", "transformer_layer")) for path in head)
    assert len(head) == 4  # the hidden dense and the output dense: kernel and bias each
    assert model.optimizer.head_factor == pytest.approx(10.0)
