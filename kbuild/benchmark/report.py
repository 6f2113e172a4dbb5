"""Benchmark rows, the report that holds them, and the table `kbuild bench` prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kbuild.benchmark.configs import BenchConfig

PIPELINE_TARGET = 5.0
"""Issue 6: the input pipeline should supply at least 5x what the model consumes."""


@dataclass
class BenchRow:
    """One measured configuration, or one that failed (`error` set, numbers None)."""

    config: str
    kind: str
    strategy: str | None = None
    replicas: int | None = None
    precision: str | None = None
    jit: bool | None = None
    """As Keras resolved it (`auto` is off on CPU-only machines)."""
    steps_per_execution: int | None = None
    batch_size: int | None = None
    """Global batch size; samples/s = batch_size / median step time."""
    steps: int | None = None
    """Timed steps (model) or batches (pipeline), after the warm-up."""
    samples_per_s: float | None = None
    batches_per_s: float | None = None
    ms_per_step: float | None = None
    """Median over the timed steps (model); mean per batch (pipeline)."""
    rss_peak_mib: float | None = None
    gpu_peak_mib: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, config: BenchConfig, error: str) -> BenchRow:
        return cls(config=config.label, kind=config.kind, error=error)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BenchReport:
    spec: str
    steps: int
    warmup: int
    isolated: bool
    """Each configuration ran in a fresh process, so its RSS peak is its own."""
    rows: list[BenchRow] = field(default_factory=list)
    machine: dict = field(default_factory=dict)

    @property
    def pipeline(self) -> BenchRow | None:
        return next((r for r in self.rows if r.kind == "pipeline" and r.ok), None)

    @property
    def fastest(self) -> BenchRow | None:
        models = [r for r in self.rows if r.kind == "model" and r.ok]
        return max(models, key=lambda r: r.samples_per_s, default=None)

    @property
    def pipeline_ratio(self) -> float | None:
        """Pipeline samples/s over the fastest configuration's: the input side's headroom."""
        if self.pipeline is None or self.fastest is None:
            return None
        return round(self.pipeline.samples_per_s / self.fastest.samples_per_s, 2)

    def to_dict(self) -> dict:
        return {
            "spec": self.spec, "steps": self.steps, "warmup": self.warmup, "isolated": self.isolated,
            "machine": self.machine, "rows": [r.to_dict() for r in self.rows],
            "pipeline_ratio": self.pipeline_ratio, "pipeline_target": PIPELINE_TARGET,
            "fastest": self.fastest.config if self.fastest else None,
        }


_COLUMNS = (  # header, row -> cell
    ("config", lambda r: r.config),
    ("strategy", lambda r: r.strategy),
    ("replicas", lambda r: r.replicas),
    ("precision", lambda r: r.precision),
    ("jit", lambda r: {True: "on", False: "off"}.get(r.jit, "-")),
    ("spe", lambda r: r.steps_per_execution),
    ("samples/s", lambda r: f"{r.samples_per_s:,.1f}"),
    ("ms/step", lambda r: f"{r.ms_per_step:.2f}"),
    ("RSS peak MiB", lambda r: f"{r.rss_peak_mib:,.0f}"),
    ("GPU peak MiB", lambda r: "-" if r.gpu_peak_mib is None else f"{r.gpu_peak_mib:,.0f}"),
)


def _cells(row: BenchRow) -> list[str]:
    if not row.ok:
        return [row.config, f"error: {row.error}"]
    return [str("-" if (value := cell(row)) is None else value) for _, cell in _COLUMNS]


def format_report(report: BenchReport) -> str:
    """A Markdown table (readable in a terminal, pasteable into RESULTS.md) and the ratio line."""
    header = [name for name, _ in _COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in report.rows]
    lines.append("")
    lines.append(_ratio_line(report))
    if not report.isolated:
        lines.append("RSS peak: the high-water mark of this one process so far, not per configuration "
                     "(run without --in-process for per-configuration peaks).")
    return "\n".join(lines)


def _ratio_line(report: BenchReport) -> str:
    ratio, fastest, pipeline = report.pipeline_ratio, report.fastest, report.pipeline
    if ratio is None:
        return "pipeline ratio: not available (the pipeline row or every model row failed)"
    verdict = "meets" if ratio >= PIPELINE_TARGET else "is BELOW"
    return (f"pipeline ratio: {pipeline.samples_per_s:,.1f} / {fastest.samples_per_s:,.1f} samples/s "
            f"({fastest.config}) = {ratio:.2f}x; {verdict} the {PIPELINE_TARGET:g}x target")
