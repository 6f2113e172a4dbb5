"""Valid loss and perplexity of a spec's `model.backbone` decoder checkpoint as converted, before any
fine-tuning: the number a chat or continued-pretraining run's `metrics.valid.perplexity` (in its
results.json) is compared with. The same windows or replies, scored by the task's own `evaluate`.

    KBUILD_DATA=/work/shared/data python benchmarks/checkpoint_perplexity.py specs/tinyshakespeare_smollm2.yaml
    ... [--split valid] [--threads 2]

Prints one JSON line: loss, perplexity, tokens, seconds and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def checkpoint_scores(spec_path: Path, split: str = "valid") -> dict:
    """The converted checkpoint's loss and perplexity on one split of the spec, computed by the
    code that writes a trained run's final scores (no adapters: LoRA's start is the checkpoint)."""
    from kbuild import load_spec
    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import build

    spec = load_spec(spec_path)
    if spec.model.backbone is None:
        raise SystemExit(f"{spec_path}: no model.backbone; this scores a pretrained checkpoint")
    task = TASKS.get(spec.task)
    bundle = build(spec, splits=(split,))
    return task.evaluate(task.build_model(spec, bundle), bundle, split, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from kbuild.runtime import init_tensorflow

    def threads() -> None:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    init_tensorflow(before_start=threads)
    start = time.perf_counter()
    scores = checkpoint_scores(args.spec, args.split)
    print(json.dumps({**scores, "split": args.split, "seconds": round(time.perf_counter() - start, 1),
                      "loadavg": [round(x, 2) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
