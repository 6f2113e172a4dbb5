"""Fine-tune a pretrained encoder on SST-2 and serve the export: the Python twin of

    make pretrained
    kbuild train specs/sst2_minilm.yaml
    kbuild export runs/sst2-minilm/<stamp> --out export/sst2-minilm
    echo "a gorgeous, witty film" | kbuild predict export/sst2-minilm --input -

Run from the repository root after `make pretrained`:

    python examples/fine_tune.py                 # the spec's budget: 2 epochs (one took 11.5 min on 2 idle cores)
    python examples/fine_tune.py --steps 50      # a quick look
    python examples/fine_tune.py --lora 8        # LoRA adapters instead of full fine-tuning
"""

from __future__ import annotations

import argparse
from pathlib import Path

import kbuild

SPEC = Path(__file__).resolve().parent.parent / "specs" / "sst2_minilm.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="override train.max_steps")
    parser.add_argument("--lora", type=int, default=None, metavar="RANK", help="train LoRA adapters of this rank")
    args = parser.parse_args()

    overrides = []
    if args.steps:
        overrides.append(f"train.max_steps={args.steps}")
    if args.lora:
        # The adapters are few and their update starts at zero: they usually take a larger learning rate.
        overrides += [f"model.backbone.lora={{rank: {args.lora}}}", "train.optimizer.learning_rate=1.0e-3"]
    spec = kbuild.load_spec(SPEC, overrides)
    run = kbuild.train(spec)
    results = run.results
    print(f"trainable parameters: {results['trainable_parameters']:,} of {results['parameters']:,}")
    print(f"dev accuracy {results['metrics']['valid']['accuracy']:.4f} after {results['train_time_s']} s of training")

    export = kbuild.export(run.path, Path("export") / spec.name)
    for row in kbuild.predict(export, ["a gorgeous, witty film", "a tedious, joyless mess"]):
        print(row["label"], row["probabilities"], row["text"])


if __name__ == "__main__":
    main()
