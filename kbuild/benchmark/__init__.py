"""`kbuild bench`: time the spec's model under several strategy / precision / XLA settings, and
its input pipeline alone, on this machine."""

from kbuild.benchmark.configs import (
    PIPELINE,
    BenchConfig,
    BenchConfigError,
    default_configs,
    parse_configs,
)
from kbuild.benchmark.report import BenchReport, BenchRow, format_report
from kbuild.benchmark.runner import BenchOptions, run_bench

__all__ = [
    "PIPELINE",
    "BenchConfig",
    "BenchConfigError",
    "BenchOptions",
    "BenchReport",
    "BenchRow",
    "default_configs",
    "format_report",
    "parse_configs",
    "run_bench",
]
