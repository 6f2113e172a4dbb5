"""`train.jit_compile: auto` and `train.steps_per_execution: auto`, chosen by measurement.

Whether XLA helps depends on the model and the machine: on these 2-core CPUs it made the
quickstart BiLSTM 3x slower and left the SST-2 Transformer as it was. So instead of a fixed guess,
training starts with a short timed probe of the real model on the run's real first batches: each
candidate is built and compiled exactly as training would, runs a couple of warm-up executions
(tracing, XLA compilation) and then a few timed ones within a small fixed budget. The fastest
wins only when it beats the plain setting (XLA off, one step per execution) by `MARGIN`; the
choice and its timings are logged ("XLA off: 41 ms/step against 63 ms/step with") and cached in
the run folder under the spec's hash and the machine, so a resume, and any later run of the same
spec on the same machine, skips the probe.
A probe other processes disturbed (`DISTURBED_SHARE` of the CPUs) keeps the plain setting and is
not cached: its timings compare the other processes' bursts, not the candidates.

A probe never changes the result. The plain setting is timed on the run's real model, whose
variables (weights, optimizer state, seed-generator states) are put back afterwards; it keeps
its traced step, so a run too short to probe anything else pays only for the timed steps. The
alternatives run on throwaway models; afterwards Keras's session (layer names) is reset and the
real model is built again, from the same weights because every build seeds itself
(`kbuild.model.build_backbone`), so it sees the same batches and follows the same loss curve as
without a probe (tests/test_execution_probe.py).
`steps_per_execution` also changes nothing a run computes: its candidates are only the ones that
divide the epoch and the step budget (Keras runs whole executions, so any other would add steps),
and it stays 1 when pruning applies its masks every `frequency` steps.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kbuild.runs import RunFolder
from kbuild.spec import Spec

MIN_STEPS = 300
"""Runs shorter than this many steps are not probed at all."""
MIN_RUN_S = 900.0
"""The plain setting is timed first (a few seconds); the alternatives are probed only when that
puts the run at this many seconds or more. Measured here: probing XLA for the SST-2 Transformer
took about a minute (an XLA compile per bucket length), 11 % of its 9-minute run, so only runs of
15 minutes and longer (a masked-LM pretraining, a MiniLM fine-tune) can repay it."""
MARGIN = 0.05
"""A candidate must be this much faster than the plain setting to be chosen."""
WARMUP_EXECUTIONS = 2
TIMED_STEPS = 16
FIRST_BUDGET_S = 1.5
BUDGET_S = 5.0
"""Seconds of timed steps per candidate (after its warm-up); fewer steps are timed when slow."""
SPE_CANDIDATES = (8, 32)
CACHE_FILE = "execution.json"
DISTURBED_SHARE = 0.2
"""A probe during which other processes used more than this share of the machine's CPU time is
not trusted: the plain setting is kept and nothing is cached. Measured: an AESLC MiniLM probe timed
while a test ran beside it chose XLA (7.2 against 8.6 s/step); undisturbed, XLA was 14.0 s/step
against 4.3, a run 3.3x slower."""
PROC_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class Candidate:
    jit_compile: bool | str
    """True, False, or "auto" when not probed: Keras decides (off on CPU and under tf.distribute)."""
    steps_per_execution: int

    @property
    def label(self) -> str:
        xla = {True: "XLA on", False: "XLA off"}.get(self.jit_compile, "XLA as Keras decides")
        return f"{xla}, {self.steps_per_execution} step(s) per execution"


PLAIN = Candidate(False, 1)


@dataclass
class ExecutionChoice:
    """The settings a run trains with, and how they were chosen (written to results.json)."""

    jit_compile: bool | str
    steps_per_execution: int
    source: str
    """"spec" (both set), "probe", "cache" or "default" (not probed: why is in `reason`)."""
    reason: str = ""
    ms_per_step: dict[str, float | None] = field(default_factory=dict)
    probe_seconds: float = 0.0
    key: str = ""

    @property
    def candidate(self) -> Candidate:
        return Candidate(self.jit_compile, self.steps_per_execution)

    def describe(self) -> str:
        timings = ", ".join(f"{label}: {_ms(ms)}" for label, ms in self.ms_per_step.items())
        how = {"probe": f"probed in {self.probe_seconds:.1f} s", "cache": "cached probe", "spec": "set in the spec",
               "default": self.reason}[self.source]
        note = f"; {self.reason}" if self.reason and self.source != "default" else ""
        return f"execution: {self.candidate.label} ({how}{'; ' + timings if timings else ''}{note})"

    def record(self) -> dict[str, Any]:
        return asdict(self)


def _ms(value: float | None) -> str:
    return "failed" if value is None else f"{value:.1f} ms/step"


def choose_execution(spec: Spec, folder: RunFolder, steps_per_epoch: int, total_steps: int,
                     build: Callable[[Candidate, int], Any], dataset: Callable[[], Any],
                     reset: Callable[[], None], multi_worker: bool, log: Callable[[str], None],
                     real: Callable[[Candidate], tuple[Any, Callable[[], None]]] | None = None) -> ExecutionChoice:
    """The run's jit_compile and steps_per_execution.

    `build(candidate, steps)` returns a compiled throwaway model; `real(candidate)`, when given,
    the run's own compiled model and a function that restores its state, on which the first
    (plain) candidate is timed; `dataset()` the train stream from its first batch; `reset()` puts
    Keras's session (layer names) back as it was before the probe, and is called only when
    throwaway models were built. Explicit spec values are kept; `auto` ones are probed (or read
    from the cache).
    """
    train = spec.train
    jits = [False, True] if train.jit_compile == "auto" else [bool(train.jit_compile)]
    spes = _spe_candidates(spec, steps_per_epoch, total_steps)
    fixed = Candidate(train.jit_compile, spes[0])  # what a run that is not probed trains with
    if len(jits) == 1 and len(spes) == 1:
        explicit = train.steps_per_execution != "auto"
        return ExecutionChoice(fixed.jit_compile, fixed.steps_per_execution, "spec" if explicit else "default",
                               reason="" if explicit else _spe_reason(spec) or "no divisor of the epoch to probe")
    if multi_worker:  # every worker would have to agree on one measurement
        return ExecutionChoice(fixed.jit_compile, fixed.steps_per_execution, "default",
                               reason="not probed under multi_worker (the workers must agree)")
    if total_steps < MIN_STEPS:
        return ExecutionChoice(fixed.jit_compile, fixed.steps_per_execution, "default",
                               reason=f"not probed: {total_steps} steps is too short to repay a probe")
    key = cache_key(spec)
    cached = _read_cache(folder, key, jits, spes)
    if cached is not None:
        return cached
    started = time.perf_counter()
    load = CpuShare()
    throwaways: list[Candidate] = []

    def throwaway(candidate: Candidate) -> Callable[[int], tuple[Any, None]]:
        def make(steps: int) -> tuple[Any, None]:
            throwaways.append(candidate)
            return build(candidate, steps), None
        return make

    try:
        timings, note = _probe(jits, spes, throwaway, real, dataset, log, total_steps)
    finally:
        if throwaways:
            reset()
    choice = _pick(timings, jits, spes)
    choice.reason = note
    choice.probe_seconds = round(time.perf_counter() - started, 2)
    choice.key = key
    other = load.other_share()
    if other is not None and other > DISTURBED_SHARE:
        plain = Candidate(jits[0], spes[0])
        choice.jit_compile, choice.steps_per_execution = plain.jit_compile, plain.steps_per_execution
        choice.reason = (f"other processes used {other:.0%} of the CPUs during the probe, so its timings are not "
                         f"trusted: kept {plain.label}, not cached")
        return choice
    _write_cache(folder, choice)
    return choice


class CpuShare:
    """Other processes' share of the machine's CPU time from construction to `other_share()`
    (Linux's /proc/stat, less this process's own CPU time); None where it cannot be read."""

    def __init__(self) -> None:
        self._start = _cpu_seconds()

    def other_share(self) -> float | None:
        end = _cpu_seconds()
        if self._start is None or end is None or end[1] <= self._start[1]:
            return None
        (busy0, total0, own0), (busy1, total1, own1) = self._start, end
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / (total1 - total0)


def _cpu_seconds() -> tuple[float, float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, and this process's CPU seconds."""
    try:
        values = [int(v) for v in PROC_STAT.read_text().split("\n", 1)[0].split()[1:9]]
        tick = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    if len(values) < 5:
        return None
    total = sum(values)  # user nice system idle iowait irq softirq steal (guest time is inside user)
    own = os.times()
    return (total - values[3] - values[4]) / tick, total / tick, own.user + own.system


def _spe_candidates(spec: Spec, steps_per_epoch: int, total_steps: int) -> list[int]:
    setting = spec.train.steps_per_execution
    if setting != "auto":
        return [int(setting)]
    if _spe_reason(spec):
        return [1]
    return [1, *(k for k in SPE_CANDIDATES if steps_per_epoch % k == 0 and total_steps % k == 0
                 and (spec.train.checkpoint_every or k) % k == 0)]


def _spe_reason(spec: Spec) -> str:
    """Why `steps_per_execution: auto` must stay 1 for this run ("" when it may be probed)."""
    if spec.train.steps_per_execution != "auto":
        return ""
    if getattr(spec, "prune", None) is not None:
        return "steps_per_execution 1: pruning updates its masks step by step"
    return ""


def _probe(jits: list[bool], spes: list[int], throwaway: Callable[[Candidate], Callable[[int], tuple[Any, None]]],
           real: Callable[[Candidate], tuple[Any, Callable[[], None]]] | None, dataset: Callable[[], Any],
           log: Callable[[str], None], total_steps: int) -> tuple[dict[Candidate, float | None], str]:
    """ms/step of each candidate, and a note: the plain setting first (on the real model when
    `real` is given), then (for a run long enough to repay them) XLA, then steps per execution with
    the better XLA setting. A candidate that fails to compile is recorded as None."""
    first = Candidate(jits[0], spes[0])
    make_first = throwaway(first) if real is None else (lambda steps: real(first))
    timings = {first: _time_candidate(first, make_first, dataset, log, FIRST_BUDGET_S)}
    if timings[first] is not None and (estimate := timings[first] / 1000 * total_steps) < MIN_RUN_S:
        return timings, f"about {estimate:.0f} s of training: too short to repay probing the alternatives"
    for jit in jits[1:]:
        timings[Candidate(jit, spes[0])] = _time_candidate(Candidate(jit, spes[0]), throwaway(Candidate(jit, spes[0])), dataset, log)
    best_jit = min((c for c in timings if timings[c] is not None), key=timings.get, default=Candidate(jits[0], 1)).jit_compile
    for spe in spes[1:]:
        timings[Candidate(best_jit, spe)] = _time_candidate(Candidate(best_jit, spe), throwaway(Candidate(best_jit, spe)), dataset, log)
    return timings, ""


def _time_candidate(candidate: Candidate, make: Callable[[int], tuple[Any, Callable[[], None] | None]],
                    dataset: Callable[[], Any], log: Callable[[str], None], budget_s: float = BUDGET_S) -> float | None:
    """ms/step of `candidate` on the model `make(steps)` compiles, and the function that puts
    that model's state back afterwards (None for a throwaway)."""
    from kbuild.training.callbacks import ExecutionTimer

    spe = candidate.steps_per_execution
    executions = WARMUP_EXECUTIONS + max(1, math.ceil(TIMED_STEPS / spe))
    restore = None
    try:
        model, restore = make(executions * spe)
        if candidate.jit_compile is True and not model.jit_compile:  # Keras fell back: a layer cannot be compiled
            log("execution probe: this model cannot run under XLA (Keras turned jit_compile off)")
            return None
        timer = ExecutionTimer(budget_s=budget_s, warmup=WARMUP_EXECUTIONS)
        model.fit(dataset(), epochs=1, steps_per_epoch=executions * spe, callbacks=[timer], shuffle=False, verbose=0)
    except Exception as error:  # noqa: BLE001  (a setting the model cannot run is not chosen)
        log(f"execution probe: {candidate.label} failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
        return None
    finally:
        if restore is not None:
            restore()
    timed = timer.durations[WARMUP_EXECUTIONS:]
    return round(1000 * statistics.median(timed) / spe, 2) if timed else None


def _pick(timings: dict[Candidate, float | None], jits: list[bool], spes: list[int]) -> ExecutionChoice:
    baseline = Candidate(jits[0], spes[0])
    measured = {c: ms for c, ms in timings.items() if ms is not None}
    best = min(measured, key=measured.get, default=baseline)
    if baseline in measured and measured[best] > measured[baseline] * (1 - MARGIN):
        best = baseline  # within noise of the plain setting: keep the simpler one
    return ExecutionChoice(best.jit_compile, best.steps_per_execution, "probe",
                           ms_per_step={c.label: ms for c, ms in timings.items()})


def cache_key(spec: Spec) -> str:
    """The spec's hash and the machine: a probe's answer holds for both together."""
    import tensorflow as tf

    devices = ",".join(sorted(d.device_type for d in tf.config.list_physical_devices()))
    return f"{spec.fingerprint()}/{platform.machine()}/{os.cpu_count()}cpu/{devices}/tf{tf.__version__}/{_cpu_model()}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _read_cache(folder: RunFolder, key: str, jits: list[bool], spes: list[int]) -> ExecutionChoice | None:
    """This run's cached choice, else one from another run of the same spec beside it."""
    for path in [folder.cache / CACHE_FILE, *sorted(folder.path.parent.glob(f"*/cache/{CACHE_FILE}"), reverse=True)]:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("key") == key and record.get("jit_compile") in jits and record.get("steps_per_execution") in spes:
            record["source"] = "cache"
            return ExecutionChoice(**record)
    return None


def _write_cache(folder: RunFolder, choice: ExecutionChoice) -> None:
    folder.cache.mkdir(parents=True, exist_ok=True)
    partial = folder.cache / f"{CACHE_FILE}.tmp"
    partial.write_text(json.dumps(choice.record(), indent=2))
    partial.replace(folder.cache / CACHE_FILE)
