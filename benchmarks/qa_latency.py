"""Latency of an extractive QA export (`task: extractive_qa`) for one question over a 300-word and
a 3,000-word context, batch 1, in a fresh process with only tensorflow and tensorflow_text: the
windowing, the model over every window and the decoding all run inside the SavedModel.

    python benchmarks/qa_latency.py EXPORT_VERSION_DIR [--repeats 5]

The contexts are the SQuAD dev paragraphs (../shared/data/squad_dev) joined until they hold the
word count; the question asks about the first paragraph. Prints one JSON line per length: words,
the first call (tracing and loading included) and the median of the next calls, in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SQUAD = (Path(os.environ.get("KBUILD_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
         / "squad_dev" / "dev-v1.1.reconstructed.json")


def contexts(words: int) -> tuple[str, str]:
    """(question, context of `words` whitespace-separated words) from SQuAD dev."""
    data = json.loads(Path(os.environ.get("KBUILD_SQUAD", SQUAD)).read_text())
    paragraphs = [p for article in data["data"] for p in article["paragraphs"]]
    text: list[str] = []
    for paragraph in paragraphs:
        text += paragraph["context"].split()
        if len(text) >= words:
            break
    return paragraphs[0]["qas"][0]["question"], " ".join(text[:words])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for words in (300, 3000):
        question, context = contexts(words)
        script = textwrap.dedent(f"""
            import json, statistics, time, tensorflow as tf, tensorflow_text
            serve = tf.saved_model.load({args.export!r}).signatures["serving_default"]
            question, context = tf.constant([{question!r}]), tf.constant([{context!r}])
            times = []
            for _ in range({args.repeats} + 1):
                begin = time.perf_counter()
                out = serve(question=question, context=context)
                times.append(time.perf_counter() - begin)
            print(json.dumps({{"words": {words}, "first_s": round(times[0], 3),
                               "median_s": round(statistics.median(times[1:]), 3),
                               "answer": out["answer"].numpy()[0].decode()}}))
        """)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
        print(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
