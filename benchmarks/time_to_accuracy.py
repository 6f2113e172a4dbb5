"""Time to a fixed SST-2 dev accuracy: kbuild's shipped specs against the same architectures
written by hand in Keras, as a user would from the keras-io examples.

    PYTHONPATH=. .venv/bin/python benchmarks/time_to_accuracy.py [--rounds 2] [--models bilstm,transformer]
        [--eval-every 0.25] [--max-epochs 3]

Contestants, each in a fresh process, in alternating order over the rounds (so machine noise
hits all alike):
- `kbuild bilstm`: `kbuild.train(specs/sst2_bilstm.yaml)` with its defaults (length bucketing,
  the execution probe, its callbacks and per-epoch validation) — what `kbuild train` runs.
- `hand bilstm`: TextVectorization (20k words, sequences padded to 64) -> Embedding(128,
  mask_zero) -> Bidirectional(LSTM(64), return_sequences) -> GlobalMaxPooling1D -> Dropout(0.3)
  -> softmax; Adam 1e-3 with clipnorm 1.0, batch 64, validation on dev every epoch.
- `kbuild transformer` / `hand transformer`: specs/sst2_transformer.yaml, and the keras-io
  text-classification Transformer of the same size (2 blocks, dim 128, 4 heads, ff 256, learned
  positions, mean pooling, dense 64), AdamW 3e-4 with weight decay 0.01 and clipnorm 1.0 after
  100 warm-up steps of a cosine schedule, like the spec.

The clock starts before any data is read (vocabulary fitting, tokenisation and model building
count) and stops when the dev accuracy, checked every `--eval-every` of an epoch by this script,
first reaches the target (0.83 BiLSTM, 0.80 Transformer). The checks themselves are not
timed. Prints a table and writes benchmarks/out/time_to_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("KBUILD_DATA", REPO.parent / "shared" / "data"))
OUT = REPO / "benchmarks" / "out"
TARGETS = {"bilstm": 0.83, "transformer": 0.80}
SPECS = {"bilstm": REPO / "specs" / "sst2_bilstm.yaml", "transformer": REPO / "specs" / "sst2_transformer.yaml"}
LUDWIG = "Ludwig 0.10.4 BiLSTM of the same size: dev 0.843 in 112 s of training, ~1,800 samples/s (measured earlier on this kind of machine; not installed here)"


def read_tsv(path: Path) -> tuple[list[str], list[int]]:
    rows = [line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    return [text for _, text in rows], [int(label) for label, _ in rows]


class Clock:
    """Training wall time with the dev checks taken out."""

    def __init__(self):
        self.start = time.perf_counter()
        self.paused = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused


def dev_check(clock: Clock, target: float, every: int, accuracy, record: dict):
    """A callback: every `every` steps, dev accuracy (untimed); stops training at the target."""
    import keras

    class DevCheck(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps, self.epoch = 0, 0
            self.next_check = every

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            # `batch` is the last step of the call (several with steps_per_execution > 1)
            self.steps = self.epoch * self.params["steps"] + batch + 1
            if self.steps < self.next_check:
                return
            self.next_check += every
            reached_at = clock.elapsed()
            paused = time.perf_counter()
            value = accuracy(self.model)
            clock.paused += time.perf_counter() - paused
            record["checks"].append({"step": self.steps, "seconds": round(reached_at, 2), "dev_accuracy": round(value, 4)})
            print(f"  step {self.steps}: dev {value:.4f} at {reached_at:.1f} s", file=sys.stderr, flush=True)
            if value >= target and record["seconds_to_target"] is None:
                record["seconds_to_target"], record["steps_to_target"] = round(reached_at, 2), self.steps
                self.model.stop_training = True

    return DevCheck()


def run_kbuild(kind: str, eval_every: float, max_epochs: int, record: dict, overrides: list[str]) -> None:
    clock = Clock()
    import numpy as np
    import tensorflow as tf

    import kbuild
    from kbuild.tasks.bundle import load_assets

    texts, labels = read_tsv(DATA / "sst2" / "dev.tsv")
    spec = kbuild.load_spec(SPECS[kind], [f"train.epochs={max_epochs}", "train.early_stopping=null", *overrides])
    train_rows = len((DATA / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()) - 1
    every = max(1, int(eval_every * train_rows / spec.train.batch_size))
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        encoded = {}

        def accuracy(model) -> float:
            if "ids" not in encoded:  # the run's tokenizer exists once training has started
                tokenizer = load_assets(spec, run_dir / "assets").tokenizer
                encoded["ids"] = tokenizer.encode(tf.constant(texts))
            probabilities = model.predict(encoded["ids"], batch_size=256, verbose=0)
            return float(np.mean(np.argmax(probabilities, axis=-1) == np.asarray(labels)))

        run = kbuild.train(spec, run_dir=run_dir, callbacks=[dev_check(clock, TARGETS[kind], every, accuracy, record)])
        record["samples_per_s"] = run.results["samples_per_second"]
        record["execution"] = run.results.get("execution")
    record["total_seconds"] = round(clock.elapsed(), 2)


def hand_model(kind: str, vocab_size: int, max_length: int):
    from hand_written import (  # benchmarks/, the script's folder
        bilstm_classifier,
        transformer_classifier,
    )

    if kind == "bilstm":
        return bilstm_classifier(vocab_size, 2, length=max_length, dtype="int64")
    return transformer_classifier(vocab_size, max_length, 2, length=max_length, dtype="int64")


def run_hand(kind: str, eval_every: float, max_epochs: int, record: dict) -> None:
    clock = Clock()
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(42)
    train_texts, train_labels = read_tsv(DATA / "sst2" / "train.tsv")
    dev_texts, dev_labels = read_tsv(DATA / "sst2" / "dev.tsv")
    batch, max_length = 64, 64
    vectorize = keras.layers.TextVectorization(max_tokens=20000, output_sequence_length=max_length)
    vectorize.adapt(tf.data.Dataset.from_tensor_slices(train_texts).batch(1024))
    train = (tf.data.Dataset.from_tensor_slices((train_texts, train_labels)).shuffle(len(train_texts), seed=42)
             .batch(batch).map(lambda x, y: (vectorize(x), y), num_parallel_calls=tf.data.AUTOTUNE)
             .prefetch(tf.data.AUTOTUNE))
    dev = (tf.data.Dataset.from_tensor_slices((dev_texts, dev_labels)).batch(batch)
           .map(lambda x, y: (vectorize(x), y)).cache())
    dev_ids = vectorize(tf.constant(dev_texts))
    steps = -(-len(train_texts) // batch)
    if kind == "bilstm":
        optimizer = keras.optimizers.Adam(1e-3, clipnorm=1.0)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(0.0, max_epochs * steps - 100, warmup_target=3e-4, warmup_steps=100)
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=0.01, clipnorm=1.0)
    model = hand_model(kind, vectorize.vocabulary_size(), max_length)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def accuracy(model) -> float:
        probabilities = model.predict(dev_ids, batch_size=256, verbose=0)
        return float(np.mean(np.argmax(probabilities, axis=-1) == np.asarray(dev_labels)))

    started = time.perf_counter()
    model.fit(train, validation_data=dev, epochs=max_epochs, verbose=2,
              callbacks=[dev_check(clock, TARGETS[kind], max(1, int(eval_every * steps)), accuracy, record)])
    trained_steps = int(model.optimizer.iterations.numpy())
    record["samples_per_s"] = round(trained_steps * batch / (time.perf_counter() - started - clock.paused), 1)
    record["total_seconds"] = round(clock.elapsed(), 2)


def worker(name: str, eval_every: float, max_epochs: int, out: Path, overrides: list[str]) -> None:
    who, kind = name.split()
    record = {"contestant": name, "target": TARGETS[kind], "seconds_to_target": None, "steps_to_target": None, "checks": []}
    if who == "kbuild":
        run_kbuild(kind, eval_every, max_epochs, record, overrides)
    else:
        run_hand(kind, eval_every, max_epochs, record)
    out.write_text(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", default="bilstm,transformer")
    parser.add_argument("--eval-every", type=float, default=0.25, help="dev check interval, in epochs")
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="spec override for the kbuild contestants (e.g. a tokenizer to compare)")
    parser.add_argument("--only", help="comma-separated contestants to run, e.g. 'kbuild transformer'")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.eval_every, args.max_epochs, Path(args.out), args.overrides)
        return

    kinds = args.models.split(",")
    contestants = [f"{who} {kind}" for kind in kinds for who in ("kbuild", "hand")]
    if args.only:
        contestants = [name for name in contestants if name in args.only.split(",")]
    records: dict[str, list[dict]] = {name: [] for name in contestants}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            order = contestants if round_ % 2 == 0 else contestants[::-1]
            for name in order:
                out = Path(tmp) / "record.json"
                print(f"round {round_ + 1}: {name} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
                subprocess.run([sys.executable, __file__, "--worker", name, "--out", str(out),
                                "--eval-every", str(args.eval_every), "--max-epochs", str(args.max_epochs),
                                *(f"--set={o}" for o in args.overrides)],
                               check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
                records[name].append(json.loads(out.read_text()))

    def median(name: str, key: str) -> float | None:
        if not records.get(name):
            return None
        values = [r[key] for r in records[name] if r[key] is not None]
        return statistics.median(values) if len(values) == len(records[name]) else None

    def time_to_target(name: str) -> tuple[float | None, str]:
        """Median seconds to the target; a contestant that never reached it within --max-epochs
        is shown as more than its longest run ("> 412.3")."""
        reached = median(name, "seconds_to_target")
        if reached is not None:
            return reached, f"{reached:.1f}"
        if not records.get(name):
            return None, "-"
        longest = max(r["total_seconds"] for r in records[name])
        return None, f"> {longest:.1f} (not reached)"

    print(f"\nSST-2, {args.rounds} round(s), dev checked every {args.eval_every} epoch; load {os.getloadavg()[0]:.1f}\n")
    print("| model | target dev acc | kbuild s to target | hand-written s | speed-up | kbuild samples/s | hand samples/s |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for kind in kinds:
        (ours, ours_text), (theirs, theirs_text) = time_to_target(f"kbuild {kind}"), time_to_target(f"hand {kind}")
        if ours and theirs:
            ratio = f"{theirs / ours:.2f}x"
        elif ours and records.get(f"hand {kind}"):  # the hand-written model never got there: at least this
            ratio = f"> {max(r['total_seconds'] for r in records[f'hand {kind}']) / ours:.2f}x"
        else:
            ratio = "-"
        summary[kind] = {"kbuild_s": ours, "hand_s": theirs, "speed_up": ratio,
                         "kbuild_samples_per_s": median(f"kbuild {kind}", "samples_per_s"),
                         "hand_samples_per_s": median(f"hand {kind}", "samples_per_s")}
        row = summary[kind]
        print(f"| {kind} | {TARGETS[kind]} | {ours_text} | {theirs_text} | {ratio} | {row['kbuild_samples_per_s']} | {row['hand_samples_per_s']} |")
    print(f"\n{LUDWIG}")
    OUT.mkdir(exist_ok=True)
    (OUT / "time_to_accuracy.json").write_text(json.dumps({"summary": summary, "runs": records}, indent=2))


if __name__ == "__main__":
    main()
