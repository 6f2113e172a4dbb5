"""`kbuild bench`: configuration parsing, the report, and a real (tiny) run whose failing
configuration becomes an error row instead of ending the benchmark."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from kbuild.benchmark import (
    PIPELINE,
    BenchConfig,
    BenchConfigError,
    BenchOptions,
    BenchReport,
    BenchRow,
    default_configs,
    format_report,
    parse_configs,
    run_bench,
    runner,
)
from kbuild.cli import cli

FAST = BenchOptions(steps=3, warmup=1, isolate=False)


def test_configs_parse_into_spec_overrides():
    bf16, mirrored = parse_configs(["cpu/mixed_bfloat16/jit, mirrored:2/spe4"])
    assert bf16.label == "cpu/mixed_bfloat16/jit"
    assert bf16.overrides() == ["train.strategy=cpu", "train.mixed_precision=mixed_bfloat16",
                                "train.jit_compile=true", "train.steps_per_execution=1"]
    assert mirrored.label == "mirrored:2/float32/nojit/spe4" and mirrored.needs_fresh_process
    assert "train.devices=2" in mirrored.overrides() and "train.steps_per_execution=4" in mirrored.overrides()
    assert parse_configs(["one_device/autojit"])[0].overrides()[2] == "train.jit_compile=auto"


@pytest.mark.parametrize("text, named", [("gpu/float32", "'gpu'"), ("cpu/bf16", "'bf16'"),
                                         ("cpu/spe0", "'spe0'"), ("mirrored:x", "'x'")])
def test_bad_configs_name_the_token(text, named):
    with pytest.raises(BenchConfigError, match=named):
        parse_configs([text])


def test_default_matrix_on_cpu_covers_precision_jit_and_mirrored():
    labels = [c.label for c in default_configs(gpus=0)]
    assert labels == ["cpu/float32/nojit", "cpu/float32/jit", "cpu/mixed_bfloat16/nojit",
                      "cpu/mixed_bfloat16/jit", "mirrored:2/float32/nojit"]
    assert all(c.strategy == "one_device" for c in default_configs(gpus=1))


def _row(config, samples, kind="model"):
    return BenchRow(config=config, kind=kind, strategy="cpu", replicas=1, precision="float32", jit=False,
                    steps_per_execution=1, batch_size=32, steps=3, samples_per_s=samples, batches_per_s=samples / 32,
                    ms_per_step=32_000 / samples, rss_peak_mib=900.0)


def test_report_ratio_uses_the_fastest_model_and_errors_stay_rows():
    report = BenchReport("s.yaml", 3, 1, isolated=True, rows=[
        _row("input pipeline only", 4000.0, kind="pipeline"), _row("a", 500.0), _row("b", 1000.0),
        BenchRow.failed(BenchConfig(strategy="tpu"), "TrainingError: strategy tpu: no TPU found"),
    ])
    assert report.fastest.config == "b" and report.pipeline_ratio == 4.0
    table = format_report(report)
    assert "| tpu/float32/nojit | error: TrainingError: strategy tpu: no TPU found |" in table
    assert "= 4.00x; is BELOW the 5x target" in table
    assert json.loads(json.dumps(report.to_dict()))["fastest"] == "b"


def test_a_worker_that_dies_becomes_an_error_row(monkeypatch, tiny_spec_file):
    monkeypatch.setattr(runner.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, -9, "", "oom\nKilled\n"))
    row = runner._in_subprocess(tiny_spec_file, (), BenchConfig(), BenchOptions())
    assert not row.ok and row.error == "worker exited with code -9: Killed"


def test_worker_reports_a_bad_configuration_as_a_row(tiny_spec_file):
    # devices 0 fails spec validation in the worker, before TensorFlow starts: a fast subprocess.
    row = runner._in_subprocess(tiny_spec_file, (), BenchConfig(strategy="mirrored", devices=0), BenchOptions())
    assert not row.ok and "train.devices" in row.error


def test_tiny_bench_measures_pipeline_and_model_and_keeps_going_past_a_failure(tiny_spec_file):
    seen = []
    report = run_bench(tiny_spec_file, ["train.max_steps=null"],
                       parse_configs(["parameter_server", "cpu/mixed_bfloat16/nojit"]), FAST,
                       on_row=lambda i, n, row: seen.append((i, n, row.config)))
    pipeline, failed, model = report.rows
    assert [s[:2] for s in seen] == [(1, 3), (2, 3), (3, 3)]
    assert pipeline.kind == "pipeline" and pipeline.samples_per_s > 0 and pipeline.batches_per_s > 0
    assert "parameter_server" in failed.error and "TF_CONFIG" in failed.error
    assert model.ok and model.samples_per_s > 0 and model.ms_per_step > 0 and model.steps == 3
    assert (model.strategy, model.replicas, model.precision, model.jit) == ("cpu", 1, "mixed_bfloat16", False)
    assert model.rss_peak_mib > 0 and model.gpu_peak_mib is None
    assert report.pipeline_ratio == pytest.approx(pipeline.samples_per_s / model.samples_per_s, rel=0.01)


def test_cli_prints_json_and_writes_out(tiny_spec_file, tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", str(tiny_spec_file), "--steps", "2", "--warmup", "1", "--in-process",
                                      "--configs", "cpu/float32/nojit", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == json.loads(out.read_text())
    assert [r["config"] for r in printed["rows"]] == [PIPELINE.label, "cpu/float32/nojit"]
    assert printed["rows"][1]["samples_per_s"] > 0 and printed["pipeline_ratio"] > 0


def test_cli_rejects_a_bad_config_with_exit_2(tiny_spec_file):
    result = CliRunner().invoke(cli, ["bench", str(tiny_spec_file), "--configs", "cpu/fp8"])
    assert result.exit_code == 2 and "unknown setting 'fp8'" in result.output
