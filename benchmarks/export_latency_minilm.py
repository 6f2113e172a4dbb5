"""What a user pays for accuracy: a fine-tuned pretrained classifier against a small one (e.g. the
distilled BiLSTM), each exported as a float and a Keras-int8 SavedModel: SST-2 dev accuracy through
`kbuild predict`'s code path, size on disk and gzip'd, and p50 batch-1 latency / batch-64
throughput in a fresh process (the timing of benchmarks/compression.py).

    python benchmarks/export_latency_minilm.py --run "MiniLM=runs/sst2-minilm/RUN" --run "distilled BiLSTM=runs/..."
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compression  # noqa: E402  (this folder's table script: dev set, sizes, fresh-process timing)

EXPORTS = [("savedmodel float", "none"), ("Keras int8", "int8")]


def main() -> None:
    import kbuild
    from kbuild.prediction import load_predictor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="NAME=RUN_FOLDER (repeatable)")
    parser.add_argument("--out", default="/tmp/kbuild-export-latency")
    args = parser.parse_args()
    texts, labels = compression.dev_set()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    texts_file = out / "dev.json"
    texts_file.write_text(json.dumps(texts))
    for name, run in (item.split("=", 1) for item in args.run):
        for label, quantize in EXPORTS:
            version = kbuild.export(run, out / f"{name.replace(' ', '-')}-{quantize}", quantize=quantize)
            predicted = [row["label"] for row in load_predictor(version).predict(texts, batch_size=64)]
            accuracy = sum(p == g for p, g in zip(predicted, labels, strict=True)) / len(labels)
            disk, gz = compression.sizes(version)
            timed = subprocess.run([sys.executable, "-c", compression.TIMING, str(version), str(texts_file)],
                                   capture_output=True, text=True, check=True,
                                   env={**os.environ, "PYTHONPATH": str(HERE.parent)})
            timing = json.loads(timed.stdout.strip().splitlines()[-1])
            print(json.dumps({"model": name, "export": label, "dev_acc": round(accuracy, 4),
                              "disk_MB": round(disk / 2**20, 1), "gzip_MB": round(gz / 2**20, 1),
                              **{k: round(v, 2) for k, v in timing.items()}, "load": round(os.getloadavg()[0], 1)}),
                  flush=True)


if __name__ == "__main__":
    main()
