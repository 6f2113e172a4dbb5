"""kbuild-compiled model vs the same architecture written by hand in Keras, side by side.

Both models train on the same batches of the kbuild SST-2 pipeline (the first `--steps`, cached in
memory), same batch size, same optimizer, same XLA setting. Rounds alternate hand / kbuild / kbuild+callbacks so machine
noise hits all alike; the first round (tracing and compilation) is discarded.

    .venv/bin/python benchmarks/overhead.py [--spec specs/sst2_transformer.yaml] [--steps 150] [--rounds 4]

Prints a table and writes benchmarks/out/overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from hand_written import transformer_classifier  # noqa: E402  (benchmarks/, the script's folder)

import kbuild  # noqa: E402
from kbuild.tasks.bundle import build as build_data  # noqa: E402
from kbuild.tasks.compose import build_model  # noqa: E402
from kbuild.training.callbacks import ExecutionTimer, MetricsLog, NanGuard, Throughput  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def compile_like_kbuild(model: keras.Model, jit: bool) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.AdamW(3e-4, weight_decay=0.01, clipnorm=1.0),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit,
    )
    return model


def time_steps(model: keras.Model, dataset, steps: int, batch_size: int, callbacks=()) -> float:
    """Samples/s from the median step (each step's wall time, its callbacks included): robust to
    the stalls of a shared machine, which swung whole-call rates by 2x between rounds."""
    timer = ExecutionTimer()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[*callbacks, timer])
    return batch_size / statistics.median(timer.durations)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", default="specs/sst2_transformer.yaml")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--no-jit", action="store_true")
    args = parser.parse_args()

    spec = kbuild.load_spec(args.spec)
    with tempfile.TemporaryDirectory() as assets:
        bundle = build_data(spec, assets_dir=Path(assets), splits=("train",))
    # The same `steps` batches for every timed call, from memory: one pass fills the cache. A fresh
    # iterator over the shuffled stream refills its 20,000-row shuffle buffer on every fit call,
    # a fixed cost that made all three models run at the same 313 samples/s (RESULTS.md).
    dataset = bundle.datasets["train"].take(args.steps).cache()
    for _ in dataset:
        pass
    vocab, labels = bundle.tokenizer.vocabulary_size, bundle.labels
    batch = spec.train.batch_size
    jit = not args.no_jit

    models = {
        "hand-written keras": (compile_like_kbuild(transformer_classifier(vocab, spec.preprocess.max_length, len(labels)), jit), ()),
        "kbuild model": (compile_like_kbuild(build_model(spec, vocab, labels), jit), ()),
    }
    with tempfile.TemporaryDirectory() as tmp:
        kbuild_callbacks = (NanGuard(), Throughput(batch), MetricsLog(Path(tmp) / "metrics.jsonl"))
        models["kbuild model + kbuild callbacks"] = (compile_like_kbuild(build_model(spec, vocab, labels), jit), kbuild_callbacks)
        rates: dict[str, list[float]] = {name: [] for name in models}
        for round_ in range(args.rounds + 1):
            for name, (model, callbacks) in models.items():
                rate = time_steps(model, dataset, args.steps, batch, callbacks)
                if round_:  # round 0 traces and compiles
                    rates[name].append(rate)
            print(f"round {round_}: " + ", ".join(f"{n} {r[-1]:.0f}/s" for n, r in rates.items() if r), file=sys.stderr)

    base = statistics.median(rates["hand-written keras"])
    rows = {name: {"samples_per_s": round(statistics.median(r), 1), "ratio": round(statistics.median(r) / base, 3), "rounds": [round(x, 1) for x in r]} for name, r in rates.items()}
    print(f"\n{'model':34} {'samples/s':>10} {'ratio':>7}")
    for name, row in rows.items():
        print(f"{name:34} {row['samples_per_s']:>10.1f} {row['ratio']:>7.3f}")
    OUT.mkdir(exist_ok=True)
    record = {"spec": args.spec, "steps": args.steps, "rounds": args.rounds, "batch_size": batch, "jit_compile": jit,
              "parameters": {"hand": models["hand-written keras"][0].count_params(), "kbuild": models["kbuild model"][0].count_params()},
              "results": rows}
    (OUT / "overhead.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
