"""Mixed precision as training compiles it: loss scaling for float16 only, float32 outputs,
reduced-precision inner layers, finite losses; and what `auto` resolves to."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import kbuild
from kbuild.training import strategy
from kbuild.training.fit import compile_model, global_policy_kept, training_precision
from tests.conftest import TINY_SPEC


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from kbuild.tasks.bundle import build as build_data

    path = tmp_path_factory.mktemp("mp") / "tiny.yaml"
    path.write_text(TINY_SPEC)
    spec = kbuild.load_spec(path, ["train.strategy=cpu"])
    return spec, build_data(spec, splits=("train",))


@pytest.fixture
def compiled(tiny):
    """compiled(precision) -> a model built and compiled as `train` does, under that policy."""
    spec, bundle = tiny

    def _compile(precision: str) -> keras.Model:
        keras.mixed_precision.set_global_policy(precision)
        keras.utils.set_random_seed(spec.seed)
        return compile_model(spec, bundle, strategy.resolve_strategy(spec.train), total_steps=4)

    with global_policy_kept():  # other tests build float32 models
        yield _compile


def _inner_compute_dtypes(model: keras.Model) -> set[str]:
    return {layer.compute_dtype for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.Dense) and layer.name != "probabilities"}


def _train_a_few_steps(model: keras.Model, bundle) -> list[float]:
    history = model.fit(bundle.fresh_dataset("train").repeat(), epochs=3, steps_per_epoch=2, verbose=0)
    return history.history["loss"]


def test_mixed_float16_scales_the_loss_and_keeps_outputs_float32(compiled, tiny):
    spec, bundle = tiny
    model = compiled("mixed_float16")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert _inner_compute_dtypes(model) == {"float16"}
    assert all(w.dtype == "float32" for w in model.trainable_weights)  # float32 master weights
    batch = next(iter(bundle.datasets["train"]))[0]
    assert keras.backend.standardize_dtype(model(batch).dtype) == "float32"
    losses = _train_a_few_steps(model, bundle)
    assert all(math.isfinite(x) for x in losses)
    assert all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.trainable_weights)


def test_mixed_bfloat16_needs_no_loss_scaling_and_keeps_outputs_float32(compiled, tiny):
    spec, bundle = tiny
    model = compiled("mixed_bfloat16")
    # bfloat16 has float32's exponent range: gradients do not underflow, so no loss scale.
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert _inner_compute_dtypes(model) == {"bfloat16"}
    batch = next(iter(bundle.datasets["train"]))[0]
    assert keras.backend.standardize_dtype(model(batch).dtype) == "float32"
    assert all(math.isfinite(x) for x in _train_a_few_steps(model, bundle))


def test_float32_is_plain(compiled, tiny):
    model = compiled("float32")
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert _inner_compute_dtypes(model) == {"float32"}


def test_auto_is_float32_on_cpu_and_float16_on_gpu_except_recurrent(monkeypatch, tiny):
    spec, _ = tiny
    monkeypatch.setattr(strategy, "_gpus", lambda: [])
    assert strategy.resolve_precision("auto", recurrent=False) == "float32"
    assert training_precision(spec) == "float32"  # this machine's answer for a spec left at auto
    monkeypatch.setattr(strategy, "_gpus", lambda: ["GPU:0"])
    assert strategy.resolve_precision("auto", recurrent=False) == "mixed_float16"
    assert strategy.resolve_precision("auto", recurrent=True) == "float32"
    for explicit in ("float32", "mixed_float16", "mixed_bfloat16"):
        assert strategy.resolve_precision(explicit, recurrent=True) == explicit  # never overridden


def test_training_precision_sees_recurrent_blocks(monkeypatch, tmp_path):
    path = tmp_path / "lstm.yaml"
    path.write_text(TINY_SPEC.replace("{type: transformer_encoder, layers: 1, heads: 2, ff_dim: 32}", "{type: lstm, units: 8}"))
    monkeypatch.setattr(strategy, "_gpus", lambda: ["GPU:0"])
    assert training_precision(kbuild.load_spec(path)) == "float32"


def test_training_puts_the_callers_dtype_policy_back(tiny, tmp_path):
    spec, _ = tiny
    assert keras.mixed_precision.global_policy().name == "float32"
    run = kbuild.train(spec.model_copy(update={"train": spec.train.model_copy(update={
        "mixed_precision": "mixed_bfloat16", "max_steps": 2})}), run_dir=tmp_path / "run")
    assert run.results["precision"] == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"
