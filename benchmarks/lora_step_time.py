"""LoRA against full fine-tuning of a pretrained backbone: trainable fraction and time per step.

Both models are built from the same spec (default specs/sst2_minilm.yaml; run `make pretrained`
first), compiled as `kbuild train` compiles them, and trained on the same bucketed SST-2 batches.
Rounds alternate full / LoRA so machine noise hits both alike; the first round (tracing) is
discarded.

    .venv/bin/python benchmarks/lora_step_time.py [--rank 8] [--steps 20] [--rounds 3]

Prints one JSON object and writes benchmarks/out/lora_step_time.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import kbuild  # noqa: E402
from kbuild.pretrained.backbone import parameter_counts  # noqa: E402
from kbuild.tasks.bundle import build as build_data  # noqa: E402
from kbuild.training.fit import compile_model  # noqa: E402
from kbuild.training.strategy import resolve_strategy  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/sst2_minilm.yaml")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round and model")
    parser.add_argument("--rounds", type=int, default=3, help="rounds after the discarded first one")
    args = parser.parse_args()

    variants = {"full": [], "lora": [f"model.backbone.lora={{rank: {args.rank}}}", "train.optimizer.learning_rate=1.0e-3"]}
    models, counts = {}, {}
    bundle = None
    for name, overrides in variants.items():
        spec = kbuild.load_spec(args.spec, overrides)
        bundle = bundle or build_data(spec, splits=("train",))
        models[name] = compile_model(spec, bundle, resolve_strategy(spec.train), total_steps=10_000)
        counts[name] = parameter_counts(models[name])
    batches = list(bundle.datasets["train"].take(args.steps))
    seconds: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(args.rounds + 1):
        for name, model in models.items():
            started = time.perf_counter()
            for features, labels in batches:
                model.train_on_batch(features, labels)
            if round_:  # round 0 traces each batch shape
                seconds[name].append((time.perf_counter() - started) / len(batches))
    report = {
        "spec": args.spec, "rank": args.rank, "steps_per_round": len(batches), "rounds": args.rounds,
        "load_average": os.getloadavg(),
        **{name: {**counts[name], "trainable_fraction": round(counts[name]["trainable_parameters"] / counts[name]["parameters"], 5),
                  "ms_per_step_median": round(1000 * statistics.median(seconds[name]), 1),
                  "ms_per_step_rounds": [round(1000 * s, 1) for s in seconds[name]]} for name in models},
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "lora_step_time.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
