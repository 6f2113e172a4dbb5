"""Fuzzing the files kbuild reads back from a run folder (issue 29, item 3): truncated, overwritten,
emptied or replaced, each is either still readable or refused with a `DamagedRunFile` naming it --
never a bare ValueError, OSError or UnicodeDecodeError."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kbuild.runs import DamagedRunFile, RunFolder, check_resumable, load_trained_model, write_atomic
from tests.fuzz.outcomes import record

keras = pytest.importorskip("keras")

FILES = ["model.keras", "checkpoints/latest.weights.h5", "checkpoints/rng.npz", "checkpoints/state.json",
         "checkpoints/selection.json", "results.json"]


def _model():
    import numpy as np

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dropout(0.1, seed=1), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def template(tmp_path_factory, model):
    """A run folder with every file kind a trained run has, written by kbuild's own writers."""
    from kbuild.training.checkpoint import save_checkpoint

    folder = RunFolder(tmp_path_factory.mktemp("run"))
    model.save(folder.model)
    save_checkpoint(model, folder.checkpoints, epoch=1)
    write_atomic(folder.checkpoints / "selection.json", '{"epoch": 1, "checkpoint_best": 0.5, "early_stopping": null}')
    folder.write_results({"metrics": {"test": {"accuracy": 0.5}}, "labels": ["a", "b"]})
    return folder.path


@st.composite
def damage(draw):
    """(file, kind, bytes transform) for one damaged run file."""
    name = draw(st.sampled_from(FILES))
    kind = draw(st.sampled_from(["truncate", "overwrite", "replace", "empty", "prefix", "delete_tail"]))
    fraction = draw(st.floats(0.0, 1.0))
    noise = draw(st.binary(min_size=1, max_size=64))

    def apply(data: bytes) -> bytes:
        at = int(len(data) * fraction)
        return {
            "truncate": data[:at],
            "overwrite": data[:at] + noise + data[at + len(noise):],
            "replace": noise,
            "empty": b"",
            "prefix": noise + data,
            "delete_tail": data[:max(0, len(data) - 1 - at // 8)],
        }[kind]

    return name, kind, apply


@given(damage())
def test_damaged_run_files(template, model, case):
    name, kind, apply = case
    with tempfile.TemporaryDirectory() as scratch:
        run = Path(shutil.copytree(template, Path(scratch) / "run"))
        target = run / name
        target.write_bytes(apply(target.read_bytes()))
        folder = RunFolder(run)
        readers = [lambda: check_resumable(folder), folder.read_results]
        if name == "model.keras":
            readers.append(lambda: load_trained_model(folder))
        if name.startswith("checkpoints/"):
            readers.append(lambda: _restore(model, folder))
        for read in readers:
            try:
                read()
            except DamagedRunFile as exc:
                assert str(exc).startswith(f"{target}: "), exc  # the damaged file, by name
                assert "; " in str(exc)  # ...then what to do
                record("run_files", "clean_error")
            else:
                record("run_files", "accepted_valid")


def _restore(model, folder: RunFolder) -> None:
    from kbuild.training.checkpoint import restore_checkpoint
    from kbuild.training.stopping import SelectionState

    restore_checkpoint(model, folder.checkpoints)
    SelectionState(folder.checkpoints, None, _Best(), None).restore()


class _Best:
    best = None
