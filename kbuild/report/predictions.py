"""Predictions a report needs, computed once per run and cached in its `cache/report/` folder.

A report is re-rendered far more often than a model changes (a new section, a comparison with
another run), and predicting a split costs seconds to minutes; the cache entry is keyed on the
saved model's size and modification time, the spec hash and the example cap, so retraining or
a changed cap recomputes it and nothing else does. The model and data are loaded only on a miss.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from kbuild.report.loader import RunRecord

CACHE_VERSION = 1
"""Bumped when a cached payload's layout changes, so an old cache is recomputed, never misread."""

SPLIT_PREFERENCE = ("valid", "test", "train")


def report_split(record: RunRecord) -> str | None:
    """The split a report predicts on: valid when the run has one, else test, else train."""
    counts = record.results.get("counts") or {}
    return next((split for split in SPLIT_PREFERENCE if counts.get(split)), None)


def log(message: str) -> None:
    print(f"[kbuild] report: {message}", file=sys.stderr, flush=True)


class LoadedRun:
    """The trained run behind a record, loaded piece by piece on first use: its typed spec, the
    bundle of one split (encoded with the run's saved vocabulary) and the best model."""

    def __init__(self, record: RunRecord, split: str, limit: int):
        self.record, self.split, self.limit = record, split, limit

    @cached_property
    def spec(self) -> Any:
        from kbuild import load_spec
        from kbuild.runtime import init_tensorflow

        init_tensorflow()  # quietly, before anything below imports it
        return load_spec(self.record.folder.spec)

    @cached_property
    def bundle(self) -> Any:
        from kbuild.tasks.bundle import load_bundle

        return load_bundle(self.spec, self.record.folder.assets, splits=(self.split,))

    @cached_property
    def model(self) -> Any:
        from kbuild.runs import load_trained_model, open_run

        return load_trained_model(open_run(self.record.folder.path))

    @property
    def examples(self) -> list[Any]:
        """The split's first `limit` examples, in order: the ones the report predicts."""
        return self.bundle.examples[self.split][: self.limit]

    @property
    def features(self) -> Any:
        """Batches of the inputs of `examples`, in order."""
        batch_size = self.spec.train.batch_size
        dataset = self.bundle.features_dataset(self.split, batch_size)
        return dataset.take(math.ceil(len(self.examples) / batch_size))

    def predict(self, model: Any, what: str) -> Any:
        """`model.predict` over `features` with progress on stderr (the model itself, or a
        tagger's decoder)."""
        return model.predict(self.features, verbose=0, callbacks=[progress_callback(len(self.examples), what)])


def progress_callback(total: int, label: str) -> Any:
    """A Keras callback advancing a kbuild Progress line per predicted batch."""
    import keras

    from kbuild.progress import Progress

    class _Progress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.progress = Progress(total, label=label)

        def on_predict_batch_end(self, batch, logs=None):
            flat = keras.tree.flatten((logs or {}).get("outputs"))
            rows = int(flat[0].shape[0]) if flat and hasattr(flat[0], "shape") else 0
            # The last batch may run past the example cap; count only the rows the report keeps.
            self.progress.update(max(0, min(rows, total - self.progress.done)))

        def on_predict_end(self, logs=None):
            self.progress.close()

    return _Progress()


@dataclass(frozen=True)
class PredictionCache:
    """Cached JSON payloads of one run, one file per (kind, split)."""

    record: RunRecord
    limit: int

    def get(self, kind: str, split: str, compute: Callable[[LoadedRun], dict], settings: tuple = ()) -> dict:
        """The payload for `kind` on `split`: from the cache when its key matches, else computed
        by `compute(loaded_run)` (timed, logged) and written atomically. `settings` are the
        options the payload depends on besides the example cap (part of the key)."""
        path = self.record.folder.cache / "report" / f"{kind}-{split}.json"
        key = self._key(kind, split, settings)
        cached = _read(path)
        if cached is not None and cached.get("key") == key:
            return cached["data"]
        started = time.perf_counter()
        log(f"computing {kind} on the {split} split of {self.record.folder.path} (cached for next time)")
        data = compute(LoadedRun(self.record, split, self.limit))
        log(f"{kind}: {time.perf_counter() - started:.1f} s")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "data": data}, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
        return data

    def _key(self, kind: str, split: str, settings: tuple) -> str:
        model = self.record.folder.model
        stat = model.stat() if model.is_file() else None
        parts = [CACHE_VERSION, kind, split, self.limit, list(settings), self.record.results.get("spec_hash"),
                 stat.st_size if stat else None, stat.st_mtime_ns if stat else None]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _read(path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):  # absent or torn: recompute
        return None
    return data if isinstance(data, dict) and "data" in data else None
