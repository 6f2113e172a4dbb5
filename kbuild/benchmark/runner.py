"""Run every configuration, each in a fresh process by default, and collect the report.

A fresh process per configuration gives each its own RSS peak, its own global dtype policy and
XLA cache, and the device layout it needs (logical CPUs are fixed when TensorFlow starts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kbuild.benchmark.configs import PIPELINE, BenchConfig, default_configs
from kbuild.benchmark.report import BenchReport, BenchRow

ROW_MARKER = "KBUILD_BENCH_ROW "
"""Prefix of the worker's result line on stdout (anything else there is ignored)."""


@dataclass(frozen=True)
class BenchOptions:
    steps: int = 30
    """Timed steps per configuration (and batches for the pipeline row)."""
    warmup: int = 5
    """Untimed steps first: the first traces and compiles the train function."""
    isolate: bool = True
    """One fresh process per configuration; False runs them here (mirrored still gets its own)."""
    timeout_s: float = 1800.0
    """A configuration running longer becomes an error row."""


def run_bench(
    spec_path: str | os.PathLike,
    overrides: Sequence[str] = (),
    configs: Sequence[BenchConfig] | None = None,
    options: BenchOptions = BenchOptions(),
    on_row: Callable[[int, int, BenchRow], None] | None = None,
) -> BenchReport:
    """Measure the input pipeline, then each configuration (default: `default_configs`).

    Args:
        spec_path: the spec file; `overrides` are `--set` strings applied before each
            configuration's own.
        on_row: called as (index, total, row) after each row, for progress output.
    """
    from kbuild.tasks.checks import load_spec

    load_spec(spec_path, overrides)  # a broken spec fails once, here, not as N error rows
    configs = list(configs) if configs else default_configs(_gpu_count())
    report = BenchReport(str(spec_path), options.steps, options.warmup, options.isolate, machine=_machine())
    todo = [PIPELINE, *configs]
    for index, config in enumerate(todo, 1):
        row = _run_one(spec_path, overrides, config, options)
        report.rows.append(row)
        if on_row is not None:
            on_row(index, len(todo), row)
    return report


def _run_one(spec_path, overrides, config: BenchConfig, options: BenchOptions) -> BenchRow:
    if options.isolate or config.needs_fresh_process:
        return _in_subprocess(spec_path, overrides, config, options)
    from kbuild.benchmark.measure import measure

    return measure(spec_path, overrides, config, options.steps, options.warmup)


def _in_subprocess(spec_path, overrides, config: BenchConfig, options: BenchOptions) -> BenchRow:
    request = {"spec": str(Path(spec_path).resolve()), "overrides": list(overrides), "config": config.to_dict(),
               "steps": options.steps, "warmup": options.warmup}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    try:
        proc = subprocess.run([sys.executable, "-m", "kbuild.benchmark.worker"], input=json.dumps(request),
                              capture_output=True, text=True, env=env, timeout=options.timeout_s)
    except subprocess.TimeoutExpired:
        return BenchRow.failed(config, f"timed out after {options.timeout_s:g} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(ROW_MARKER):
            return BenchRow(**json.loads(line[len(ROW_MARKER):]))
    last = next((line for line in reversed(proc.stderr.splitlines()) if line.strip()), "no output")
    return BenchRow.failed(config, f"worker exited with code {proc.returncode}: {last.strip()[:400]}")


def _gpu_count() -> int:
    # Listing physical devices does not start the runtime, so logical CPUs stay configurable.
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def _machine() -> dict:
    import platform

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
