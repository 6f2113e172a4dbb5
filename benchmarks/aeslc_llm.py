"""AESLC test ROUGE of SmolLM2-135M-Instruct's greedy subject lines, before and after fine-tuning,
and of a trained seq2seq run's subjects (its own search: beam, length penalty, n-gram blocking).

The same fixed subset for every model: the first `--limit` emails (200 by default) of
${KBUILD_DATA}/aeslc/test.jsonl, in file order. Each email goes through the model's
`serving_default` (the chat template and `preprocess.chat.prompt_template` inside the graph, greedy
decoding with the key/value cache, stopped at `<|im_end|>`, at most `preprocess.chat.max_new_tokens`
tokens), exactly as the export answers it:

    KBUILD_DATA=/work/shared/data python benchmarks/aeslc_llm.py --before   # the instruct model as converted,
        [--spec specs/aeslc_smollm2.yaml]                                      # prompted as the spec prompts
    KBUILD_DATA=/work/shared/data python benchmarks/aeslc_llm.py --run runs/aeslc-smollm2/<stamp>
    ... [--limit 200] [--batch 1] [--threads 2] [--out benchmarks/out/aeslc_llm_before.json]
    KBUILD_DATA=/work/shared/data python benchmarks/aeslc_llm.py --before --perplexity-only
    KBUILD_DATA=/work/shared/data python benchmarks/aeslc_llm.py --run runs/aeslc_minilm --limit 0 --batch 64

A seq2seq run (specs/aeslc_transformer.yaml, specs/aeslc_minilm.yaml) is read the same way through
its `serving_default` (`translation`); its results.json already scores all of test against the
original subject, and this adds the annotated subjects. `--limit 0` reads every test email.

`--perplexity-only` (with --before) scores the spec's valid split instead: loss and perplexity over the
subject tokens, by the chat task's own `evaluate` (benchmarks/checkpoint_perplexity.py), the code that writes a trained run's
`metrics.valid.perplexity` into its results.json, so the two numbers compare.

ROUGE-1/2/L F1 (rouge-score, Porter stemming, through `kbuild.tasks.rouge`) against the original
`subject` (the single reference of Hugging Face/TFDS `aeslc` and PEGASUS: the `rouge` columns), and
against the three annotated subjects (the authors' multi-reference convention: `rouge_annotations`).
Prints a table row per model with its time (generate s includes the first call, which traces the
decoding graph: JSON `first_call_s`); writes JSON (scores, times, load, each subject) to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.checkpoint_perplexity import checkpoint_scores  # noqa: E402
from kbuild.runtime import init_tensorflow  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
SPEC = Path(__file__).resolve().parent.parent / "specs" / "aeslc_smollm2.yaml"


def read_test(limit: int) -> list[dict]:
    """The first `limit` test emails: {id, email, subject, annotations}."""
    from kbuild.paths import expand_data_path

    rows = []
    with open(expand_data_path("${KBUILD_DATA}/aeslc/test.jsonl"), encoding="utf-8") as lines:
        for line in lines:
            rows.append(json.loads(line))
            if len(rows) == limit:
                break
    return rows


def before(spec_path: Path):
    """(name, serving_default, spec): the converted checkpoint of the spec's `model.backbone`, no
    adapters, served with the spec's template and prompt_template."""
    from kbuild import load_spec
    from kbuild.pretrained.causal_lm import load_causal_lm
    from kbuild.pretrained.checkpoint import CAUSAL_LM, inspect
    from kbuild.tasks import TASKS
    from kbuild.tasks.bundle import Assets, tokenizer_for

    spec = load_spec(spec_path)
    model = load_causal_lm(inspect(spec, CAUSAL_LM))
    model.preprocessor = None
    tokenizer = tokenizer_for(spec).fit([])  # the checkpoint's tokenizer and chat template; nothing is learned
    functions = TASKS.get("chat").serving_functions(model, Assets(tokenizer, []), spec)
    return f"{Path(spec.model.backbone.from_).name} (before fine-tuning)", functions["serving_default"], spec


OUTPUTS = {"chat": "reply", "seq2seq": "translation"}
"""The tasks this benchmark reads, and the `serving_default` output holding the subject."""


def trained(run: Path):
    """(name, serving_default, spec) of a trained chat run folder (its best model, merged adapters)
    or seq2seq run folder."""
    from kbuild.exporter.serving import load_servable

    servable = load_servable(str(run))
    if servable.spec.task not in OUTPUTS:
        raise SystemExit(f"{run}: a {servable.spec.task} run; this benchmark reads {' and '.join(OUTPUTS)} runs")
    return f"{servable.spec.name} ({run})", servable.function, servable.spec


def subjects(serve, output: str, emails: list[str], batch: int) -> tuple[list[str], float]:
    """Greedy subjects, `batch` emails a call, grouped by length so a call pads little; and the
    seconds of the first call, which traces the decoding graph."""
    import tensorflow as tf

    order = sorted(range(len(emails)), key=lambda i: len(emails[i]))
    found: dict[int, str] = {}
    first_s = 0.0
    for start in range(0, len(order), batch):
        chunk = order[start:start + batch]
        began = time.perf_counter()
        replies = serve(tf.constant([emails[i] for i in chunk]))[output].numpy()
        first_s = first_s or time.perf_counter() - began
        found.update({i: reply.decode("utf-8", errors="replace").strip() for i, reply in zip(chunk, replies, strict=True)})
    return [found[i] for i in range(len(emails))], first_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--before", action="store_true", help="the converted instruct model, not fine-tuned")
    which.add_argument("--run", type=Path, help="a trained chat or seq2seq run folder")
    parser.add_argument("--spec", type=Path, default=SPEC, help="--before: the spec whose checkpoint and prompt to use")
    parser.add_argument("--limit", type=int, default=200, help="the first N test emails (0: all)")
    # One email a call: a batch decodes from its shortest prompt's end until its longest has every new
    # token (one buffer, left-aligned), which for emails of 100 to 1,000 tokens costs far more steps.
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--perplexity-only", action="store_true",
                        help="--before: print the valid split's loss and perplexity (the subjects), no ROUGE")
    parser.add_argument("--out", type=Path, help="JSON file (default benchmarks/out/aeslc_llm_{before,run}.json)")
    args = parser.parse_args()

    def threads() -> None:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    init_tensorflow(before_start=threads)
    from kbuild.tasks.rouge import corpus_rouge

    if args.perplexity_only:
        if not args.before:
            parser.error("--perplexity-only goes with --before; a run's is in its results.json (metrics.valid)")
        start = time.perf_counter()
        scores = checkpoint_scores(args.spec)
        print(json.dumps({**scores, "seconds": round(time.perf_counter() - start, 1),
                          "loadavg": [round(x, 2) for x in os.getloadavg()]}))
        return
    rows = read_test(args.limit)
    load_before = os.getloadavg()
    start = time.perf_counter()
    name, serve, spec = before(args.spec) if args.before else trained(args.run)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    generated, first_s = subjects(serve, OUTPUTS[spec.task], [row["email"] for row in rows], args.batch)
    generate_s = time.perf_counter() - start
    rouge = corpus_rouge(generated, [row["subject"] for row in rows])
    streams = [[row["annotations"][k] for row in rows] for k in range(3)]
    rouge_annotations = corpus_rouge(generated, streams)
    result = {
        "model": name, "emails": len(rows), "subset": f"the first {len(rows)} of aeslc/test.jsonl",
        **({"prompt_template": spec.preprocess.chat.prompt_template, "max_new_tokens": spec.preprocess.chat.max_new_tokens}
           if spec.task == "chat" else {"decoder": spec.model.decoder.model_dump(exclude_none=True)}),
        "rouge": {k: round(v, 2) for k, v in rouge.as_dict().items()},
        "rouge_annotations": {k: round(v, 2) for k, v in rouge_annotations.as_dict().items()},
        "load_s": round(load_s, 1), "generate_s": round(generate_s, 1), "first_call_s (traces)": round(first_s, 1),
        "s_per_email": round(generate_s / max(len(rows), 1), 2), "batch": args.batch, "threads": args.threads,
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "subjects": [{"id": row["id"], "subject": row["subject"], "generated": text}
                     for row, text in zip(rows, generated, strict=True)],
    }
    print("| model | emails | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-1/2/L vs annotations | load s | generate s | s/email |")
    print("|---|---|---|---|---|---|---|---|---|")
    r, a = result["rouge"], result["rouge_annotations"]
    print(f"| {name} | {len(rows)} | {r['rouge1']:.2f} | {r['rouge2']:.2f} | {r['rougeL']:.2f} | "
          f"{a['rouge1']:.2f} / {a['rouge2']:.2f} / {a['rougeL']:.2f} | {load_s:.1f} | {generate_s:.1f} | "
          f"{result['s_per_email']:.2f} |")
    out = args.out or OUT / f"aeslc_llm_{'before' if args.before else 'run'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
