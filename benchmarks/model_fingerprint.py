"""Fingerprint of every shipped spec's model: parameter count, layer count and a hash of the
initial weights (with their paths), at fixed vocabulary and label sizes. Two commits that print
the same lines build the same models, layer names and seeded initialisation included.

    python benchmarks/model_fingerprint.py                    # this checkout
    PYTHONPATH=/path/to/old/checkout python benchmarks/model_fingerprint.py   # another one

Works with the import paths before and after the architecture change (issue 13).
"""

from __future__ import annotations

import glob
import hashlib

import numpy as np

try:
    from kbuild import load_spec
    from kbuild.tasks.compose import build_model
    from kbuild.tasks.seq2seq_model import build_seq2seq_model
    from kbuild.tasks.vae_model import build_vae_model
except ImportError:  # before issue 13 (modules that no longer exist)
    from kbuild.seq2seq.model import build_seq2seq_model
    from kbuild.vae.model import build_vae_model

    from kbuild.model import build_model
    from kbuild.spec import load_spec

LABELS = {"classification": ["neg", "pos"], "tagging": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
          "multilabel": ["a", "b", "c"], "regression": [], "language_model": []}
BUILDERS = {"seq2seq": lambda spec: build_seq2seq_model(spec, 900, 1100), "vae": lambda spec: build_vae_model(spec, 900)}


def main() -> None:
    for path in sorted(glob.glob("specs/*.yaml")):
        spec = load_spec(path)
        if spec.task not in BUILDERS and spec.task not in LABELS:
            continue
        model = BUILDERS[spec.task](spec) if spec.task in BUILDERS else build_model(spec, 900, LABELS[spec.task])
        digest = hashlib.sha256()
        for weight in model.weights:
            digest.update(weight.path.encode())
            digest.update(np.asarray(weight.numpy()).tobytes())
        print(f"{path}  params={model.count_params()}  layers={len(model.layers)}  weights={digest.hexdigest()[:16]}", flush=True)


if __name__ == "__main__":
    main()
