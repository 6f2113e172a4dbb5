"""Distillation (`distill:`): the student learns the teacher's soft labels, the teacher pass is
cached and reused on resume, the export holds only the student, and the teacher is checked."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.conftest import TINY_SPEC

tf = pytest.importorskip("tensorflow")

import kbuild  # noqa: E402
from kbuild.errors import TrainingError  # noqa: E402

STUDENT = ["model.blocks=[{type: bilstm, units: 8}]", "model.pooling=max", "train.max_steps=24", "train.epochs=3"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny Transformer teacher, and two BiLSTM students: soft targets only, and none."""
    folder = tmp_path_factory.mktemp("distill")
    spec = folder / "spec.yaml"
    spec.write_text(TINY_SPEC)
    teacher = kbuild.train(kbuild.load_spec(spec, ["train.max_steps=16", "train.epochs=2"]), run_dir=folder / "teacher")
    transfer = folder / "transfer.txt"
    transfer.write_text("a truly great film\nawful , boring and far too long\nnot bad\n")
    distill = (f"distill={{teacher: {teacher.path}, alpha: 0.0, temperature: 1.0, loss: kl, "
               f"transfer: [{transfer}], batch_size: 50}}")
    student = kbuild.train(kbuild.load_spec(spec, [*STUDENT, distill]), run_dir=folder / "student")
    plain = kbuild.train(kbuild.load_spec(spec, STUDENT), run_dir=folder / "plain")
    return {"teacher": teacher, "student": student, "plain": plain, "spec": spec, "distill": distill}


def _probabilities(run, texts):
    return np.array([[row["probabilities"][label] for label in sorted(row["probabilities"])]
                     for row in kbuild.predict(run.path, texts)])


def test_a_distilled_student_matches_the_teachers_soft_labels_better(runs):
    from kbuild.data.splits import read_splits

    spec = kbuild.load_spec(runs["spec"])
    texts = [example.text for example in read_splits(spec.data, spec.seed, ["valid"])["valid"].examples]
    teacher = _probabilities(runs["teacher"], texts)
    distilled = np.abs(_probabilities(runs["student"], texts) - teacher).mean()
    plain = np.abs(_probabilities(runs["plain"], texts) - teacher).mean()
    assert distilled < plain


def test_results_report_teacher_metrics_retention_and_transfer(runs):
    report = runs["student"].results["distillation"]
    assert report["teacher"] == str(runs["teacher"].path)
    assert report["teacher_metrics"] == runs["teacher"].results["metrics"]
    expected = runs["student"].results["metrics"]["valid"]["accuracy"] / runs["teacher"].results["metrics"]["valid"]["accuracy"]
    assert report["retention"]["valid"]["accuracy"] == pytest.approx(expected, abs=1e-5)
    assert report["transfer_texts"] == 3 and report["cache_reused"] is False
    assert runs["student"].results["counts"]["train"] == runs["plain"].results["counts"]["train"] + 3
    assert (runs["student"].path / "cache" / report["cache"]).is_file()


def test_the_export_holds_only_the_student(runs, tmp_path):
    version = kbuild.export(runs["student"].path, tmp_path / "export")
    loaded = tf.saved_model.load(str(version))
    exported = sum(int(np.prod(v.shape)) for v in loaded.variables if v.dtype != tf.string)
    student, teacher = runs["student"].results["parameters"], runs["teacher"].results["parameters"]
    assert student <= exported < student + teacher  # a few non-model counters, never the teacher's weights


def test_the_teacher_cache_is_reused_on_resume(runs, monkeypatch, tmp_path):
    import kbuild.compression.distillation as distillation

    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher ran again instead of reading the cache")

    monkeypatch.setattr(distillation, "teacher_outputs", no_teacher)
    resumed_dir = tmp_path / "student"
    shutil.copytree(runs["student"].path, resumed_dir)
    spec = kbuild.load_spec(runs["spec"], [*STUDENT, runs["distill"]])
    resumed = kbuild.train(spec, run_dir=resumed_dir, resume=True)
    assert resumed.results["distillation"]["cache_reused"] is True


def test_another_student_of_the_same_teacher_reads_the_teachers_cache(runs, monkeypatch, tmp_path):
    import kbuild.compression.distillation as distillation

    report = runs["student"].results["distillation"]
    assert (runs["teacher"].path / "cache" / report["cache"]).is_file()
    monkeypatch.setattr(distillation, "teacher_outputs", lambda *a, **k: pytest.fail("the teacher ran again"))
    spec = kbuild.load_spec(runs["spec"], [*STUDENT, "model.pooling=mean", runs["distill"]])
    second = kbuild.train(spec, run_dir=tmp_path / "second")
    assert second.results["distillation"]["cache_reused"] is True
    assert (second.path / "cache" / report["cache"]).is_file()


def test_a_teacher_folder_that_is_not_a_run_is_an_error(runs, tmp_path):
    spec = kbuild.load_spec(runs["spec"], [*STUDENT, f"distill={{teacher: {tmp_path}}}"])
    with pytest.raises(TrainingError, match="distill.teacher.*not a kbuild run"):
        kbuild.train(spec, run_dir=tmp_path / "run")


def test_a_teacher_of_another_task_is_an_error(runs, tmp_path):
    fake = tmp_path / "regression-teacher"
    shutil.copytree(runs["teacher"].path, fake)
    spec_text = (fake / "spec.yaml").read_text().replace("task: classification", "task: regression")
    (fake / "spec.yaml").write_text(spec_text)
    spec = kbuild.load_spec(runs["spec"], [*STUDENT, f"distill={{teacher: {fake}}}"])
    with pytest.raises(TrainingError, match="teacher.s task is regression"):
        kbuild.train(spec, run_dir=tmp_path / "run")


def test_teacher_labels_that_differ_are_an_error(runs, tmp_path):
    fake = tmp_path / "relabelled-teacher"
    shutil.copytree(runs["teacher"].path, fake)
    (fake / "assets" / "labels.txt").write_text("negative\nneutral\n")
    spec = kbuild.load_spec(runs["spec"], [*STUDENT, f"distill={{teacher: {fake}}}"])
    with pytest.raises(TrainingError, match="labels"):
        kbuild.train(spec, run_dir=tmp_path / "run")


def test_evaluate_json_shows_retention_against_the_teacher(runs):
    from click.testing import CliRunner

    from kbuild.cli import cli

    result = CliRunner().invoke(cli, ["evaluate", str(runs["student"].path), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output[result.output.index("{"):])
    assert shown["teacher"] == str(runs["teacher"].path)
    assert shown["retention"] == runs["student"].results["distillation"]["retention"]["valid"]
    assert shown["accuracy"] == runs["student"].results["metrics"]["valid"]["accuracy"]
