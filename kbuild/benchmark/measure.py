"""Measure one configuration in this process: the model's steady-state step time, or the input
pipeline's batch rate. TensorFlow must already be started with the devices the spec needs
(`prepare_devices`); the runner sees to that."""

from __future__ import annotations

import math
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from kbuild.benchmark.configs import BenchConfig
from kbuild.benchmark.report import BenchRow
from kbuild.registry import Registry
from kbuild.spec import Spec
from kbuild.tasks.checks import load_spec

MEASURES: Registry[Callable[[Spec, BenchConfig, int, int], BenchRow]] = Registry("bench kind")


def measure(spec_path: str | os.PathLike, overrides: Sequence[str], config: BenchConfig, steps: int, warmup: int) -> BenchRow:
    """The row for `config`; any failure (spec, devices, build, training) becomes an error row,
    because one configuration the machine cannot run must not end the whole benchmark."""
    try:
        spec = load_spec(spec_path, [*overrides, *config.overrides()])
        return MEASURES.get(config.kind)(spec, config, steps, warmup)
    except Exception as exc:  # noqa: BLE001  (reported in the row, by design)
        return BenchRow.failed(config, one_line(exc))


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:400]}"


def rss_peak_mib() -> float:
    """This process's peak resident set size so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def _gpu_names() -> list[str]:
    import tensorflow as tf

    return [f"GPU:{i}" for i, _ in enumerate(tf.config.list_physical_devices("GPU"))]


def _reset_gpu_peaks() -> None:
    import tensorflow as tf

    for name in _gpu_names():
        tf.config.experimental.reset_memory_stats(name)


def gpu_peak_mib() -> float | None:
    """The highest peak allocation of any GPU since the last reset, or None without GPUs."""
    import tensorflow as tf

    names = _gpu_names()
    if not names:
        return None
    return round(max(tf.config.experimental.get_memory_info(n)["peak"] for n in names) / 2**20, 1)


@MEASURES.register("model")
def measure_model(spec: Spec, config: BenchConfig, steps: int, warmup: int) -> BenchRow:
    """Median step time of `model.fit` after `warmup` steps (the first traces and compiles).

    Steps are rounded up to whole executions of `steps_per_execution` steps each.
    """
    import keras

    from kbuild.tasks.bundle import build as build_data
    from kbuild.training.callbacks import ExecutionTimer
    from kbuild.training.execution import ExecutionChoice
    from kbuild.training.fit import compile_model, global_policy_kept, training_precision
    from kbuild.training.strategy import resolve_strategy

    placement = resolve_strategy(spec.train)
    precision = training_precision(spec)
    per_call = 1 if spec.train.steps_per_execution == "auto" else spec.train.steps_per_execution
    warm_calls, timed_calls = max(1, math.ceil(warmup / per_call)), math.ceil(steps / per_call)
    with global_policy_kept():
        keras.mixed_precision.set_global_policy(precision)
        keras.utils.set_random_seed(spec.seed)
        bundle = build_data(spec, splits=("train",))
        execution = ExecutionChoice(spec.train.jit_compile, per_call, "spec")  # bench times what it is told
        model = compile_model(spec, bundle, placement, (warm_calls + timed_calls) * per_call, execution=execution)
        timer = ExecutionTimer()
        _reset_gpu_peaks()
        model.fit(bundle.fresh_dataset("train").repeat(), epochs=1, steps_per_epoch=(warm_calls + timed_calls) * per_call,
                  callbacks=[timer], shuffle=False, verbose=0)
    timed = timer.durations[warm_calls:]
    step_s = statistics.median(timed) / per_call
    return BenchRow(
        config=config.label, kind=config.kind, strategy=placement.name, replicas=placement.replicas,
        precision=precision, jit=bool(model.jit_compile), steps_per_execution=per_call,
        batch_size=spec.train.batch_size, steps=len(timed) * per_call,
        samples_per_s=round(spec.train.batch_size / step_s, 1), batches_per_s=round(1 / step_s, 2),
        ms_per_step=round(step_s * 1000, 2), rss_peak_mib=rss_peak_mib(), gpu_peak_mib=gpu_peak_mib(),
    )


@MEASURES.register("pipeline")
def measure_pipeline(spec: Spec, config: BenchConfig, steps: int, warmup: int) -> BenchRow:
    """Batches per second of the train stream with no model: what the input side can supply.

    Mean rate over the timed batches (the prefetch buffer makes single batches bursty). Alone, the
    pipeline has every core; during training it shares them with the model.
    """
    import tensorflow as tf

    from kbuild.tasks.bundle import build as build_data

    bundle = build_data(spec, splits=("train",))
    batches = iter(bundle.fresh_dataset("train").repeat())
    for _ in range(warmup):
        next(batches)
    samples = 0
    start = time.perf_counter()
    for _ in range(steps):
        samples += int(tf.nest.flatten(next(batches))[0].shape[0])
    elapsed = time.perf_counter() - start
    return BenchRow(
        config=config.label, kind=config.kind, strategy="-", replicas=None, precision="-", jit=None,
        steps_per_execution=None, batch_size=spec.train.batch_size, steps=steps,
        samples_per_s=round(samples / elapsed, 1), batches_per_s=round(steps / elapsed, 2),
        ms_per_step=round(elapsed / steps * 1000, 3), rss_peak_mib=rss_peak_mib(), gpu_peak_mib=None,
    )
