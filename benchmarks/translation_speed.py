"""Translation speed of one trained seq2seq run with a Transformer decoder, with and without the
decoder's key/value caches: sentences/s over a split's sources, with the spec's search (greedy or
beam), and a check that both modes give the same translations (so the same BLEU).

    .venv/bin/python benchmarks/translation_speed.py runs/translate-transformer/<stamp> [--split test] [--limit 500]
        [--cached-only] [--out translations.json]

The first batch of each mode compiles the decoding graph; it is timed separately and left out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kbuild.runtime import init_tensorflow  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=500, help="sentences timed (after the compile batch)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--search", choices=["greedy", "beam"], help="instead of the spec's")
    parser.add_argument("--cached-only", action="store_true", help="time the cached decoding only (no comparison)")
    parser.add_argument("--out", type=Path, help="write the cached translations here (JSON), to compare versions")
    args = parser.parse_args()
    init_tensorflow()
    from kbuild.data.splits import read_splits
    from kbuild.decoding.translator import Translator, quiet_masks
    from kbuild.runs import load_trained_run

    loaded = load_trained_run(args.run)
    if args.search:
        decoder = loaded.spec.model.decoder.model_copy(update={"search": args.search})
        loaded = loaded._replace(spec=loaded.spec.model_copy(
            update={"model": loaded.spec.model.model_copy(update={"decoder": decoder})}))
    examples = read_splits(loaded.spec.data, loaded.spec.seed, (args.split,))[args.split].examples
    sources = [example.text for example in examples]
    warm, timed = sources[: args.batch_size], sources[args.batch_size : args.batch_size + args.limit]
    rows, outputs = {}, {}
    for mode, use_cache in (("cache", True), ("no_cache", False))[: 1 if args.cached_only else 2]:
        translator = Translator(loaded.model, loaded.assets.tokenizer, loaded.assets.target, loaded.spec, use_cache=use_cache)
        with quiet_masks():
            start = time.perf_counter()
            translator.translate(warm, args.batch_size)
            compile_s = time.perf_counter() - start
            start = time.perf_counter()
            outputs[mode] = translator.translate(timed, args.batch_size)
            seconds = time.perf_counter() - start
        rows[mode] = {"sentences_per_s": round(len(timed) / seconds, 1), "seconds": round(seconds, 2),
                      "first_batch_s": round(compile_s, 1)}
    if args.out:
        args.out.write_text(json.dumps(outputs["cache"], ensure_ascii=False) + "\n", encoding="utf-8")
    same = outputs["cache"] == outputs.get("no_cache", outputs["cache"])
    decoder = loaded.spec.model.decoder
    compared = {} if args.cached_only else {
        "speedup": round(rows["cache"]["sentences_per_s"] / rows["no_cache"]["sentences_per_s"], 2),
        "identical_translations": same}
    print(json.dumps({"run": args.run, "split": args.split, "sentences": len(timed), "batch_size": args.batch_size,
                      "search": decoder.search, "beams": decoder.beams if decoder.search == "beam" else 1,
                      "max_length": loaded.spec.preprocess.max_length, **rows, **compared}, indent=1))
    if not same:
        differ = sum(a != b for a, b in zip(outputs["cache"], outputs["no_cache"], strict=True))
        print(f"{differ} of {len(timed)} translations differ", file=sys.stderr)


if __name__ == "__main__":
    main()
