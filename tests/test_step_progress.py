"""Training logs a plain progress line inside long epochs without a terminal (Keras's verbose=2
prints once per epoch); throughput counts every step of an execution; monitor directions; the chat sampler's draws."""

from __future__ import annotations

import io
import re

import numpy as np

from kbuild.spec.train import monitor_mode
from kbuild.training.callbacks import StepProgress


def test_progress_lines_name_epoch_step_loss_speed_and_time_left():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    stream = io.StringIO()
    x, y = np.ones((40, 3), "float32"), np.zeros((40, 1), "float32")
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[StepProgress(interval=0.0, stream=stream)])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 20  # every step, with no interval
    assert re.fullmatch(r"\[kbuild\] epoch 1/2, step 1/10 \(10%\), loss [0-9.]+, [0-9.]+ s/step, about \d+ s left "
                        r"in the epoch", lines[0]), lines[0]
    assert lines[-1].startswith("[kbuild] epoch 2/2, step 10/10 (100%)")


def test_progress_is_quiet_between_intervals():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    stream = io.StringIO()
    model.fit(np.ones((8, 3)), np.zeros((8, 1)), batch_size=4, verbose=0,
              callbacks=[StepProgress(interval=3600.0, stream=stream)])
    assert stream.getvalue() == ""


def test_monitor_direction_of_every_metric_kbuild_logs():
    for name in ("val_accuracy", "val_f1", "val_rougeL", "val_bleu", "val_pearson", "val_spearman", "val_exact_match",
                 "auc", "val_macro_f1"):
        assert monitor_mode(name) == "max", name
    for name in ("val_loss", "val_perplexity", "val_mae", "loss"):
        assert monitor_mode(name) == "min", name


def test_throughput_counts_every_step_of_an_execution():
    """With steps_per_execution 4, Keras calls the batch callbacks once per 4 steps; samples/s must
    still count 4 batches a call (it counted one)."""
    import keras

    from kbuild.training.callbacks import Throughput

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=4)
    throughput = Throughput(batch_size=2)
    model.fit(np.ones((32, 3), "float32"), np.zeros((32, 1), "float32"), batch_size=2, verbose=0,
              callbacks=[throughput])
    assert throughput.samples == 32 - 4 * 2  # every step but the first call's (tracing: not throughput)


def test_chat_sampling_keeps_top_k_then_top_p_and_a_seed_repeats():
    from kbuild.decoding.causal_lm import greedy_pick, sampling_pick

    logits = np.array([0.0, 5.0, 4.0, -3.0])
    assert greedy_pick(logits) == 1
    assert {sampling_pick(top_k=2, seed=s)(logits) for s in range(50)} == {1, 2}
    assert {sampling_pick(top_p=0.5, seed=s)(logits) for s in range(50)} == {1}  # token 1 alone holds 73 %
    assert len({sampling_pick(temperature=100.0, seed=s)(logits) for s in range(200)}) == 4
    assert [sampling_pick(seed=5)(logits) for _ in range(3)] == [sampling_pick(seed=5)(logits) for _ in range(3)]
