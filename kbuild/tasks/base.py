"""The task interface: everything that differs between classification, tagging, generation, ...

A task is a stateless object looked up by name in `TASKS`. Data building, training, evaluation
and export call these hooks; there is one data bundle, one training loop and one exporter for all
tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kbuild.registry import Registry

if TYPE_CHECKING:
    from kbuild.data.example import ReadResult
    from kbuild.spec.root import Spec


TEXT_INPUT = "text"
"""Name of the raw-strings input of every `serving_default` signature."""


class Task:
    name: str = ""
    uses_labels: bool = False
    """Whether the task learns a label list from the train split (saved as assets/labels.txt)."""

    def spec_issues(self, spec: Spec) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Task-specific spec problems (location, message)."""
        return iter(())

    # The hooks below import Keras/TensorFlow lazily; see each task module.
    def label_vocabulary(self, train: ReadResult) -> list[str]:
        """The labels learned from the train split (none unless `uses_labels`)."""
        return []

    def texts(self, split: ReadResult) -> list[str]:
        """The texts the model reads from a split: what the tokenizer is fitted on."""
        return [example.text for example in split.examples]

    def make_dataset(self, tokenizer: Any, split: ReadResult, labels: list[str], spec: Spec,
                     key: str, train: bool) -> tuple[Any, int]:
        """(batched tf.data.Dataset of (inputs, targets), number of examples in one pass) for one
        split; `train` asks for the shuffled training variant, `key` names the split in errors."""
        raise NotImplementedError

    def build_outputs(self, features: Any, spec: Spec, labels: list[str], vocab_size: int) -> Any:
        raise NotImplementedError

    def loss(self, spec: Spec) -> Any:
        raise NotImplementedError

    def metrics(self, spec: Spec, labels: list[str]) -> list[Any]:
        raise NotImplementedError

    def needs_start_token(self, spec: Spec) -> bool:
        """Whether the tokenizer must prepend [CLS] (e.g. for `cls` pooling)."""
        return False

    def serving_functions(self, model: Any, tokenizer: Any, spec: Spec, labels: list[str]) -> dict[str, Any]:
        """Signature name -> tf.function of the SavedModel (and of `kbuild predict` on a run).
        `serving_default` takes raw strings `text` [batch]; by default it runs tokenizer, model
        and `serving_outputs`."""
        import tensorflow as tf

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=TEXT_INPUT)])
        def serve(text):
            return self.serving_outputs(model(tokenizer.encode(text), training=False), labels)

        return {"serving_default": serve}

    def serving_outputs(self, outputs: Any, labels: list[str]) -> dict[str, Any]:
        """Model outputs -> the named tensors of the SavedModel's `serving_default` (TF graph)."""
        raise NotImplementedError

    def to_rows(self, texts: list[str], outputs: dict[str, Any], labels: list[str]) -> list[dict]:
        """Serving outputs (numpy) -> one JSON-ready dict per input text."""
        raise NotImplementedError


TASKS: Registry[Task] = Registry("task")
