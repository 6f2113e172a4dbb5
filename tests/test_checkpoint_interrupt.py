"""A Ctrl-C or SIGTERM that arrives while a checkpoint is being written waits for the write to
finish: the checkpoint is complete, and the clean-up's save after it does not fail on a file h5py
still holds open."""

from __future__ import annotations

import os
import signal

import keras
import numpy as np
import pytest

from kbuild.runtime import deferred_interrupts, sigterm_as_interrupt
from kbuild.training.callbacks import NanGuard
from kbuild.training.checkpoint import WEIGHTS, StepCheckpoint, restore_checkpoint, save_checkpoint


def _model() -> keras.Model:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)
    return model


def _interrupt_mid_write(model: keras.Model, signum: int, monkeypatch) -> list[int]:
    """Make save_weights deliver `signum` to this process half-way through its write."""
    calls: list[int] = []
    original = model.save_weights

    def save_weights(path, **kwargs):
        calls.append(1)
        os.kill(os.getpid(), signum)
        original(path, **kwargs)

    monkeypatch.setattr(model, "save_weights", save_weights)
    return calls


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_the_write_is_raised_after_a_complete_checkpoint(tmp_path, monkeypatch, signum):
    model = _model()
    _interrupt_mid_write(model, signum, monkeypatch)
    folder = tmp_path / "checkpoints"
    with sigterm_as_interrupt(), pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, folder, epoch=1)
    assert (folder / WEIGHTS).is_file() and (folder / "state.json").is_file()
    assert not list(folder.glob("staging.*")), "the staging file was renamed into place"

    fresh = _model()
    fresh.layers[0].kernel.assign(np.zeros((3, 2)))
    assert restore_checkpoint(fresh, folder) == 1
    np.testing.assert_array_equal(fresh.layers[0].kernel.numpy(), model.layers[0].kernel.numpy())
    save_checkpoint(fresh, folder, epoch=1)  # the clean-up's save: no "file already open"


def test_the_clean_up_save_after_a_held_interrupt_writes_nothing_new(tmp_path, monkeypatch):
    model = _model()
    callback = StepCheckpoint(tmp_path / "checkpoints", NanGuard())
    callback.set_model(model)
    calls = _interrupt_mid_write(model, signal.SIGINT, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        callback.on_epoch_end(0)
    callback.save_now()  # what fit.py does on KeyboardInterrupt
    assert len(calls) == 1


def test_deferred_interrupts_raise_nothing_without_a_signal():
    with deferred_interrupts():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
