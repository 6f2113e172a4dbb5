"""Issue 29, item 3: a damaged run folder is an error naming the file, what is wrong with it and
what to do, never a bare ValueError/OSError/UnicodeDecodeError; `train --resume` finds the damage
before it trains; results and spec are written atomically."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from kbuild.cli import cli
from kbuild.runs import DamagedRunFile, RunFolder, check_resumable, write_atomic


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A private copy of the session's tiny trained run, to damage."""
    return shutil.copytree(tiny_run, tmp_path / "run")


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_truncated_model_is_named_with_what_to_do(run_copy):
    _truncate(run_copy / "model.keras")
    result = CliRunner().invoke(cli, ["evaluate", str(run_copy)])
    assert result.exit_code == 1, result.output
    # Before: "ValueError: File not found: filepath=RUN/model.keras", for a file that exists.
    assert (f"{run_copy / 'model.keras'}: is a truncated .keras archive (zip) (its end is missing); "
            "retrain the run (kbuild train SPEC, into a new --run-dir)") in result.output
    assert "File not found" not in result.output


def test_an_overwritten_checkpoint_is_named_when_resuming(run_copy):
    weights = run_copy / "checkpoints" / "latest.weights.h5"
    weights.write_bytes(os.urandom(4096))
    result = CliRunner().invoke(cli, ["train", str(run_copy / "spec.yaml"), "--run-dir", str(run_copy), "--resume"])
    assert result.exit_code == 1, result.output
    # Before: "OSError: Unable to synchronously open file (file signature not found)", naming no file.
    assert (f"{weights}: is not an HDF5 file: it was overwritten or damaged; drop --resume to train from the start "
            "(or move the run's checkpoints/ folder away)") in result.output


def test_a_truncated_checkpoint_is_named_by_the_restore_itself(tmp_path):
    import keras
    import numpy as np

    from kbuild.training.checkpoint import WEIGHTS, restore_checkpoint, save_checkpoint

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)
    save_checkpoint(model, tmp_path, epoch=1)
    _truncate(tmp_path / WEIGHTS)
    with pytest.raises(DamagedRunFile, match=rf"{tmp_path / WEIGHTS}: cannot be read \(OSError: .*truncated file.*"
                                             r"drop --resume to train from the start"):
        restore_checkpoint(model, tmp_path)


def test_garbage_results_are_named_with_the_byte(run_copy):
    (run_copy / "results.json").write_bytes(b'{"metrics": {"te\xff\xfe": 1}}')
    with pytest.raises(DamagedRunFile) as raised:
        RunFolder(run_copy).read_results()
    # Before: "UnicodeDecodeError ... position 17", naming no file.
    assert str(raised.value) == (f"{run_copy / 'results.json'}: is not UTF-8 text (byte 16 is b'\\xff'); "
                                 "retrain the run (kbuild train SPEC, into a new --run-dir)")
    (run_copy / "results.json").write_text('{"metrics": ')
    with pytest.raises(DamagedRunFile, match=r"results.json: is not valid JSON \(line 1, column 13: Expecting value\)"):
        RunFolder(run_copy).read_results()
    result = CliRunner().invoke(cli, ["export", str(run_copy), "--out", str(run_copy / "export")])
    assert result.exit_code == 1 and "results.json: is not valid JSON" in result.output, result.output


def test_resume_with_a_truncated_model_fails_before_training(run_copy):
    _truncate(run_copy / "model.keras", keep=0.9)
    epochs_before = (run_copy / "metrics.jsonl").read_text()
    result = CliRunner().invoke(cli, ["train", str(run_copy / "spec.yaml"), "--run-dir", str(run_copy), "--resume",
                                      "--set", "train.max_steps=12", "--set", "train.epochs=2"])
    assert result.exit_code == 1, result.output
    assert f"{run_copy / 'model.keras'}: is a truncated .keras archive" in result.output
    # Before: it trained another epoch (metrics.jsonl grew) and only then failed, so it could never finish.
    assert (run_copy / "metrics.jsonl").read_text() == epochs_before


def test_check_resumable_passes_an_intact_run_and_names_each_damaged_file(run_copy):
    check_resumable(RunFolder(run_copy))
    vocabulary = run_copy / "assets" / "vocab.txt"
    vocabulary.write_bytes(b"")  # killed while the vocabulary was written: a resume would encode with nothing
    with pytest.raises(DamagedRunFile, match=rf"{vocabulary}: is empty \(0 bytes\).*; drop --resume to train from the start"):
        check_resumable(RunFolder(run_copy))
    vocabulary.unlink()
    state = run_copy / "checkpoints" / "state.json"
    state.write_text("")
    with pytest.raises(DamagedRunFile, match=r"state.json: is empty \(0 bytes\)"):
        check_resumable(RunFolder(run_copy))


def test_an_atomic_write_that_fails_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    write_atomic(target, json.dumps({"metrics": 1}))

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(target), "write_text", full_disk)
    with pytest.raises(OSError):
        write_atomic(target, json.dumps({"metrics": 2}))
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"metrics": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temp file left behind
