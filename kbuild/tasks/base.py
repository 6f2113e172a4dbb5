"""The task interface: everything that differs between classification, tagging, generation, ...

A task is a stateless object looked up by name in `TASKS`. Data building, training, evaluation and
export call these hooks; there is one data pipeline, one training loop and one exporter for all
tasks. The defaults implement one label per example (classification).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kbuild.registry import Registry

if TYPE_CHECKING:
    import numpy as np

    from kbuild.data.bundle import DataBundle
    from kbuild.data.example import ReadResult
    from kbuild.spec.root import Spec


class Task:
    name: str = ""
    label_padding: int | None = None
    """For per-token labels: the id that pads them in bucketed batches; None for per-example labels."""

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Task-specific spec problems (location, message)."""
        return iter(())

    # --- data (plain Python, NumPy) ------------------------------------------------------------
    def prepare(self, split: ReadResult, spec: Spec, key: str) -> ReadResult:
        """The examples as the task trains on them (e.g. tags converted to the spec's scheme)."""
        return split

    def label_vocabulary(self, train: ReadResult) -> list[str]:
        """The labels, learned from the train split; an id is a position in this list."""
        from kbuild.data.labels import label_vocabulary

        return label_vocabulary(train)

    def encode_labels(self, split: ReadResult, labels: list[str], key: str, spec: Spec) -> np.ndarray:
        """The split's labels as int32 ids (`[examples]` here; per-token tasks add a time axis)."""
        import numpy as np

        from kbuild.data.labels import label_ids

        return np.asarray(label_ids(split, labels, key), np.int32)

    # --- model (Keras; each task imports it lazily) --------------------------------------------
    def build_outputs(self, features: Any, spec: Spec, labels: list[str]) -> Any:
        raise NotImplementedError

    def loss(self, spec: Spec) -> Any:
        raise NotImplementedError

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        raise NotImplementedError

    def needs_start_token(self, spec: Spec) -> bool:
        """Whether the tokenizer must prepend [CLS] (e.g. for `cls` pooling)."""
        return False

    def evaluate(self, model: Any, bundle: DataBundle, split: str, spec: Spec) -> dict:
        """Metrics of `model` on one split of `bundle`: the compiled metrics by default."""
        metrics = model.evaluate(bundle.datasets[split], verbose=0, return_dict=True)
        return {name: float(value) for name, value in metrics.items()}

    # --- serving (TensorFlow graph) ------------------------------------------------------------
    def serve(self, text: Any, tokenizer: Any, model: Any, labels: list[str], spec: Spec) -> dict[str, Any]:
        """Raw strings `[batch]` -> the named tensors of the SavedModel's `serving_default`."""
        return self.serving_outputs(model(tokenizer.encode(text), training=False), labels)

    def serving_outputs(self, outputs: Any, labels: list[str]) -> dict[str, Any]:
        """Model outputs -> named serving tensors (used by the default `serve`)."""
        raise NotImplementedError

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        """Serving outputs (numpy) -> one JSON-ready dict per input text."""
        raise NotImplementedError


TASKS: Registry[Task] = Registry("task")
