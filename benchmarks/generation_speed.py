"""Generation speed of one trained language model, with and without the key/value cache (or, for
an RNN, carried state): tokens/s at batch 1, greedy, so both runs must also produce the same text.

    .venv/bin/python benchmarks/generation_speed.py runs/tinyshakespeare-gpt/<stamp> [--new-tokens 256]

The first call of each mode compiles the decoding loop; it is timed separately and left out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kbuild.runtime import init_tensorflow  # noqa: E402


def timed(generator, prompt: str, options, repeat: int) -> tuple[float, float, str]:
    start = time.perf_counter()
    first = generator.generate(prompt, options)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = generator.generate(prompt, options)
        times.append(time.perf_counter() - start)
        assert result.text == first.text
    return statistics.median(times), compile_s, first.text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--prompt", default="ROMEO:\n")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    init_tensorflow()
    from kbuild.generation import GenerationOptions, load_generator

    generator = load_generator(args.run)
    rows = {}
    texts = {}
    for mode, use_cache in (("cache", True), ("no_cache", False)):
        options = GenerationOptions(max_new_tokens=args.new_tokens, sampler="greedy", use_cache=use_cache)
        seconds, compile_s, texts[mode] = timed(generator, args.prompt, options, args.repeat)
        rows[mode] = {"seconds": round(seconds, 3), "tokens_per_s": round(args.new_tokens / seconds, 1),
                      "first_call_s": round(compile_s, 2)}
    rows["speedup"] = round(rows["cache"]["tokens_per_s"] / rows["no_cache"]["tokens_per_s"], 2)
    rows["same_text"] = texts["cache"] == texts["no_cache"]
    rows["context"] = generator.context
    rows["new_tokens"] = args.new_tokens
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
