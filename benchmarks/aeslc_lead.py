"""The lead baseline of the AESLC table: each email's first sentence, cut to a subject's length,
scored with kbuild's ROUGE (rouge-score, stemmed words) against the original subject (the reference
PEGASUS and Hugging Face use; what kbuild's aeslc specs score against) and, for the authors'
convention, against the three annotated subjects.

    KBUILD_DATA=../shared/data python benchmarks/aeslc_lead.py [--split test] [--words N]

The cut defaults to the train split's median subject length in words (measured here, not assumed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from kbuild.tasks.rouge import corpus_rouge


def read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def lead(email: str, words: int) -> str:
    """The first non-blank line (AESLC keeps one sentence a line), cut to `words` words."""
    first = next((line for line in email.splitlines() if line.strip()), "")
    return " ".join(first.split()[:words])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=["dev", "test"])
    parser.add_argument("--words", type=int, default=None, help="cut length (default: median train subject)")
    args = parser.parse_args()
    root = Path(os.environ.get("KBUILD_DATA", "../shared/data")) / "aeslc"
    words = args.words or round(statistics.median(len(row["subject"].split()) for row in read(root / "train.jsonl")))
    rows = read(root / f"{args.split}.jsonl")
    started = time.perf_counter()
    hypotheses = [lead(row["email"], words) for row in rows]
    original = corpus_rouge(hypotheses, [row["subject"] for row in rows]).as_dict()
    annotated = corpus_rouge(hypotheses, [[row["annotations"][i] for row in rows] for i in range(3)]).as_dict()
    print(json.dumps({"split": args.split, "emails": len(rows), "words": words,
                      "original_subject": {k: round(v, 2) for k, v in original.items()},
                      "annotated_subjects": {k: round(v, 2) for k, v in annotated.items()},
                      "seconds": round(time.perf_counter() - started, 1)}, indent=2))


if __name__ == "__main__":
    main()
