"""Extractive question answering on SQuAD (split by article) with all-MiniLM-L6-v2, exported and
asked a question about a context of any length: the Python twin of

    make pretrained
    kbuild train specs/squad_minilm.yaml
    kbuild export runs/squad-minilm/<stamp> --out export/squad-minilm
    echo '{"question": "...", "context": "..."}' | kbuild predict export/squad-minilm --input -

Run from the repository root after `make pretrained`:

    python examples/qa.py --steps 20 --limit 400     # a quick look (minutes on 2 cores)
    python examples/qa.py                            # the spec's full budget (hours on 2 cores)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import kbuild

SPEC = Path(__file__).resolve().parent.parent / "specs" / "squad_minilm.yaml"
CONTEXT = ("The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named "
           "after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="override train.max_steps")
    parser.add_argument("--limit", type=int, default=None, help="override data.limit (questions per split)")
    args = parser.parse_args()

    overrides = [f"train.max_steps={args.steps}"] * bool(args.steps) + [f"data.limit={args.limit}"] * bool(args.limit)
    spec = kbuild.load_spec(SPEC, overrides)
    run = kbuild.train(spec)
    scores = run.results["metrics"]["test"]
    print(f"test (held-out articles): exact match {scores['exact_match']:.1f}, F1 {scores['f1']:.1f}")

    export = kbuild.export(run.path, Path("export") / spec.name)
    rows = [{"question": "Who designed the tower?", "context": CONTEXT},
            {"question": "When was the tower built?", "context": CONTEXT}]
    for row in kbuild.predict(export, rows):
        # The answer is always the context's own text at [start, end).
        assert row["context"][row["start"]:row["end"]] == row["answer"]
        print(f"{row['question']} -> {row['answer']!r} (score {row['score']:.2f})")


if __name__ == "__main__":
    main()
