"""Where a kbuild training step spends its time, in CPU milliseconds per step (user + system, all
threads: unlike wall time it hardly moves with other jobs on the machine, so it can be measured on
a busy one). Alternating rounds, the same batches for every variant.

    PYTHONPATH=. .venv/bin/python benchmarks/step_profile.py [--spec specs/sst2_bilstm.yaml] [--steps 150] [--rounds 4]

Variants, each `model.fit` for --steps steps after a warm-up:
- the kbuild model with no callbacks, with each of kbuild's per-step callbacks alone, with all of them;
- the kbuild model with only `accuracy` (no macro-F1), and the same architecture written by hand
  (benchmarks/hand_written.py; BiLSTM or Transformer by the spec's block) on kbuild's batches;
- kbuild's bucketing against the powers of two it used before (8, 16, 32, 64).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from hand_written import bilstm_classifier, transformer_classifier  # noqa: E402  (benchmarks/)

import kbuild  # noqa: E402
import kbuild.data.pipeline as pipeline  # noqa: E402
from kbuild.layers import SparseMacroF1  # noqa: E402
from kbuild.tasks.bundle import build as build_data  # noqa: E402
from kbuild.tasks.compose import build_model  # noqa: E402
from kbuild.training.callbacks import MetricsLog, NanGuard, StepLimit, Throughput  # noqa: E402
from kbuild.training.checkpoint import StepCheckpoint  # noqa: E402


def powers_of_two(max_length: int) -> list[int]:
    """The bucket lengths before this change: max_length / 8, / 4, / 2 and max_length (>= 8)."""
    return sorted({max_length // d for d in (8, 4, 2) if max_length // d >= 8} | {max_length})


def cpu_ms_per_step(model, dataset, steps: int, callbacks=()) -> float:
    start = time.process_time()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=list(callbacks))
    return (time.process_time() - start) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/sst2_bilstm.yaml")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    spec = kbuild.load_spec(args.spec, ["data.limit=30000"])
    tmp = Path(tempfile.mkdtemp())
    bundle = build_data(spec, assets_dir=tmp, splits=("train",))
    vocab, labels = bundle.tokenizer.vocabulary_size, bundle.labels
    recurrent = spec.model.blocks[0].type in ("lstm", "bilstm", "gru")

    def compiled(model, metrics):
        model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0), loss="sparse_categorical_crossentropy",
                      metrics=metrics)
        return model

    def kbuild_metrics():
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy"), SparseMacroF1(len(labels))]

    kbuild_model = compiled(build_model(spec, vocab, labels), kbuild_metrics())
    hand = bilstm_classifier(vocab, len(labels)) if recurrent else transformer_classifier(vocab, spec.preprocess.max_length, len(labels))
    guard = NanGuard()
    variants = {
        "kbuild model, no callbacks": (kbuild_model, lambda: []),
        "+ NanGuard": (kbuild_model, lambda: [NanGuard()]),
        "+ Throughput": (kbuild_model, lambda: [Throughput(spec.train.batch_size)]),
        "+ StepLimit": (kbuild_model, lambda: [StepLimit(10**9)]),
        "+ StepCheckpoint": (kbuild_model, lambda: [StepCheckpoint(tmp / "ck", guard, None)]),
        "+ TensorBoard": (kbuild_model, lambda: [keras.callbacks.TensorBoard(str(tmp / "tb"), write_graph=False, profile_batch=0)]),
        "+ all of kbuild's": (kbuild_model, lambda: [NanGuard(), Throughput(spec.train.batch_size), StepLimit(10**9),
                                                     StepCheckpoint(tmp / "ck2", guard, None), MetricsLog(tmp / "m.jsonl"),
                                                     keras.callbacks.TensorBoard(str(tmp / "tb2"), write_graph=False, profile_batch=0)]),
        "kbuild model, accuracy only": (compiled(build_model(spec, vocab, labels), ["accuracy"]), lambda: []),
        "hand-written, accuracy only": (compiled(hand, ["accuracy"]), lambda: []),
    }
    datasets = {"buckets now": bundle.fresh_dataset("train").repeat()}
    now = pipeline.bucket_lengths
    pipeline.bucket_lengths = powers_of_two
    datasets["buckets before (8/16/32/64)"] = bundle.fresh_dataset("train").repeat()
    pipeline.bucket_lengths = now

    runs = [(name, model, make, datasets["buckets now"]) for name, (model, make) in variants.items()]
    runs.append(("kbuild model, buckets before (8/16/32/64)", kbuild_model, lambda: [], datasets["buckets before (8/16/32/64)"]))
    for _, model, _, dataset in runs:
        model.fit(dataset, epochs=1, steps_per_epoch=40, verbose=0)  # trace every shape first
    results: dict[str, list[float]] = {name: [] for name, *_ in runs}
    for _ in range(args.rounds):
        for name, model, make, dataset in runs:
            results[name].append(cpu_ms_per_step(model, dataset, args.steps, make()))
    base = statistics.median(results["kbuild model, no callbacks"])
    print(f"{args.spec}: CPU ms per step (median of {args.rounds} rounds of {args.steps} steps; load {os.getloadavg()[0]:.1f})")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values):.2f} | {statistics.median(values) / base:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
