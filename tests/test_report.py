"""`kbuild report`: the page of a tiny run holds each section with results.json's numbers; runs of
different tasks compare; a search folder renders; broken folders are one-line errors; the page
loads no external resource and renders in a real browser (headless Chromium, when installed)."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from kbuild.cli import cli
from tests.report_html import parse_report

pytest.importorskip("tensorflow")

import kbuild  # noqa: E402
from kbuild.report import ReportOptions, build_report  # noqa: E402
from kbuild.report.scores import calibration  # noqa: E402
from kbuild.report.sections.tagging import MISSED, type_confusion  # noqa: E402

CLASSIFICATION_SECTIONS = {"summary", "curves", "metrics", "confusion", "per-class", "calibration", "mistakes", "attention"}


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A private copy of the shared tiny run: reports write report.html and cache/ into it."""
    return shutil.copytree(tiny_run, tmp_path / "run")


@pytest.fixture(scope="module")
def reported(tiny_run, tmp_path_factory):
    """A copy of the tiny run with its report built once, for the tests that only read the page."""
    run = shutil.copytree(tiny_run, tmp_path_factory.mktemp("reported") / "run")
    return run, build_report([run])


@pytest.fixture(scope="module")
def tagger_run(tmp_path_factory):
    """A tiny BiLSTM-CRF tagger on a trivial CoNLL pattern (a few seconds)."""
    from tests.test_tagging_end_to_end import _conll

    folder = tmp_path_factory.mktemp("report-tagger")
    (folder / "train.txt").write_text(_conll(48))
    (folder / "valid.txt").write_text(_conll(9))
    spec = folder / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: tiny-tagger
        task: tagging
        seed: 3
        data: {{train: {folder}/train.txt, valid: {folder}/valid.txt, format: conll}}
        preprocess: {{tokenizer: {{type: whitespace}}, max_length: 8}}
        model:
          embedding: {{dim: 16, position: none}}
          blocks: [{{type: bilstm, units: 16}}]
          head: {{type: crf}}
        train: {{epochs: 3, batch_size: 8, optimizer: {{name: adam, learning_rate: 0.02}}}}
        """))
    return kbuild.train(kbuild.load_spec(spec), run_dir=folder / "run").path


def _results(run) -> dict:
    return json.loads((run / "results.json").read_text())


def test_run_report_has_every_section_with_the_numbers_of_results_json(reported):
    run, report = reported
    assert report.path == run / "report.html" and report.bytes == report.path.stat().st_size
    page = parse_report(report.path)
    assert CLASSIFICATION_SECTIONS <= set(page.sections) and page.sections == report.sections
    results = _results(run)

    metrics = next(t for t in page.tables if t.section == "metrics")
    for split, values in results["metrics"].items():
        for name, value in values.items():
            assert float(metrics.cell(split, name)) == value, (split, name)
    summary = next(t for t in page.tables if t.section == "summary" and t.columns == ["split", "examples", "skipped rows"])
    assert {row[0]: int(row[1]) for row in summary.rows} == results["counts"]

    # The report's own predictions agree with training's evaluation of the same model and split.
    per_class = next(t for t in page.tables if t.section == "per-class")
    assert int(per_class.cell("macro average", "support")) == results["counts"]["valid"]
    assert float(per_class.cell("macro average", "f1")) == pytest.approx(results["metrics"]["valid"]["macro_f1"], abs=1e-4)
    confusion = next(t for t in page.tables if t.section == "confusion")
    counts = [[int(v) for v in row[1:]] for row in confusion.rows]
    accuracy = sum(counts[i][i] for i in range(len(counts))) / sum(map(sum, counts))
    assert accuracy == pytest.approx(results["metrics"]["valid"]["accuracy"], abs=1e-6)

    # Every figure is an inline SVG with a caption and its numbers.
    assert {f.section for f in page.figures} >= {"curves", "confusion", "calibration", "attention"}
    assert all(f.has_svg and f.caption and f.has_table for f in page.figures)
    curves = next(t for t in page.tables if t.section == "curves")
    assert "learning_rate" in curves.columns and "val_loss" in curves.columns


def test_report_predictions_are_computed_once_and_cached(run_copy, capfd):
    build_report([run_copy])
    assert "computing probabilities" in capfd.readouterr().err
    assert (run_copy / "cache" / "report" / "probabilities-valid.json").is_file()
    build_report([run_copy])
    assert "computing" not in capfd.readouterr().err
    # A different example cap is a different payload: recomputed, not misread.
    build_report([run_copy], options=ReportOptions(max_examples=10))
    assert "computing probabilities" in capfd.readouterr().err
    page = parse_report(run_copy / "report.html")
    per_class = next(t for t in page.tables if t.section == "per-class")
    assert int(per_class.cell("macro average", "support")) == 10


def test_a_cached_report_imports_neither_tensorflow_nor_keras(run_copy):
    """The second report of a run reads its predictions from the cache: a fresh process then needs
    no TensorFlow (seconds of start-up) to rebuild the page."""
    build_report([run_copy])
    code = ("import sys; from kbuild.report import build_report; build_report([sys.argv[1]]); "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(run_copy)], capture_output=True, text=True, check=True,
                          cwd=os.path.dirname(os.path.dirname(kbuild.__file__)))
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr[-2000:]


def test_tagging_report_shows_per_type_scores_entity_confusion_and_highlighted_sentences(tagger_run, tmp_path):
    run = shutil.copytree(tagger_run, tmp_path / "run")
    page = parse_report(build_report([run]).path)
    assert {"per-type", "entity-confusion", "sentences"} <= set(page.sections)
    per_type = next(t for t in page.tables if t.section == "per-type" and t.caption.startswith("valid:"))
    recorded = _results(run)["metrics"]["valid"]["per_type"]
    for kind, scores in recorded.items():
        for name in ("precision", "recall", "f1", "support"):
            assert float(per_type.cell(kind, name)) == scores[name], (kind, name)
    confusion = next(t for t in page.tables if t.section == "entity-confusion")
    assert confusion.columns[-1] == MISSED and {"PER", "LOC"} <= set(confusion.columns)
    gold_entities = sum(int(v) for row in confusion.rows if row[0] != MISSED for v in row[1:])
    assert gold_entities == sum(s["support"] for s in recorded.values())
    assert any(mark.endswith("PER") for mark in page.marks) and any(mark.endswith("LOC") for mark in page.marks)


def test_two_runs_of_different_tasks_compare(run_copy, tagger_run, tmp_path):
    out = tmp_path / "compare.html"
    result = _cli("report", run_copy, tagger_run, "--out", out)
    assert result.exit_code == 0, result.output
    page = parse_report(out)
    assert {"comparison", "compare-curves", "run1-summary", "run2-summary", "run1-metrics", "run2-metrics"} <= set(page.sections)
    runs, metrics = [t for t in page.tables if t.section == "comparison"]
    first, second = _results(run_copy), _results(tagger_run)
    assert [row[1] for row in runs.rows] == ["classification", "tagging"]
    assert [int(row[runs.columns.index("parameters")]) for row in runs.rows] == [first["parameters"], second["parameters"]]
    one, two = metrics.columns[1:]
    assert float(metrics.cell("valid loss", one)) == first["metrics"]["valid"]["loss"]
    assert float(metrics.cell("valid loss", two)) == second["metrics"]["valid"]["loss"]
    assert float(metrics.cell("valid accuracy", one)) == first["metrics"]["valid"]["accuracy"]
    assert float(metrics.cell("valid f1", two)) == second["metrics"]["valid"]["f1"]
    # A binary classifier reports the F1 of its positive class under the same name (MRPC's f1).
    assert float(metrics.cell("valid f1", one)) == first["metrics"]["valid"]["f1"]


def _write_search(folder, trial_run):
    """A search folder by hand, to the contract `kbuild tune` writes."""
    folder.mkdir()
    (folder / "search.json").write_text(json.dumps({"metric": "val_accuracy", "goal": "maximize", "spec": "specs/x.yaml"}))
    rows = [(0, "COMPLETE", "0.61", "12.5", "0.001", "64"), (1, "PRUNED", "0.52", "3.1", "0.1", "32"),
            (2, "COMPLETE", "0.74", "11.0", "0.0003", "128"), (3, "FAIL", "", "0.4", "0.5", "16"),
            (4, "COMPLETE", "0.70", "10.2", "0.002", "64"), (5, "RUNNING", "", "", "0.004", "32")]
    with (folder / "trials.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["number", "state", "value", "duration_s", "params.train.optimizer.learning_rate",
                         "params.model.embedding.dim"])
        writer.writerows(rows)
    (folder / "importances.json").write_text(json.dumps({"train.optimizer.learning_rate": 0.8, "model.embedding.dim": 0.2}))
    shutil.copytree(trial_run, folder / "trials" / "2")


def test_search_folder_report_has_trials_history_and_importances(tiny_run, tmp_path):
    search = tmp_path / "search-1"
    _write_search(search, tiny_run)
    result = _cli("report", search)
    assert result.exit_code == 0, result.output
    page = parse_report(search / "report.html")
    assert {"search", "trials", "history", "importances", "best-curves"} <= set(page.sections)
    trials = next(t for t in page.tables if t.section == "trials")
    assert [row[1] for row in trials.rows] == ["COMPLETE", "PRUNED", "COMPLETE", "FAIL", "COMPLETE", "RUNNING"]
    assert trials.cell("2", "train.optimizer.learning_rate") == "0.0003"
    history = next(t for t in page.tables if t.section == "history")
    assert [[float(v) for v in row] for row in history.rows] == [[0, 0.61, 0.61], [2, 0.74, 0.74], [4, 0.70, 0.74]]
    importances = next(t for t in page.tables if t.section == "importances")
    assert [row[0] for row in importances.rows] == ["train.optimizer.learning_rate", "model.embedding.dim"]
    overview = next(t for t in page.tables if t.section == "search")
    assert overview.cell("best trial", "value") == "2" and overview.cell("trials pruned", "value") == "1"


@pytest.mark.parametrize("damage, code, message", [
    ("missing", 2, "no such folder"),
    ("not-a-run", 2, "not a kbuild run folder"),
    ("no-results", 1, "unfinished or failed (no results.json)"),
    ("torn-results", 1, "results.json:1: not valid JSON"),
    ("torn-metrics", 1, "metrics.jsonl:2: not a JSON line"),
])
def test_a_missing_or_half_written_run_folder_is_a_one_line_error(run_copy, tmp_path, damage, code, message):
    target = run_copy
    if damage == "missing":
        target = tmp_path / "absent"
    elif damage == "not-a-run":
        target = run_copy / "assets"
    elif damage == "no-results":
        (run_copy / "results.json").unlink()
    elif damage == "torn-results":
        text = (run_copy / "results.json").read_text()
        (run_copy / "results.json").write_text(text[: len(text) // 2].replace("\n", " "))
    else:
        first = (run_copy / "metrics.jsonl").read_text().splitlines()[0]
        (run_copy / "metrics.jsonl").write_text(first + "\n" + first[: len(first) // 2] + "\n")
    result = CliRunner().invoke(cli, ["report", str(target)])
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output
    assert not (run_copy / "report.html").exists()


def test_a_comparison_needs_out_and_a_search_folder_goes_alone(run_copy, tiny_run, tmp_path):
    assert "needs --out" in _cli("report", run_copy, tiny_run).output
    search = tmp_path / "search"
    _write_search(search, tiny_run)
    result = _cli("report", search, run_copy, "--out", tmp_path / "x.html")
    assert result.exit_code == 2 and "pass it alone" in result.output


def test_calibration_error_of_known_bins():
    # Two bins over [0.5, 1]: 0.6, 0.7 (both right) and 0.9, 0.95 (one right).
    found = calibration([0.6, 0.7, 0.9, 0.95], [True, True, True, False], bins=2, low=0.5)
    assert found.counts == [2, 2] and found.accuracy == [1.0, 0.5]
    assert found.ece == pytest.approx(0.5 * abs(1.0 - 0.65) + 0.5 * abs(0.5 - 0.925))


def test_entity_type_confusion_counts_wrong_types_misses_and_spurious_entities():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-LOC"]]
    kinds, matrix = type_confusion(gold, predicted)
    at = {(g, p): matrix[i][j] for i, g in enumerate(kinds) for j, p in enumerate(kinds)}
    assert at["PER", "PER"] == 1 and at["LOC", "ORG"] == 1 and at["ORG", MISSED] == 1 and at[MISSED, "LOC"] == 1
    assert sum(map(sum, matrix)) == 4


def test_tensorboard_logs_the_learning_rate_every_epoch(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tiny_run / "logs" / "train"), size_guidance={"tensors": 0})
    events.Reload()
    import tensorflow as tf

    logged = [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("epoch_learning_rate")]
    epochs = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert logged == pytest.approx([row["learning_rate"] for row in epochs])


SVG_NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def _external_references(html_path) -> list[str]:
    """Every URL the page could fetch or link to, and every construct that could load one."""
    page = parse_report(html_path)
    text = open(html_path, encoding="utf-8").read()
    local = [u for u in page.urls if not (u.startswith("#") or u.startswith("data:"))]
    text = re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+", "data:", text)  # inline images carry no URL
    urls = [u for u in re.findall(r"https?://[^\s\"'<>)]+|(?<=[\"'(])//[^\s\"'<>)]+", text) if u not in SVG_NAMESPACES]
    constructs = re.findall(r"<script|@import|url\((?!#)|<link|<iframe|<img", text)  # url(#clip) is in-page
    return local + urls + constructs


def test_report_references_no_external_resource(reported):
    assert _external_references(reported[1].path) == []


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium_offline(reported, tmp_path):
    """Chromium with every host unresolvable and a dead proxy: a page that needed the network
    would render without its figures. (The page has no script at all, so it also works with
    JavaScript off; headless Chromium itself needs scripts on to take a screenshot.)"""
    from PIL import Image, ImageStat

    report = reported[1]
    assert _external_references(report.path) == []
    offline = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
               "--proxy-server=127.0.0.1:9"]
    url = report.path.resolve().as_uri()
    env = {**os.environ, "HOME": str(tmp_path)}
    shot = tmp_path / "report.png"
    done = subprocess.run([CHROMIUM, *offline, "--window-size=1280,2400", f"--screenshot={shot}", url],
                          capture_output=True, text=True, timeout=120, env=env)
    assert shot.is_file(), done.stderr[-2000:]
    image = Image.open(shot).convert("L")
    assert image.size == (1280, 2400)
    stats = ImageStat.Stat(image)
    assert stats.stddev[0] > 10, "the screenshot is blank"
    assert len(image.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50  # text, plots, tables: many shades
    dom = subprocess.run([CHROMIUM, *offline, "--dump-dom", url], capture_output=True, text=True, timeout=120, env=env)
    assert all(f'id="{key}"' in dom.stdout for key in CLASSIFICATION_SECTIONS), dom.stderr[-2000:]
    assert dom.stdout.count("<svg") >= 4 and not math.isnan(stats.mean[0])


def test_every_report_template_ships_as_package_data():
    import configparser
    from pathlib import Path

    import kbuild.report

    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parent.parent / "setup.cfg")
    patterns = [p.strip() for p in config["options.package_data"]["kbuild.report"].replace(",", "\n").split() if p.strip()]
    root = Path(kbuild.report.__file__).parent
    shipped = {path for pattern in patterns for path in root.glob(pattern)}
    templates = {path for path in (root / "templates").rglob("*") if path.is_file()}
    assert templates and templates <= shipped, sorted(str(p.relative_to(root)) for p in templates - shipped)
