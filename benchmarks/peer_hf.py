"""The peer's side of benchmarks/peer_finetune.py: the same fine-tunes in Hugging Face transformers +
PyTorch (+ PEFT for LoRA), written as its text-classification guide and PEFT's LoRA recipe do, and
the spec as both sides read it. Imported by peer_finetune.py under a Python that has torch,
transformers and peft; kbuild/ never imports it."""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("KBUILD_DATA", REPO.parent / "shared" / "data"))


# --- the spec, as both sides read it ---------------------------------------------------------------
def read_spec(path: Path) -> dict:
    """The spec's YAML with ${KBUILD_DATA} filled in, and relative paths read from the repo root."""
    import yaml

    text = path.read_text(encoding="utf-8").replace("${KBUILD_DATA}", str(DATA))
    return yaml.safe_load(text)


def checkpoint(spec: dict) -> Path:
    return (REPO / spec["model"]["backbone"]["from"]).resolve()


def warmup_steps(schedule: dict, steps: int) -> int:
    """kbuild's ScheduleSpec.warmup_for: warmup_steps, or ceil(warmup_ratio x steps)."""
    ratio = schedule.get("warmup_ratio")
    if ratio is None:
        return int(schedule.get("warmup_steps", 0))
    return min(math.ceil(round(ratio * steps, 6)), steps)


def head_rows(path: Path, limit: int | None) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines if limit is None else lines[:limit]


def read_tsv(path: Path, columns: dict, limit: int | None) -> tuple[list[str], list[int]]:
    lines = head_rows(path, None if limit is None else limit + 1)  # + the header
    header = lines[0].split("\t")
    text, label = header.index(columns["text"]), header.index(columns["label"])
    rows = [line.split("\t") for line in lines[1:]]
    return [row[text] for row in rows], [int(row[label]) for row in rows]


# --- the peer, in this process -------------------------------------------------------------------
def optimizer_for(model, train: dict, steps: int):
    """torch AdamW with the spec's settings, no decay on biases and LayerNorm weights (Trainer's
    rule; kbuild exempts bias/gamma/beta), and the spec's schedule through transformers."""
    import torch
    from transformers import get_scheduler
    from transformers.trainer_pt_utils import get_parameter_names

    opt = train["optimizer"]
    decayed = {name for name in get_parameter_names(model, [torch.nn.LayerNorm]) if not name.endswith("bias")}
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in trainable if n in decayed], "weight_decay": opt.get("weight_decay", 0.0)},
              {"params": [p for n, p in trainable if n not in decayed], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=opt["learning_rate"], betas=(opt.get("beta_1", 0.9), opt.get("beta_2", 0.999)),
                                  eps=opt.get("epsilon", 1e-7))
    warmup = warmup_steps(train["schedule"], steps)
    scheduler = get_scheduler(train["schedule"]["name"], optimizer, num_warmup_steps=warmup, num_training_steps=steps)
    return optimizer, scheduler, warmup


def train_steps(model, loader, optimizer, scheduler, steps: int, clip: float | None) -> dict:
    """`steps` optimizer steps over `loader` (again from its start when it ends); the time of all
    but the first, each from fetching its batch to the end of the scheduler step."""
    import torch

    model.train()
    timed = {"seconds": 0.0, "rows": 0, "real_tokens": 0, "padded_positions": 0}
    batches, step = iter(loader), 0
    while step < steps:
        began = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        loss = model(**batch).loss
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step:  # the first step allocates and warms up; kbuild's Throughput leaves it out too
            timed["seconds"] += time.perf_counter() - began
            timed["rows"] += len(batch["input_ids"])
            timed["real_tokens"] += int(batch["attention_mask"].sum())
            timed["padded_positions"] += batch["input_ids"].numel()
        step += 1
    timed["last_loss"] = round(loss.item(), 4)
    return timed


def clip_of(train: dict) -> float | None:
    opt = train["optimizer"]
    return opt.get("global_clipnorm") or opt.get("clipnorm")


def peer_minilm(spec: dict, steps: int, max_length: int, limit: int | None, grouped: bool) -> dict:
    """`steps` optimizer steps of the SST-2 fine-tune (rows shuffled, or grouped by length as
    Trainer's `group_by_length` does), then dev accuracy."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        set_seed,
    )
    from transformers.trainer_pt_utils import LengthGroupedSampler

    started = time.perf_counter()
    set_seed(spec["seed"])
    folder, data, train = checkpoint(spec), spec["data"], spec["train"]
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def encoded(path: str) -> list[dict]:
        texts, labels = read_tsv(Path(path), data["columns"], limit)
        ids = tokenizer(texts, truncation=True, max_length=max_length)
        return [{**{key: ids[key][i] for key in ids}, "labels": label} for i, label in enumerate(labels)]

    rows, dev = encoded(data["train"]), encoded(data["valid"])
    batch = train["batch_size"]
    generator = torch.Generator().manual_seed(spec["seed"])
    sampler = (LengthGroupedSampler(batch, lengths=[len(row["input_ids"]) for row in rows], generator=generator)
               if grouped else RandomSampler(rows, generator=generator))
    collate = DataCollatorWithPadding(tokenizer)
    loader = DataLoader(rows, batch_size=batch, sampler=sampler, collate_fn=collate)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    optimizer, scheduler, warmup = optimizer_for(model, train, steps)
    fit_started = time.perf_counter()
    timed = train_steps(model, loader, optimizer, scheduler, steps, clip_of(train))
    train_seconds = time.perf_counter() - fit_started
    accuracy = dev_accuracy(model, dev, collate, batch)
    return {"samples_per_s": round(timed["rows"] / timed["seconds"], 2) if timed["seconds"] else None,
            "dev_accuracy": round(accuracy, 4), "dev_rows": len(dev), "steps": steps, "warmup_steps": warmup,
            "train_s": round(train_seconds, 2), "wall_s": round(time.perf_counter() - started, 2),
            "mean_padded_length": round(timed["padded_positions"] / max(timed["rows"], 1), 1),
            "sampler": type(sampler).__name__, "last_loss": timed["last_loss"]}


def dev_accuracy(model, dev: list[dict], collate, batch: int) -> float:
    import torch

    model.eval()
    right = 0
    with torch.inference_mode():
        for start in range(0, len(dev), batch):
            inputs = collate(dev[start:start + batch])
            labels = inputs.pop("labels")
            right += int((model(**inputs).logits.argmax(-1) == labels).sum())
    return right / len(dev)


def exchanges(spec: dict, tokenizer, rows: int) -> list[dict]:
    """The first `rows` train emails as ChatML exchanges: input ids and labels (-100 outside the reply)."""
    data, chat, length = spec["data"], spec["preprocess"]["chat"], spec["preprocess"]["max_length"]
    examples = []
    for line in head_rows(Path(data["train"]), rows):
        record = json.loads(line)
        user = {"role": "user", "content": chat["prompt_template"].format(prompt=record[data["columns"]["prompt"]])}
        reply = {"role": "assistant", "content": record[data["columns"]["response"]]}
        prompt = tokenizer.apply_chat_template([user], add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template([user, reply], tokenize=False)
        # Prompt and reply tokenised apart, as kbuild does: no BPE merge across the boundary.
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        reply_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
        ids = (prompt_ids + reply_ids)[:length]
        labels = ([-100] * len(prompt_ids) + reply_ids)[:length]
        examples.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return examples


def peer_smollm2(spec: dict, steps: int, rows: int) -> dict:
    """`steps` optimizer steps of the LoRA fine-tune on the first `rows` train emails."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import DataLoader, RandomSampler
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, set_seed

    started = time.perf_counter()
    set_seed(spec["seed"])
    folder, train = checkpoint(spec), spec["train"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "right"
    examples = exchanges(spec, tokenizer, rows)
    generator = torch.Generator().manual_seed(spec["seed"])
    loader = DataLoader(examples, batch_size=train["batch_size"], sampler=RandomSampler(examples, generator=generator),
                        collate_fn=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100))
    model = AutoModelForCausalLM.from_pretrained(folder)  # float32, as its config.json says and kbuild trains
    model.config.use_cache = False
    lora = spec["model"]["backbone"]["lora"]
    model = get_peft_model(model, LoraConfig(r=lora["rank"], lora_alpha=lora.get("alpha", lora["rank"]),
                                             target_modules=["q_proj", "v_proj"], lora_dropout=0.0, task_type="CAUSAL_LM"))
    optimizer, scheduler, warmup = optimizer_for(model, train, steps)
    fit_started = time.perf_counter()
    timed = train_steps(model, loader, optimizer, scheduler, steps, clip_of(train))
    train_seconds, seconds = time.perf_counter() - fit_started, timed["seconds"]
    return {"sequences_per_s": round(timed["rows"] / seconds, 3) if seconds else None,
            "padded_positions_per_s": round(timed["padded_positions"] / seconds, 1) if seconds else None,
            "measured_real_tokens_per_s": round(timed["real_tokens"] / seconds, 1) if seconds else None,
            "steps": steps, "warmup_steps": warmup,
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "attention": model.config._attn_implementation, "dtype": str(next(model.parameters()).dtype), "train_s": round(train_seconds, 2),
            "wall_s": round(time.perf_counter() - started, 2), "last_loss": timed["last_loss"]}


def mean_real_tokens(spec: dict, rows: int) -> float:
    """Mean non-padding tokens per exchange of the first `rows` train emails (truncated to max_length)."""
    from transformers import AutoTokenizer

    examples = exchanges(spec, AutoTokenizer.from_pretrained(checkpoint(spec)), rows)
    return statistics.fmean(len(example["input_ids"]) for example in examples)
