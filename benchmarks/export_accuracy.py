"""SST-2 dev accuracy and file size of one trained run exported as a SavedModel and as TFLite
(float, dynamic-range, float16, int8), each through `kbuild predict`'s code path.

    .venv/bin/python benchmarks/export_accuracy.py runs/sst2-bilstm/<stamp> [--out benchmarks/out/exports]

Prints a Markdown table and writes benchmarks/out/export_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import kbuild  # noqa: E402
from kbuild.prediction import load_predictor  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEV = Path(os.environ.get("KBUILD_DATA", REPO.parent / "shared" / "data")) / "sst2" / "dev.tsv"
VARIANTS = [("savedmodel", "none"), ("tflite", "none"), ("tflite", "dynamic"), ("tflite", "float16"), ("tflite", "int8")]


def folder_bytes(path: Path, exclude: tuple[str, ...] = ()) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not any(part in exclude for part in p.parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "exports"))
    args = parser.parse_args()

    rows = [line.split("\t", 1) for line in DEV.read_text(encoding="utf-8").splitlines()[1:]]
    labels, texts = [label for label, _ in rows], [text for _, text in rows]
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    results = []
    for fmt, quantize in VARIANTS:
        name = "sst2" if fmt == "savedmodel" else f"sst2-tflite-{quantize}"
        start = time.perf_counter()
        version = kbuild.export(args.run, out / name, fmt=fmt, quantize=quantize)
        export_s = time.perf_counter() - start
        start = time.perf_counter()
        predicted = [row["label"] for row in load_predictor(version).predict(texts, batch_size=64)]
        predict_s = time.perf_counter() - start
        accuracy = sum(p == g for p, g in zip(predicted, labels, strict=True)) / len(labels)
        model_bytes = (version / "model.tflite").stat().st_size if fmt == "tflite" else folder_bytes(version, ("assets",))
        results.append({"variant": name, "dev_accuracy": round(accuracy, 4), "model_bytes": model_bytes,
                        "folder_bytes": folder_bytes(version), "export_s": round(export_s, 1),
                        "dev_rows_per_s": round(len(texts) / predict_s, 1)})
    float_bytes = next(r["model_bytes"] for r in results if r["variant"] == "sst2-tflite-none")
    print(f"SST-2 dev ({len(texts)} sentences), run {args.run}\n")
    print("| variant | dev accuracy | model bytes | vs TFLite float | whole folder bytes | dev rows/s |\n|---|---|---|---|---|---|")
    for r in results:
        ratio = f"{100 * r['model_bytes'] / float_bytes:.0f} %" if "tflite" in r["variant"] else "-"
        print(f"| {r['variant']} | {r['dev_accuracy']:.4f} | {r['model_bytes']:,} | {ratio} | {r['folder_bytes']:,} | {r['dev_rows_per_s']} |")
    target = REPO / "benchmarks" / "out"
    target.mkdir(parents=True, exist_ok=True)
    (target / "export_accuracy.json").write_text(json.dumps({"run": args.run, "results": results}, indent=2))


if __name__ == "__main__":
    main()
