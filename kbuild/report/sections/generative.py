"""Language model, seq2seq and VAE: their own figures of merit per split (perplexity, BLEU, ROUGE, ELBO
terms, from results.json) and what the model writes: continuations of validation prompts,
translations beside their references, reconstructions and samples from the prior."""

from __future__ import annotations

from kbuild.errors import KbuildError
from kbuild.report.content import Section, Table, Text
from kbuild.report.loader import RunRecord
from kbuild.report.predictions import LoadedRun, report_split
from kbuild.report.sections.base import TASK_SECTIONS, SectionContext

PROMPT_WORDS = 8
"""A continuation's prompt: the first words of a validation example."""
NEW_TOKENS = 48


def _scores(record: RunRecord, key: str, title: str, names: tuple[str, ...], caption: str) -> Section:
    present = [n for n in names if any(n in m for m in record.metrics.values())]
    rows = [[split, *(metrics.get(n) for n in present)] for split, metrics in record.metrics.items()]
    return Section(key, title, [Table(["split", *present], rows, caption=caption)] if present
                   else [Text(f"results.json has none of {', '.join(names)}.")])


# --- language model ----------------------------------------------------------------------------
def continuations(run: LoadedRun, count: int) -> dict:
    from kbuild.generation.generator import generator_for
    from kbuild.generation.options import GenerationOptions

    generator = generator_for(run.model, run.spec, run.bundle.tokenizer)
    options = GenerationOptions(max_new_tokens=NEW_TOKENS, sampler="top_p", seed=run.spec.seed, jit_compile=False)
    rows = []
    for example in run.examples:
        if len(rows) >= count:
            break
        prompt = " ".join(example.text.split()[:PROMPT_WORDS]) if " " in example.text.strip() else example.text[:40]
        if not prompt.strip():
            continue
        try:
            rows.append({"prompt": prompt, "completion": generator.generate(prompt, options).text})
        except KbuildError as exc:  # a prompt the vocabulary cannot encode: say so, keep going
            rows.append({"prompt": prompt, "completion": f"(not generated: {exc})"})
    return {"rows": rows, "sampler": f"top_p 0.9, seed {run.spec.seed}, {NEW_TOKENS} new tokens"}


def language_model(record: RunRecord, context: SectionContext) -> list[Section]:
    result = [_scores(record, "perplexity", "Perplexity", ("perplexity", "loss", "accuracy"),
                      "Perplexity per token (exp of the mean cross-entropy) per split.")]
    split = report_split(record)
    count = context.options.samples
    if split is None or not count:
        return result
    data = context.cache.get("continuations", split, lambda run: continuations(run, count), settings=(count,))
    table = Table(["prompt", "continuation"], [[r["prompt"], r["completion"]] for r in data["rows"]],
                  caption=f"Continuations of the first words of {split} examples ({data['sampler']}).")
    return [*result, Section("samples", "Generated samples", [table])]


# --- seq2seq -----------------------------------------------------------------------------------
def translations(run: LoadedRun, count: int) -> dict:
    from kbuild.decoding.translator import Translator

    examples = run.examples[:count]
    translator = Translator(run.model, run.bundle.tokenizer, run.bundle.target, run.spec)
    hypotheses = translator.translate([e.text for e in examples])
    return {"rows": [{"source": e.text, "reference": e.label, "translation": h}
                     for e, h in zip(examples, hypotheses, strict=True)]}


def seq2seq(record: RunRecord, context: SectionContext) -> list[Section]:
    result = [_scores(record, "bleu", "BLEU and ROUGE",
                      ("bleu", "rouge1", "rouge2", "rougeL", "perplexity", "token_accuracy", "loss"),
                      "The spec's eval.metrics of the decoded outputs (corpus BLEU: sacrebleu 13a, cased; ROUGE-1/2/L "
                      "F1), and teacher-forced scores.")]
    split = report_split(record)
    count = context.options.samples
    if split is None or not count:
        return result
    data = context.cache.get("translations", split, lambda run: translations(run, count), settings=(count,))
    table = Table(["source", "reference", "translation"], [[r["source"], r["reference"], r["translation"]] for r in data["rows"]],
                  caption=f"The first {len(data['rows'])} {split} sentences, translated with the spec's decoder.")
    return [*result, Section("samples", "Translations", [table])]


# --- vae ---------------------------------------------------------------------------------------
def vae_texts(run: LoadedRun, count: int) -> dict:
    from kbuild.generation.options import GenerationOptions
    from kbuild.generation.vae_generator import VaeGenerator

    generator = VaeGenerator(run.model, run.spec, run.bundle.tokenizer)
    texts = [e.text for e in run.examples if e.text.strip()][:count]
    options = GenerationOptions(sampler="greedy", seed=run.spec.seed)
    return {"reconstructions": [{"text": t, "reconstruction": r} for t, r in zip(texts, generator.reconstruct(texts), strict=True)],
            "samples": generator.sample(count, options).texts, "seed": run.spec.seed}


def vae(record: RunRecord, context: SectionContext) -> list[Section]:
    result = [_scores(record, "elbo", "ELBO terms", ("elbo", "reconstruction", "kl", "perplexity", "active_units", "token_accuracy"),
                      "Evidence lower bound per split, in nats per sentence: ELBO = −(reconstruction loss + KL).")]
    split = report_split(record)
    count = context.options.samples
    if split is None or not count:
        return result
    data = context.cache.get("vae", split, lambda run: vae_texts(run, count), settings=(count,))
    reconstructions = Table(["sentence", "reconstruction (greedy, from the posterior mean)"],
                            [[r["text"], r["reconstruction"]] for r in data["reconstructions"]])
    samples = Table(["sample from the prior N(0, I)"], [[t] for t in data["samples"]],
                    caption=f"Decoded greedily from codes drawn with seed {data['seed']}.")
    return [*result, Section("samples", "Reconstructions and samples", [reconstructions, samples])]


TASK_SECTIONS.register("language_model")([language_model])
TASK_SECTIONS.register("seq2seq")([seq2seq])
TASK_SECTIONS.register("vae")([vae])
