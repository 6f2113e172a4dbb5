"""The compression table for SST-2: teacher, from-scratch BiLSTM, distilled BiLSTM, distilled +
pruned BiLSTM, each exported as SavedModel float / Keras int8 SavedModel / TFLite int8.

    PYTHONPATH=. .venv/bin/python benchmarks/compression.py --teacher runs/sst2-teacher/<stamp> \\
        [--runs runs/compression] [--transfer ${KBUILD_DATA}/imdb/train.csv] [--set train.epochs=1]

The three student runs are trained from specs/sst2_bilstm.yaml (with `--set` overrides) into
`--runs`, or reused when their results.json is already there. Per row: dev accuracy through
`kbuild predict`'s code path, parameters (non-zero and total), the version folder's size on disk
and as a gzip'd tarball, and, in a fresh process per export, p50 latency of one sentence and
samples/s at batch 64 over the dev set. Prints a Markdown table; writes
benchmarks/out/compression.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("KBUILD_DATA", REPO.parent / "shared" / "data"))
DEV = DATA / "sst2" / "dev.tsv"
SPEC = REPO / "specs" / "sst2_bilstm.yaml"
EXPORTS = [("savedmodel float", "savedmodel", "none"), ("Keras int8", "savedmodel", "int8"), ("TFLite int8", "tflite", "int8")]

TIMING = """
import json, statistics, sys, time
from kbuild.prediction import load_predictor
texts = json.loads(open(sys.argv[2]).read())
predictor = load_predictor(sys.argv[1])
list(predictor.predict(texts[:64], batch_size=64))  # warm-up (predict is lazy: list() runs it)
list(predictor.predict(texts[:1], batch_size=1))
one = []
for text in texts[:200]:
    start = time.perf_counter(); list(predictor.predict([text], batch_size=1)); one.append(time.perf_counter() - start)
start = time.perf_counter(); list(predictor.predict(texts, batch_size=64)); seconds = time.perf_counter() - start
print(json.dumps({"p50_ms": 1000 * statistics.median(one), "samples_per_s": len(texts) / seconds}))
"""


def dev_set() -> tuple[list[str], list[str]]:
    rows = [line.split("\t", 1) for line in DEV.read_text(encoding="utf-8").splitlines()[1:]]
    return [text for _, text in rows], [label for label, _ in rows]


def train_students(teacher: str, runs: Path, transfer: list[str], overrides: list[str]) -> dict[str, Path]:
    """scratch, distilled and distilled + 80 % pruned BiLSTMs; reused when already trained."""
    import kbuild

    distill = f"distill={{teacher: {teacher}, alpha: 0.5, temperature: 2.0, loss: kl, " \
              f"transfer: [{', '.join(transfer)}], transfer_column: review}}"
    # The embedding table is 95 % of the BiLSTM's weights: without it 80 % of the kernels is 4 % of the model.
    prune = "prune={final_sparsity: 0.8, begin: 0.0, end: 0.7, frequency: 50, embeddings: true, scope: global}"
    plans = {"BiLSTM from scratch": [], "distilled BiLSTM": [distill], "distilled + 80 % pruned": [distill, prune]}
    made = {}
    for name, extra in plans.items():
        folder = runs / name.replace(" ", "-").replace("%", "pct").replace("+", "and")
        if not (folder / "results.json").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            kbuild.train(kbuild.load_spec(SPEC, [*overrides, *extra]), run_dir=folder)
        made[name] = folder
    return made


def parameters(run: Path) -> tuple[int, int]:
    import numpy as np

    from kbuild.runs import RunFolder, load_trained_model

    model = load_trained_model(RunFolder(run))
    values = [np.asarray(v.numpy()) for v in model.weights]
    return int(sum(np.count_nonzero(v) for v in values)), int(sum(v.size for v in values))


def sizes(folder: Path) -> tuple[int, int]:
    """Bytes on disk, and of the folder as a gzip'd tarball."""
    disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return disk, buffer.tell()


def measure(name: str, run: Path, out: Path, texts: list[str], labels: list[str], texts_file: Path) -> list[dict]:
    import kbuild
    from kbuild.prediction import load_predictor

    nonzero, total = parameters(run)
    rows = []
    for label, fmt, quantize in EXPORTS:
        try:
            version = kbuild.export(run, out / f"{run.name}-{fmt}-{quantize}", fmt=fmt, quantize=quantize)
            predicted = [row["label"] for row in load_predictor(version).predict(texts, batch_size=64)]
        except Exception as error:  # noqa: BLE001  (one export that fails is a row of the table, not the end of it)
            reason = " ".join(str(error).split())[:300]
            rows.append({"model": name, "export": label, "run": str(run), "error": f"{type(error).__name__}: {reason}",
                         "nonzero_parameters": nonzero, "parameters": total})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            continue
        accuracy = sum(p == g for p, g in zip(predicted, labels, strict=True)) / len(labels)
        disk, gz = sizes(version)
        timed = subprocess.run([sys.executable, "-c", TIMING, str(version), str(texts_file)], capture_output=True,
                               text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
        timing = json.loads(timed.stdout.strip().splitlines()[-1])
        rows.append({"model": name, "export": label, "run": str(run), "dev_accuracy": round(accuracy, 4),
                     "nonzero_parameters": nonzero, "parameters": total, "disk_bytes": disk, "gzip_bytes": gz,
                     "p50_ms_batch1": round(timing["p50_ms"], 2), "samples_per_s_batch64": round(timing["samples_per_s"], 1)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="the teacher's run folder (a trained SST-2 classification run)")
    parser.add_argument("--runs", default=str(REPO / "runs" / "compression"), help="where the student runs go")
    parser.add_argument("--transfer", action="append", default=None,
                        help="unlabelled csv with a `review` column for the teacher to label (default: IMDB train)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="spec override for the students")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "compression"))
    args = parser.parse_args()

    transfer = args.transfer if args.transfer is not None else [str(DATA / "imdb" / "train.csv")]
    students = train_students(args.teacher, Path(args.runs), transfer, args.overrides)
    texts, labels = dev_set()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    texts_file = out / "dev_texts.json"
    texts_file.write_text(json.dumps(texts))
    rows = []
    for name, run in {"teacher": Path(args.teacher), **students}.items():
        rows += measure(name, run, out, texts, labels, texts_file)
    (out.parent / "compression.json").write_text(json.dumps(rows, indent=2))
    print(f"SST-2 dev ({len(texts)} sentences); teacher {args.teacher}; load {os.getloadavg()[0]:.1f}\n")
    print("| model | export | dev acc | params non-zero / total | disk KB | gzip KB | p50 ms (batch 1) | samples/s (batch 64) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['export']} | failed: {r['error']} | {r['nonzero_parameters']:,} / {r['parameters']:,} | | | | |")
            continue
        print(f"| {r['model']} | {r['export']} | {r['dev_accuracy']:.4f} | {r['nonzero_parameters']:,} / {r['parameters']:,} | "
              f"{r['disk_bytes'] / 1024:,.0f} | {r['gzip_bytes'] / 1024:,.0f} | {r['p50_ms_batch1']} | {r['samples_per_s_batch64']} |")


if __name__ == "__main__":
    main()
