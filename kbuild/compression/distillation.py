"""`distill:`: the teacher's soft targets, computed once and cached, attached to the train split.

The teacher is any trained classification run. Its outputs are computed through its own serving
path (its tokenizer, its model: `Task.serving_functions`, exactly what its export answers), so
teacher and student may tokenise differently (a WordPiece MiniLM teacher, a word-level BiLSTM
student). The pass runs once, batched, with a progress bar on stderr, and its result is cached
under a key of teacher and texts, in the student run's `cache/` and (where it is writable) the
teacher run's: a resumed run, or any other student of the same teacher on the same texts, reads
the cache instead of paying for the teacher again. Only the student is saved and exported; the teacher is never part of its graph.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kbuild.errors import TrainingError
from kbuild.progress import Progress
from kbuild.runs import NotARun, RunFolder, load_trained_run, open_run, reading
from kbuild.spec import Spec
from kbuild.tasks import TASKS

SUPPORTED_TASKS = ("classification",)
CACHE_PREFIX = "teacher-"


@dataclass
class Teacher:
    """What results.json says about the teacher, and the cache file its targets came from."""

    run: Path
    results: dict
    cache_file: Path
    reused: bool
    transfer_texts: int

    def report(self, student_metrics: dict) -> dict:
        """Teacher metrics, retention (student / teacher, per split and metric) and sizes."""
        teacher_metrics = self.results.get("metrics", {})
        retention = {
            split: {name: round(value / teacher_metrics[split][name], 6)
                    for name, value in scores.items()
                    if name != "loss" and isinstance(value, int | float) and teacher_metrics.get(split, {}).get(name)}
            for split, scores in student_metrics.items() if split in teacher_metrics
        }
        return {
            "teacher": str(self.run),
            "teacher_metrics": teacher_metrics,
            "teacher_parameters": self.results.get("parameters"),
            "teacher_model_bytes": _size(self.run / "model.keras"),
            "retention": retention,
            "transfer_texts": self.transfer_texts,
            "cache": self.cache_file.name,
            "cache_reused": self.reused,
        }


def attach_teacher(spec: Spec, bundle: Any, folder: RunFolder, log: Any) -> Teacher:
    """Replace `bundle`'s train split by train + transfer texts with packed targets
    (`kbuild.layers.distillation`); returns the Teacher record."""
    distill = spec.distill
    if spec.task not in SUPPORTED_TASKS:
        raise TrainingError(f"distill: supports {', '.join(SUPPORTED_TASKS)} students; this spec's task is {spec.task}")
    teacher_run = _teacher_folder(distill.teacher)
    task = TASKS.get(spec.task)
    train_texts = [example.text for example in bundle.examples["train"]]
    transfer = [text for path in distill.transfer for text in read_transfer(path, spec)]
    texts = train_texts + transfer
    key = _cache_key(teacher_run, texts)
    name = f"{CACHE_PREFIX}{key}.npz"
    cache_file = folder.cache / name
    found = next((path for path in (cache_file, teacher_run / "cache" / name) if path.is_file()), None)
    reused = found is not None
    if found is not None:
        with reading(found, "delete it; the teacher's targets are then computed again"), \
                np.load(found, allow_pickle=False) as cached:
            log_probs, teacher_labels = cached["log_probs"], [str(x) for x in cached["labels"]]
        log(f"distill: teacher targets for {len(texts):,} texts read from {found}")
    else:
        log_probs, teacher_labels = teacher_outputs(teacher_run, spec.task, texts, distill.batch_size)
    if found != cache_file:
        _write_cache(cache_file, log_probs, teacher_labels)
    if not reused:
        try:  # the teacher's folder may be read-only (a shared run); then only this student keeps it
            _write_cache(teacher_run / "cache" / name, log_probs, teacher_labels)
        except OSError:
            pass
    if sorted(teacher_labels) != sorted(bundle.labels):
        raise TrainingError(f"distill.teacher {distill.teacher}: the teacher's labels {teacher_labels} differ from "
                            f"the student's train labels {bundle.labels}")
    order = [teacher_labels.index(label) for label in bundle.labels]
    hard = np.full(len(texts), -1.0, np.float32)
    index = {label: i for i, label in enumerate(bundle.labels)}
    hard[: len(train_texts)] = [index[example.label] for example in bundle.examples["train"]]
    packed = np.concatenate([hard[:, None], log_probs[:, order].astype(np.float32)], axis=1)

    from kbuild.data.pipeline import encode_all

    made = task.row_data(encode_all(bundle.tokenizer, texts), packed, spec, train=True)
    old = bundle.splits["train"]
    made.dataset = made.factory()
    made.examples, made.skipped, made.source = old.examples, old.skipped, old.source
    bundle.splits["train"] = made
    return Teacher(teacher_run, RunFolder(teacher_run).read_results(), cache_file, reused, len(transfer))


def teacher_outputs(run: Path, task: str, texts: list[str], batch_size: int) -> tuple[np.ndarray, list[str]]:
    """The teacher's log-probabilities `[texts, labels]` through its serving function, and its
    label order."""
    import tensorflow as tf

    def check(teacher_spec: Spec) -> None:
        if teacher_spec.task != task:
            raise TrainingError(f"distill.teacher {run}: the teacher's task is {teacher_spec.task}; the student's is {task}")

    folder, teacher_spec, assets, model = load_trained_run(run, check)
    serve = TASKS.get(teacher_spec.task).serving_functions(model, assets, teacher_spec)["serving_default"]
    progress = Progress(len(texts), label="teacher outputs")
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        probabilities = serve(text=tf.constant(batch))["probabilities"].numpy()
        chunks.append(np.log(np.clip(probabilities.astype(np.float64), 1e-12, 1.0)))
        progress.update(len(batch))
    progress.close()
    empty = np.zeros((0, len(assets.labels)))
    return np.concatenate(chunks) if chunks else empty, list(assets.labels)


def read_transfer(path: str, spec: Spec) -> list[str]:
    """Unlabelled texts: a .csv/.tsv's `distill.transfer_column` (default `data.columns.text`),
    else one text a line."""
    file = Path(path)
    if not file.is_file():
        raise TrainingError(f"distill.transfer: {path} is not a file")
    with file.open(encoding="utf-8", newline="") as handle:
        if file.suffix in (".csv", ".tsv"):
            column = spec.distill.transfer_column or spec.data.columns.get("text", "text")
            rows = csv.reader(handle, delimiter="\t" if file.suffix == ".tsv" else ",")
            if isinstance(column, str):
                header = next(rows, [])
                if column not in header:
                    raise TrainingError(f"distill.transfer: {path} has no {column!r} column (distill.transfer_column)")
                column = header.index(column)
            return [row[column] for row in rows if len(row) > column and row[column]]
        return [line.rstrip("\n") for line in handle if line.strip()]


def _teacher_folder(path: str) -> Path:
    try:
        return open_run(path).path
    except NotARun as error:
        raise TrainingError(f"distill.teacher: {error}") from None


def _write_cache(path: Path, log_probs: np.ndarray, labels: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp.npz")  # renamed into place: a killed write leaves no torn cache
    np.savez(partial, log_probs=log_probs, labels=np.asarray(labels))
    partial.replace(path)


def _cache_key(run: Path, texts: list[str]) -> str:
    """Teacher (its folder and best model's mtime and size) and the exact texts, hashed."""
    model = run / "model.keras"
    digest = hashlib.sha256(f"{run.resolve()}\0{model.stat().st_mtime_ns}\0{model.stat().st_size}".encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None
