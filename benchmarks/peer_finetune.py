"""Fine-tuning speed against the peer users would run instead: Hugging Face transformers + PyTorch
(+ PEFT for LoRA), the same fine-tunes one after the other in one script (issue 30, item 3).

    make peer-bench                   # the peer's venv (.peer-venv), then the defaults below
    KBUILD_DATA=/work/shared/data /work/peer-venv/bin/python benchmarks/peer_finetune.py \
        [--steps 300] [--llm-steps 10] [--kbuild-python .venv/bin/python] [--rounds 1] \
        [--only minilm,smollm2] [--omp-wait-policy passive]
    # a smoke run (minutes, not a measurement):
    ... benchmarks/peer_finetune.py --steps 3 --llm-steps 2 --limit 64

The script runs under a Python that has torch, transformers and peft (a separate environment:
they are benchmark-only and never imported by kbuild/); the peer's side is benchmarks/peer_hf.py,
in this process; kbuild runs in a subprocess of `--kbuild-python` with PYTHONPATH at this
checkout. Contestants, in turn (reversed each round):

MiniLM on SST-2 (specs/sst2_minilm.yaml; `--steps` optimizer steps of batch 32, max length
`--max-length`, the spec's seed, AdamW learning rate / weight decay / epsilon, linear schedule with
ceil(warmup_ratio x steps) warm-up steps, gradient norm clipped at the spec's clipnorm):
- `kbuild`: `kbuild train specs/sst2_minilm.yaml --set train.max_steps=N --set
  preprocess.max_length=L --set data.test=null` (the spec's bucketing; test is dropped because the
  peer scores dev only). samples/s is results.json's `samples_per_second` (kbuild's Throughput
  callback: the time inside training batches, the first call left out).
- `peer`: HF's text-classification recipe as a plain PyTorch loop: AutoTokenizer and
  AutoModelForSequenceClassification from the same folder (BERT's [CLS] pooler + classifier:
  kbuild's spec mean-pools), tokenised once up front, DataCollatorWithPadding (each batch padded
  to its longest row), shuffled by a seeded RandomSampler, torch.optim.AdamW without decay on biases
  and LayerNorm (as kbuild and Trainer do), transformers' `get_scheduler`, global-norm clipping as
  Trainer's max_grad_norm does.
- `peer grouped`: the same with transformers' LengthGroupedSampler, which Trainer's
  `group_by_length=True` uses.
  Peer samples/s: rows of the timed steps over their time, a step timed from fetching its batch
  (collation included, as kbuild's iterator is inside its step) to the end of the optimizer and
  scheduler step; the first step left out, as kbuild's Throughput does. Dev accuracy: all 872 rows
  after the last step, batch 32. Wall: kbuild from `train()`'s start (data, model, its execution
  probe, training, its final scoring: a 2,000-row train sample and dev) and of the whole process
  (with Python's and TensorFlow's start); peer from loading the tokenizer to dev scored, in-process
  (torch already imported).

SmolLM2-135M-Instruct LoRA on AESLC (specs/aeslc_smollm2.yaml; `--llm-steps` steps of 4 emails,
max length 256, rank 8, alpha 16 on q/v projections, the loss on the reply only):
- `kbuild`: `kbuild train specs/aeslc_smollm2.yaml --set train.max_steps=N --set data.limit=4N`
  (each batch padded to its length bucket, preprocess.bucketing, or to 256 without it; valid is the
  first 4N dev emails, scored after the epoch).
- `peer`: AutoModelForCausalLM + peft LoraConfig(r=8, lora_alpha=16, q_proj/v_proj, no dropout);
  each email wrapped by the spec's prompt_template, rendered with the tokenizer's chat template
  (ChatML, its default system message); prompt and reply tokenised apart as kbuild does, labels -100
  outside the reply, truncated to 256; DataCollatorForSeq2Seq pads each batch to its longest row.
  The spec's AdamW settings, cosine schedule and clipping as above.
  Both train on the same first 4N train emails, each once, in their own shuffled order.
  tokens/s (the same count for both): sequences/s x the mean real (non-padding) tokens of those
  emails' exchanges, truncated to 256. Padded positions/s is given beside it: kbuild computes 256
  per row, the peer its batch's longest row.

What differs and is not aligned: Keras's clipnorm clips each gradient tensor, the peer the global
norm (Trainer's rule); the MiniLM heads pool differently (above); the row orders differ (kbuild
shuffles through a 20,000-row buffer and buckets by length); kbuild feeds an exchange's first 256
of 257 tokens (256 targets), the peer 256 tokens (255 targets); Keras's LoRA on the llama's
EinsumDense projections factors [576, heads, 64] as A [576, heads, 8] x B [8, 64], so kbuild's
"rank 8" trains 1,689,600 parameters against PEFT's 460,800 (both printed).

Threads: the peer calls torch.set_num_threads(--threads, default 2); kbuild runs with TensorFlow's
default thread pools (one thread per core). On a busy machine torch's spinning OpenMP threads lose
several times over (a MiniLM smoke run at load 2.5-3.7: 3.9 samples/s, 28.9 with OMP_WAIT_POLICY
passive): measure on a quiet machine, or pass --omp-wait-policy passive (the script warns).

Writes benchmarks/out/peer_finetune.json and prints a markdown table with the ratios kbuild / peer
against the issue's targets (>= 1.5x the grouped peer on MiniLM, >= 1.2x the peer on SmolLM2 LoRA).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peer_hf import (  # benchmarks/, the script's folder
    DATA,
    REPO,
    mean_real_tokens,
    peer_minilm,
    peer_smollm2,
    read_spec,
)

OUT = REPO / "benchmarks" / "out"
SPECS = {"minilm": REPO / "specs" / "sst2_minilm.yaml", "smollm2": REPO / "specs" / "aeslc_smollm2.yaml"}
TARGETS = {"minilm": ("peer grouped", 1.5), "smollm2": ("peer", 1.2)}
KBUILD_ENV = dict(os.environ)
"""kbuild's subprocesses get the environment the script started with, whatever it sets for the peer."""
CONTESTANTS = {"minilm": ("kbuild", "peer", "peer grouped"), "smollm2": ("kbuild", "peer")}


# --- kbuild, in a subprocess ---------------------------------------------------------------------
def run_kbuild(python: str, spec_path: Path, overrides: list[str], log: Path) -> dict:
    """`kbuild train SPEC --set ...` in a fresh process; its results.json and the process's wall time."""
    run_dir = Path(tempfile.mkdtemp(prefix="peer-finetune-kbuild-"))
    command = [python, "-c", "from kbuild.cli import main; main()", "train", str(spec_path), "--run-dir",
               str(run_dir / "run"), *(f"--set={o}" for o in overrides)]
    env = {**KBUILD_ENV, "PYTHONPATH": str(REPO), "KBUILD_DATA": str(DATA), "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    try:
        with log.open("w", encoding="utf-8") as stream:
            done = subprocess.run(command, cwd=REPO, env=env, stdout=stream, stderr=subprocess.STDOUT)
        if done.returncode:
            tail = log.read_text(encoding="utf-8").splitlines()[-20:]
            raise SystemExit(f"kbuild train failed (exit {done.returncode}); {log}:\n" + "\n".join(tail))
        results = json.loads((run_dir / "run" / "results.json").read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)  # the fine-tuned weights are hundreds of MB
    results["process_wall_s"] = round(time.perf_counter() - started, 2)
    return results


def kbuild_samples_per_second(results: dict) -> float | None:
    """results.json's training samples/s (every step of an execution counted since 27121a9; before
    it, a run with steps_per_execution N under-reported N times)."""
    return results.get("samples_per_second")


def kbuild_minilm(args, spec: dict) -> dict:
    sets = [f"train.max_steps={args.steps}", f"preprocess.max_length={args.max_length}", "data.test=null"]
    if args.limit:
        sets.append(f"data.limit={args.limit}")  # every split: a smoke run only
    results = run_kbuild(args.kbuild_python, SPECS["minilm"], sets, OUT / "peer_finetune_kbuild_minilm.log")
    return {"samples_per_s": kbuild_samples_per_second(results), "dev_accuracy": results["metrics"]["valid"]["accuracy"],
            "dev_rows": results["counts"].get("valid"), "steps": results["steps"], "warmup_steps": results.get("warmup_steps"),
            "train_s": results["train_time_s"], "wall_s": results["wall_time_s"], "process_wall_s": results["process_wall_s"],
            "execution": results.get("execution"), "overrides": sets}


def kbuild_smollm2(args, spec: dict, rows: int) -> dict:
    sets = [f"train.max_steps={args.llm_steps}", f"data.limit={rows}"]
    results = run_kbuild(args.kbuild_python, SPECS["smollm2"], sets, OUT / "peer_finetune_kbuild_smollm2.log")
    # Bucketed batches pad to their length bucket, which the script does not recount: no number then.
    length = None if spec["preprocess"].get("bucketing") else spec["preprocess"]["max_length"]
    rate = kbuild_samples_per_second(results)
    return {"sequences_per_s": rate, "padded_positions_per_s": None if rate is None or length is None else round(rate * length, 1),
            "steps": results["steps"], "warmup_steps": results.get("warmup_steps"),
            "trainable_parameters": results.get("trainable_parameters"), "train_s": results["train_time_s"],
            "wall_s": results["wall_time_s"], "process_wall_s": results["process_wall_s"],
            "execution": results.get("execution"), "overrides": sets}


# --- the comparison ------------------------------------------------------------------------------
def run_one(args, task: str, who: str, spec: dict) -> dict:
    load = os.getloadavg()[0]
    print(f"{task}: {who} (load {load:.1f})", file=sys.stderr, flush=True)
    if task == "minilm":
        record = (kbuild_minilm(args, spec) if who == "kbuild" else
                  peer_minilm(spec, args.steps, args.max_length, args.limit, grouped=who == "peer grouped"))
    else:
        rows = args.llm_steps * spec["train"]["batch_size"]
        record = kbuild_smollm2(args, spec, rows) if who == "kbuild" else peer_smollm2(spec, args.llm_steps, rows)
    gc.collect()
    record["load_before"] = round(load, 2)
    return record


def median_record(records: list[dict]) -> dict:
    """The record of the median rate (of several rounds), with every round's rate beside it."""
    key = "samples_per_s" if "samples_per_s" in records[0] else "sequences_per_s"
    ordered = sorted(records, key=lambda r: r[key] or 0.0)
    return {**ordered[(len(ordered) - 1) // 2], "rounds": [r[key] for r in records]}


def versions(kbuild_python: str) -> dict:
    import peft
    import torch
    import transformers

    found = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
             "torch_threads": torch.get_num_threads()}
    probe = subprocess.run([kbuild_python, "-c", "import json, keras, tensorflow as tf, kbuild; print(json.dumps("
                            "{'kbuild': kbuild.__version__, 'tensorflow': tf.__version__, 'keras': keras.__version__}))"],
                           cwd=REPO, env={**KBUILD_ENV, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"},
                           capture_output=True, text=True)
    if probe.returncode == 0:
        found.update(json.loads(probe.stdout.strip().splitlines()[-1]))
    return found


def table(results: dict) -> str:
    lines = ["| fine-tune | contestant | samples/s | tokens/s (real) | padded pos./s | dev acc | train s | wall s | load |",
             "|---|---|---|---|---|---|---|---|---|"]
    tokens = results.get("smollm2_mean_real_tokens")

    def cell(value, digits: int = 2) -> str:
        if value is None:
            return "-"
        if isinstance(value, int):
            return f"{value:,}"
        return f"{value:,.{digits if value >= 1 else max(digits, 3)}f}"  # an LLM's sequences/s are below 1

    for task, contestants in results["records"].items():
        for who, r in contestants.items():
            rate = r.get("samples_per_s", r.get("sequences_per_s"))
            real = rate * tokens if task == "smollm2" and rate and tokens else None
            lines.append(f"| {task} | {who} | {cell(rate)} | {cell(real)} | {cell(r.get('padded_positions_per_s'))} | "
                         f"{cell(r.get('dev_accuracy'), 4)} | {cell(r.get('train_s'))} | {cell(r.get('wall_s'))} | "
                         f"{cell(r.get('load_before'))} |")
    lines.append("")
    for name, ratio in results["ratios"].items():
        lines.append(f"- {name}: {ratio['value'] if ratio['value'] is not None else '-'}x" +
                     (f" (target >= {ratio['target']}x: {'met' if ratio['met'] else 'NOT met'})" if ratio.get("target") else ""))
    return "\n".join(lines)


def notes(results: dict) -> list[str]:
    """What each number counts, printed under the table."""
    found = ["samples/s: rows of the training steps over their time, the first step left out (kbuild: its Throughput "
             "callback; peer: from fetching a batch to the end of the scheduler step)",
             "dev acc: all dev rows after the last step; train s: the training loop (kbuild's includes its per-epoch "
             "validation); wall s: kbuild from train() to results.json, peer from loading the tokenizer to dev scored"]
    found.append("load: the 1-minute load average as each contestant starts (the one before it included); "
                 f"{results['machine']['load_at_start']:.2f} when the script started")
    background = results["machine"]["load_at_start"]
    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE" and background > 1.0:
        found.append(f"WARNING: the machine was busy (load {background:.1f}) and torch's OpenMP threads spin "
                     "(OMP_WAIT_POLICY not passive), which costs the peer several times over on a busy machine (a "
                     "smoke run here: MiniLM 3.9 samples/s, 28.9 with --omp-wait-policy passive); measure on a quiet machine "
                     "or with --omp-wait-policy passive")
    if "smollm2" in results["records"]:
        llm = results["records"]["smollm2"]
        found.append(f"SmolLM2: tokens/s = sequences/s x {results['smollm2_mean_real_tokens']} (the mean real tokens of "
                     "the exchanges both sides train on, <= 256); padded pos./s: what each computes (kbuild pads to "
                     "256, or with preprocess.bucketing to each batch's length bucket, not counted; the peer to the "
                     "batch's longest row); trainable parameters kbuild "
                     f"{llm.get('kbuild', {}).get('trainable_parameters')}, peer {llm.get('peer', {}).get('trainable_parameters')}")
    return found


def ratios(records: dict) -> dict:
    found = {}
    for task, contestants in records.items():
        if "kbuild" not in contestants:
            continue
        key = "samples_per_s" if task == "minilm" else "sequences_per_s"
        target_peer, target = TARGETS[task]
        for peer in (name for name in contestants if name != "kbuild"):
            ours, theirs = contestants["kbuild"].get(key), contestants[peer].get(key)
            value = round(ours / theirs, 2) if ours and theirs else None
            entry = {"value": value}
            if peer == target_peer:
                entry.update(target=target, met=value is not None and value >= target)
            found[f"{task} kbuild / {peer}"] = entry
    return found


def main() -> None:
    doc = __doc__.split("\n\n", 1)
    parser = argparse.ArgumentParser(description=doc[0], epilog=doc[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="MiniLM optimizer steps (default 300)")
    parser.add_argument("--llm-steps", type=int, default=10, help="SmolLM2 LoRA optimizer steps (default 10)")
    parser.add_argument("--max-length", type=int, default=128, help="MiniLM max tokens per row, both sides (default 128)")
    parser.add_argument("--limit", type=int, help="MiniLM: only the first N rows of each split, both sides (smoke runs)")
    parser.add_argument("--kbuild-python", default=str(REPO / ".venv" / "bin" / "python"),
                        help="the Python that runs kbuild (default .venv/bin/python at the repo root)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for the peer (default 2)")
    parser.add_argument("--omp-wait-policy", choices=("passive", "active"),
                        help="OMP_WAIT_POLICY for the peer's torch (default: as the environment has it). Under "
                             "background load torch's spinning OpenMP threads lose several times over (measured: "
                             "a MiniLM step 4x slower with 2 threads than with 1 at load 3.5 on 2 cores); passive "
                             "keeps a busy machine's numbers comparable")
    parser.add_argument("--rounds", type=int, default=1, help="alternations; each round reverses the order")
    parser.add_argument("--only", default="minilm,smollm2", help="fine-tunes to run: minilm, smollm2 or both")
    parser.add_argument("--out", type=Path, default=OUT / "peer_finetune.json")
    args = parser.parse_args()
    if args.omp_wait_policy:  # read once, when torch loads its OpenMP runtime; kbuild's process keeps its own env
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()

    import torch
    import transformers

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()  # the classifier head's "newly initialized" report, per load
    transformers.logging.disable_progress_bar()
    OUT.mkdir(parents=True, exist_ok=True)
    tasks = [task for task in CONTESTANTS if task in args.only.split(",")]
    specs = {task: read_spec(SPECS[task]) for task in tasks}
    runs: dict[str, dict[str, list[dict]]] = {task: {who: [] for who in CONTESTANTS[task]} for task in tasks}
    load_at_start = os.getloadavg()[0]  # the background, before any contestant adds its own
    for round_ in range(args.rounds):
        for task in tasks:
            order = CONTESTANTS[task] if round_ % 2 == 0 else CONTESTANTS[task][::-1]
            for who in order:
                runs[task][who].append(run_one(args, task, who, specs[task]))
    records = {task: {who: median_record(found) for who, found in contestants.items()} for task, contestants in runs.items()}
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": {
        "cpus": os.cpu_count(), "platform": platform.platform(), "load_at_start": load_at_start,
        "load_at_end": os.getloadavg()[0],
        "threads": f"peer torch.set_num_threads({args.threads}), OMP_WAIT_POLICY "
                   f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}; kbuild TensorFlow's default pools"},
        "versions": versions(args.kbuild_python), "records": records, "ratios": ratios(records)}
    if "smollm2" in tasks:
        rows = args.llm_steps * specs["smollm2"]["train"]["batch_size"]
        results["smollm2_mean_real_tokens"] = round(mean_real_tokens(specs["smollm2"], rows), 2)
    results["notes"] = notes(results)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"versions: {results['versions']}; {results['machine']['threads']}")
    print(table(results))
    print("\n".join(f"- {line}" for line in results["notes"]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
