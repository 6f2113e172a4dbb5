"""Greedy generation with SmolLM2-135M-Instruct as `make pretrained` converts it, through keras_hub.

Renders one user question with the checkpoint's own chat template (ChatML), answers it greedily
(stopping at `<|im_end|>`), then times `--new-tokens` tokens generated without a stop token, at
batch 1 with keras_hub's key/value cache. The first call of each kind compiles the decoding loop;
it is timed separately and left out of the rate.

    .venv/bin/python benchmarks/smollm2_generate.py [--checkpoint pretrained/SmolLM2-135M-Instruct]
        [--new-tokens 128] [--threads 2]

Prints one JSON object and writes benchmarks/out/smollm2_generate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llm_speed import QUESTION, start_tensorflow, timed  # noqa: E402  (benchmarks/ is the script's folder)

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("pretrained/SmolLM2-135M-Instruct"))
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    start_tensorflow(args.threads)
    from kbuild.pretrained.causal_lm import load_causal_lm
    from kbuild.pretrained.chat_template import ChatTemplate
    from kbuild.pretrained.checkpoint import read_folder

    load_before = os.getloadavg()
    checkpoint = read_folder(args.checkpoint)
    model, load_s = timed(lambda: load_causal_lm(checkpoint))
    model.compile(sampler="greedy")
    prompt = ChatTemplate.from_folder(checkpoint.path).render([{"role": "user", "content": args.question}])
    prompt_tokens = int(model.preprocessor.tokenizer(prompt).shape[0])
    length = prompt_tokens + args.new_tokens

    def answer():
        return model.generate(prompt, max_length=length, strip_prompt=True)

    def continuation():
        return model.generate(prompt, max_length=length, stop_token_ids=None, strip_prompt=True)

    reply, first_answer_s = timed(answer)
    _, answer_s = timed(answer)
    _, first_continuation_s = timed(continuation)
    _, continuation_s = timed(continuation)  # no stop token: exactly new_tokens tokens
    result = {
        "checkpoint": str(checkpoint.path), "parameters": int(model.count_params()), "load_s": round(load_s, 1),
        "question": args.question, "prompt_tokens": prompt_tokens, "answer": reply.strip(),
        "answer_s": round(answer_s, 2), "first_answer_s (compiles)": round(first_answer_s, 1),
        "new_tokens": args.new_tokens,
        "tokens_per_s": round(args.new_tokens / continuation_s, 2),
        "first_continuation_s (compiles)": round(first_continuation_s, 1), "continuation_s": round(continuation_s, 2),
        "threads": args.threads, "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))
    OUT.mkdir(exist_ok=True)
    (OUT / "smollm2_generate.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
