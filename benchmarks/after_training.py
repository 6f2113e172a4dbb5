"""Time after the last training step against the training time, per run (issue 30: at most 5 %).

    python benchmarks/after_training.py RUN [RUN ...]

Reads each run's results.json (`train_time_s`, `after_training_s`: loading the best model and the
final scores of every split, train on its `eval.train_sample`; `scoring_seconds`, each split's
pass) and prints one Markdown row per run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(run: Path) -> str:
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    train, after = results.get("train_time_s"), results.get("after_training_s")
    scored = results.get("scored_rows") or {}
    rows = ", ".join(f"{split} {n['rows']:,}/{n['of']:,}" for split, n in scored.items()) or "not recorded"
    share = f"{100 * after / train:.1f} %" if train and after is not None else "not recorded"
    seconds = results.get("scoring_seconds")
    passes = ("not recorded" if seconds is None else
              ", ".join(f"{split} {seconds[split]}" if split in seconds else f"{split} from the logs"
                        for split, n in scored.items() if n["rows"]))
    return (f"| {results.get('name')} ({run.name}) | {results.get('steps')} | {train} | "
            f"{after if after is not None else 'not recorded'} | {share} | {rows} | {passes} |")


def main() -> None:
    print("| run | steps | train time (s) | after training (s) | share | rows scored | each split's pass (s) |")
    print("|---|---|---|---|---|---|---|")
    for path in sys.argv[1:]:
        print(row(Path(path)))


if __name__ == "__main__":
    main()
