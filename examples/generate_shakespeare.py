"""Train a character-level language model on tinyshakespeare through the Python API, then print
samples from it with each sampler (no CLI).

    python examples/generate_shakespeare.py                                  # the GPT spec, full budget
    python examples/generate_shakespeare.py --set train.max_steps=200        # a quick look
    python examples/generate_shakespeare.py --spec specs/tinyshakespeare_lstm.yaml
    python examples/generate_shakespeare.py --run runs/tinyshakespeare-gpt/<stamp>   # no training
"""

from __future__ import annotations

import argparse

import kbuild
from kbuild.generation import GenerationOptions, load_generator

SETTINGS = [
    ("greedy", {}),
    ("top_k", {"top_k": 10, "temperature": 0.8}),
    ("top_p", {"top_p": 0.9, "temperature": 0.8}),
    ("beam", {"num_beams": 4}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="specs/tinyshakespeare_gpt.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--run", help="sample from this trained run instead of training one")
    parser.add_argument("--prompt", default="ROMEO:\n")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    run_path = args.run
    if run_path is None:
        run = kbuild.train(kbuild.load_spec(args.spec, args.overrides))
        print("validation:", run.results["metrics"].get("valid"))
        run_path = run.path

    generator = load_generator(run_path)
    for sampler, extra in SETTINGS:
        options = GenerationOptions(max_new_tokens=args.max_new_tokens, sampler=sampler, seed=args.seed, **extra)
        result = generator.generate(args.prompt, options)
        print(f"\n===== {sampler} {extra or ''}\n{result.prompt}{result.text}")


if __name__ == "__main__":
    main()
